"""Steps of the SEPA collection flow, through the HTTP API as its users take them."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import FrozenClock
from app.events.models import Event
from tests.payment_methods.factories import IBAN_ES, sepa_body

Auth = Callable[..., dict[str, str]]
T = TypeVar("T")


async def sepa_customer(
    client: httpx.AsyncClient,
    auth: Auth,
    now: datetime,
    *,
    customer: str = "cus_1",
    service_id: str = "host-1",
    iban: str = IBAN_ES,
    expires_in: timedelta = timedelta(days=21),
    amount: int = 1299,
) -> dict[str, Any]:
    """A customer with a validated SEPA method paying an auto-renewing EUR service."""
    me = auth(customer)
    created = await client.post("/v1/payment-methods", json=sepa_body(iban), headers=me)
    assert created.status_code == 201, created.text
    method_id = created.json()["id"]
    validated = await client.post(
        f"/v1/payment-methods/{method_id}/validate",
        json={"mandate": {"accepted": True, "signer_name": "María Núñez"}},
        headers=me,
    )
    assert validated.status_code == 200, validated.text
    service = await paid_service(
        client,
        auth,
        now + expires_in,
        method_id,
        customer=customer,
        service_id=service_id,
        amount=amount,
    )
    return {"method_id": method_id, "service": service}


async def paid_service(
    client: httpx.AsyncClient,
    auth: Auth,
    expires_at: datetime,
    method_id: str,
    *,
    customer: str = "cus_1",
    service_id: str = "host-1",
    amount: int = 1299,
) -> dict[str, Any]:
    """An auto-renewing yearly EUR service, paid by `method_id`."""
    service = await client.put(
        f"/v1/admin/services/{service_id}",
        json={
            "customer_id": customer,
            "kind": "hosting",
            "name": "Hosting Pro",
            "expires_at": expires_at.isoformat(),
            "period_months": 12,
            "price": {"amount": amount, "currency": "EUR"},
            "auto_renew": True,
        },
        headers=auth("provisioning", admin=True),
    )
    assert service.status_code in (200, 201), service.text
    assigned = await client.put(
        f"/v1/services/{service_id}/payment-method",
        json={"payment_method_id": method_id},
        headers=auth(customer),
    )
    assert assigned.status_code == 200, assigned.text
    body: dict[str, Any] = assigned.json()
    return body


async def sweep(client: httpx.AsyncClient, auth: Auth) -> dict[str, Any]:
    response = await client.post("/v1/admin/renewals/run", headers=auth("ops", admin=True))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def collections(client: httpx.AsyncClient, auth: Auth, **query: str) -> list[dict[str, Any]]:
    response = await client.get(
        "/v1/admin/sepa/collections", params=query, headers=auth("ops", admin=True)
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def create_batch(
    client: httpx.AsyncClient, auth: Auth, day: date, **extra: Any
) -> httpx.Response:
    return await client.post(
        "/v1/admin/sepa/batches",
        json={"collection_date": day.isoformat(), **extra},
        headers=auth("ops", admin=True),
    )


async def submit(client: httpx.AsyncClient, auth: Auth, batch_id: str) -> httpx.Response:
    return await client.post(
        f"/v1/admin/sepa/batches/{batch_id}/submit", headers=auth("ops", admin=True)
    )


def returns_csv(*rows: tuple[str, str, int, date]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["end_to_end_id", "reason_code", "amount", "date"])
    for e2e, code, cents, day in rows:
        writer.writerow([e2e, code, f"{cents // 100}.{cents % 100:02d}", day.isoformat()])
    return out.getvalue().encode()


async def post_returns(
    client: httpx.AsyncClient, auth: Auth, body: bytes, content_type: str = "text/csv"
) -> httpx.Response:
    return await client.post(
        "/v1/admin/sepa/returns",
        content=body,
        headers={**auth("ops", admin=True), "Content-Type": content_type},
    )


async def events_of(session: AsyncSession, type_: str) -> list[Event]:
    query = select(Event).where(Event.type == type_).order_by(Event.created_at, Event.sequence)
    return list((await session.execute(query.execution_options(populate_existing=True))).scalars())


async def fresh(session: AsyncSession, model: type[T], **where: object) -> list[T]:
    """Rows of `model` as the database has them now (not as the session cached them)."""
    query = select(model).filter_by(**where).execution_options(populate_existing=True)
    return list((await session.execute(query)).scalars())


async def collected(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, schema: str | None = None
) -> dict[str, Any]:
    """Up to a submitted batch: the customer's renewal counts as collected."""
    setup = await sepa_customer(client, auth, clock.now())
    await sweep(client, auth)
    clock.set(datetime(2026, 12, 4, 10, 0, tzinfo=UTC))
    extra = {"schema": schema} if schema else {}
    batch = await create_batch(client, auth, date(2026, 12, 8), **extra)
    assert batch.status_code == 201, batch.text
    submitted = await submit(client, auth, batch.json()["id"])
    assert submitted.status_code == 200, submitted.text
    return {**setup, "batch": submitted.json()}
