"""A desk to drive renewals through time over HTTP: provisioning registers services, the
customer chooses methods, an operator runs the renewal job each day, and the test reads the
events that went out. The card gateway is the scripted one (tests/renewals/fake_gateway.py);
SEPA methods are registered through the API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.events.models import Event
from tests import factories
from tests.payment_methods.factories import sepa_body
from tests.renewals.fake_gateway import FakeGateway

Auth = Callable[..., dict[str, str]]


@dataclass
class Desk:
    client: httpx.AsyncClient
    auth: Auth
    clock: FrozenClock
    gateway: FakeGateway
    sessionmaker: async_sessionmaker[AsyncSession]
    customer: str = "cus_1"

    async def card(self, behaviour: str = "ok", exp: tuple[int, int] = (12, 2030)) -> str:
        async with self.sessionmaker() as session, session.begin():
            method = await factories.card_method(
                session, self.customer, now=self.clock.now(), exp=exp
            )
        self.gateway.behaviours[method.gateway_payment_method_id or ""] = behaviour
        return method.id

    async def sepa(self) -> str:
        me = self.auth(self.customer)
        created = await self.client.post("/v1/payment-methods", json=sepa_body(), headers=me)
        assert created.status_code == 201, created.text
        method_id: str = created.json()["id"]
        validated = await self.client.post(
            f"/v1/payment-methods/{method_id}/validate",
            json={"mandate": {"accepted": True, "signer_name": "María Núñez"}},
            headers=me,
        )
        assert validated.status_code == 200, validated.text
        return method_id

    async def register(
        self,
        service_id: str,
        *,
        expires_in: timedelta | None = None,
        expires_at: datetime | None = None,
        kind: str = "hosting",
        period_months: int = 12,
        auto_renew: bool = False,
    ) -> dict[str, Any]:
        """What provisioning does: PUT /v1/admin/services/{id}."""
        expiry = expires_at or self.clock.now() + (expires_in or timedelta(days=365))
        response = await self.client.put(
            f"/v1/admin/services/{service_id}",
            json={
                "customer_id": self.customer,
                "kind": kind,
                "name": f"{service_id}",
                "expires_at": expiry.isoformat(),
                "period_months": period_months,
                "price": {"amount": 1299, "currency": "EUR"},
                "auto_renew": auto_renew,
            },
            headers=self.auth("provisioning", admin=True),
        )
        assert response.status_code in (200, 201), response.text
        body: dict[str, Any] = response.json()
        return body

    async def choose(self, service_id: str, method_id: str, **extra: Any) -> dict[str, Any]:
        response = await self.client.put(
            f"/v1/services/{service_id}/payment-method",
            json={"payment_method_id": method_id, **extra},
            headers=self.auth(self.customer),
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def service(self, service_id: str) -> dict[str, Any]:
        response = await self.client.get(
            f"/v1/services/{service_id}", headers=self.auth(self.customer)
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def run(self) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/admin/renewals/run", headers=self.auth("ops", admin=True)
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def events(self, *types: str) -> list[Event]:
        async with self.sessionmaker() as session:
            query = select(Event).order_by(Event.created_at, Event.resource_id, Event.sequence)
            if types:
                query = query.where(Event.type.in_(types))
            return list((await session.execute(query)).scalars())

    async def day_by_day(
        self, until: datetime, *, each: Callable[[], Any] | None = None
    ) -> dict[str, list[datetime]]:
        """Run the renewal job once a day until `until`; when each event type went out."""
        seen: dict[str, list[datetime]] = {}
        known = {event.id for event in await self.events()}
        while self.clock.now() <= until:
            if each is not None:
                await each()
            await self.run()
            for event in await self.events():
                if event.id not in known:
                    known.add(event.id)
                    seen.setdefault(event.type, []).append(self.clock.now())
            self.clock.advance(timedelta(days=1))
        return seen


@asynccontextmanager
async def open_desk(
    make_app: Callable[..., FastAPI],
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
    **settings: Any,
) -> AsyncIterator[Desk]:
    """The real app with the default notice (15 days) unless `settings` say otherwise."""
    app = make_app(**({"renewal_notice_days": 15} | settings))
    gateway = FakeGateway()
    async with app.router.lifespan_context(app):
        await app.state.gateway.aclose()
        app.state.gateway = gateway
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield Desk(client, auth, clock, gateway, sessionmaker)
