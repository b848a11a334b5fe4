"""Factories for the events tests: payloads, committed events, endpoints, a dispatch pass."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events.models import Event
from app.events.payloads import EventMoney, RenewalData, ServiceRenewedData
from app.events.service import emit

Auth = Callable[..., dict[str, str]]


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app built by the test (its own settings) and talk to it."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


def renewal_data(
    renewal_id: str = "ren_1", customer_id: str = "cus_1", *, status: str = "succeeded"
) -> RenewalData:
    start = datetime.fromisoformat("2026-12-01T00:00:00+00:00")
    return RenewalData(
        id=renewal_id,
        service_id="svc_1",
        customer_id=customer_id,
        status=status,
        amount=EventMoney(amount=1299, currency="EUR"),
        payment_method_id="pm_1",
        period_start=start,
        period_end=start + timedelta(days=365),
    )


def renewed_data(customer_id: str = "cus_1") -> ServiceRenewedData:
    before = datetime.fromisoformat("2026-12-01T00:00:00+00:00")
    return ServiceRenewedData(
        service_id="svc_1",
        customer_id=customer_id,
        renewal_id="ren_1",
        previous_expires_at=before,
        expires_at=before + timedelta(days=365),
        period_months=12,
    )


async def emit_committed(
    sessionmaker: async_sessionmaker[AsyncSession],
    now: datetime,
    *,
    type: str = "renewal.succeeded",
    resource_id: str = "ren_1",
    customer_id: str | None = "cus_1",
    data: Any = None,
) -> Event:
    """What a module does: change + emit in one transaction, then commit."""
    async with sessionmaker() as session, session.begin():
        return await emit(
            session,
            type=type,
            resource_id=resource_id,
            customer_id=customer_id,
            data=data if data is not None else renewal_data(resource_id, customer_id or "cus_1"),
            now=now,
        )


async def emit_rolled_back(sessionmaker: async_sessionmaker[AsyncSession], now: datetime) -> None:
    """A change that fails after emitting: the transaction rolls back with its event."""
    async with sessionmaker() as session:
        await emit(
            session,
            type="renewal.succeeded",
            resource_id="ren_1",
            customer_id="cus_1",
            data=renewal_data(),
            now=now,
        )
        await session.rollback()


async def register_endpoint(
    client: httpx.AsyncClient, auth: Auth, url: str, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/v1/admin/webhook-endpoints", json={"url": url, **fields}, headers=auth("ops", admin=True)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def dispatch(client: httpx.AsyncClient, auth: Auth) -> dict[str, int]:
    response = await client.post("/v1/admin/events/dispatch", headers=auth("ops", admin=True))
    assert response.status_code == 200, response.text
    summary: dict[str, int] = response.json()
    return summary


async def event_detail(client: httpx.AsyncClient, auth: Auth, event_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/admin/events/{event_id}", headers=auth("ops", admin=True))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
