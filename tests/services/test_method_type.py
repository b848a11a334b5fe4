"""`services.payment_method_type` is always the type of the service's method (planning
reads the lead from it): every change of method keeps it right, and a row written without
it (by SQL) is repaired by planning rather than left unplanned."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.money import Money
from app.core.settings import Settings
from app.payment_methods.models import PaymentMethod
from app.renewals.engine.plan import plan
from app.renewals.models import Renewal
from app.services import registry
from app.services.models import Service
from app.services.schemas import ServiceUpsert
from tests import factories


async def _stored(sessionmaker: async_sessionmaker[AsyncSession], *ids: str) -> list[str | None]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(Service.id, Service.payment_method_id, Service.payment_method_type)
            .where(Service.id.in_(ids))
            .order_by(Service.id)
        )
        return [f"{row[1]}:{row[2]}" if row[1] else row[2] for row in rows]


async def _card_and_sepa(
    sessionmaker: async_sessionmaker[AsyncSession], now: datetime, **service: Any
) -> tuple[PaymentMethod, PaymentMethod]:
    """cus_1's card and SEPA debit, and a service of cus_1 made with `service`'s arguments."""
    async with sessionmaker() as session, session.begin():
        card = await factories.card_method(session, "cus_1", now=now)
        sepa = await factories.sepa_method(session, "cus_1", now=now)
        if service:
            method = card if service.pop("with_card", False) else None
            await factories.service(session, "cus_1", now=now, method=method, **service)
    return card, sepa


async def test_every_change_of_method_keeps_the_type(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    auth: Callable[..., dict[str, str]],
) -> None:
    now = clock.now()
    card, sepa = await _card_and_sepa(sessionmaker, now, service_id="svc-a")
    async with sessionmaker() as session, session.begin():
        await factories.service(session, "cus_1", now=now, service_id="svc-b", method=None)
    headers = auth("cus_1")

    async def choose(service_id: str, method_id: str) -> None:
        response = await client.put(
            f"/v1/services/{service_id}/payment-method",
            headers=headers,
            json={"payment_method_id": method_id},
        )
        assert response.status_code == 200, response.text

    await choose("svc-a", card.id)
    assert await _stored(sessionmaker, "svc-a") == [f"{card.id}:card"]
    await choose("svc-a", sepa.id)
    assert await _stored(sessionmaker, "svc-a") == [f"{sepa.id}:sepa_debit"]

    response = await client.delete("/v1/services/svc-a/payment-method", headers=headers)
    assert response.status_code == 200, response.text
    assert await _stored(sessionmaker, "svc-a") == [None]

    response = await client.put(
        "/v1/services/payment-method",
        headers=headers,
        json={"payment_method_id": card.id, "service_ids": ["svc-a", "svc-b"]},
    )
    assert response.status_code == 200, response.text
    assert await _stored(sessionmaker, "svc-a", "svc-b") == [f"{card.id}:card"] * 2

    # Revoking the card and detaching it from what it renews clears both.
    response = await client.delete(f"/v1/payment-methods/{card.id}?detach=true", headers=headers)
    assert response.status_code == 200, response.text
    assert await _stored(sessionmaker, "svc-a", "svc-b") == [None, None]

    # A service handed to another customer loses its method, and the type with it.
    await choose("svc-b", sepa.id)
    async with sessionmaker() as session, session.begin():
        service = await session.get(Service, "svc-b")
        assert service is not None
        await registry.upsert_service(
            session,
            "svc-b",
            ServiceUpsert(
                customer_id="cus_2",
                kind=service.kind,
                name=service.name,
                expires_at=service.expires_at,
                period_months=service.period_months,
                price=Money(amount=service.price_amount, currency=service.price_currency),
            ),
            actor=factories.ADMIN,
            now=now,
        )
    assert await _stored(sessionmaker, "svc-b") == [None]


async def test_planning_repairs_a_service_written_without_the_type(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock, settings: Settings
) -> None:
    now = clock.now()
    async with sessionmaker() as session, session.begin():
        card = await factories.card_method(session, "cus_1", now=now)
        await factories.service(
            session, "cus_1", now=now, service_id="svc-sql", method=card,
            expires_in=timedelta(days=2),
        )  # fmt: skip
        await session.execute(
            update(Service).where(Service.id == "svc-sql").values(payment_method_type=None)
        )
    await plan(sessionmaker, now, settings)
    assert await _stored(sessionmaker, "svc-sql") == [f"{card.id}:card"]
    async with sessionmaker() as session:
        planned = await session.scalar(select(Renewal.id).where(Renewal.service_id == "svc-sql"))
    assert planned is not None


async def test_a_live_renewal_follows_the_new_method_type(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    settings: Settings,
    auth: Callable[..., dict[str, str]],
) -> None:
    # The SEPA cycle finds its renewals by the type the renewal keeps: one planned for a
    # card whose service then pays by SEPA must be found there, not lost between the two.
    now = clock.now()
    _, sepa = await _card_and_sepa(
        sessionmaker, now, service_id="svc-r", with_card=True, expires_in=timedelta(days=2)
    )
    await plan(sessionmaker, now, settings)

    async def renewal_types() -> list[tuple[str, str | None]]:
        async with sessionmaker() as session:
            rows = await session.execute(
                select(Renewal.status, Renewal.payment_method_type).where(
                    Renewal.service_id == "svc-r"
                )
            )
            return [(row[0], row[1]) for row in rows]

    assert await renewal_types() == [("scheduled", "card")]
    response = await client.put(
        "/v1/services/svc-r/payment-method",
        headers=auth("cus_1"),
        json={"payment_method_id": sepa.id},
    )
    assert response.status_code == 200, response.text
    assert [kind for _, kind in await renewal_types()] == ["sepa_debit"]
