"""Import files and the steps around them, as an operator takes them over HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events.models import Event
from app.payment_methods.models import Mandate, PaymentMethod
from app.services.models import Service, ServiceChange
from tests.payment_methods.card_flows import SANDBOX_KEY, VISA, tokenize
from tests.payment_methods.factories import IBAN_ES

Auth = Callable[..., dict[str, str]]
NDJSON = {"Content-Type": "application/x-ndjson"}


def sepa_line(
    customer: str = "cus_1",
    *,
    iban: str = IBAN_ES,
    reference: str = "OLD-0001",
    signed_at: str = "2024-03-14",
    last_collected_at: str | None = "2026-10-05",
    services: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "type": "sepa_debit",
        "customer_id": customer,
        "iban": iban,
        "account_holder_name": "María Núñez",
        "mandate": {
            "reference": reference,
            "signed_at": signed_at,
            "signer_name": "María Núñez",
            "last_collected_at": last_collected_at,
        },
        **extra,
    }
    if services is not None:
        line["services"] = services
    return line


def card_line(
    customer: str, gateway_customer: str, payment_method: str, services: list[str] | None = None
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "type": "card",
        "customer_id": customer,
        "gateway_customer_id": gateway_customer,
        "gateway_payment_method_id": payment_method,
    }
    if services is not None:
        line["services"] = services
    return line


def ndjson(*lines: dict[str, Any] | str) -> bytes:
    return "".join(
        (line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines
    ).encode()


async def post_import(
    client: httpx.AsyncClient, auth: Auth, body: bytes, **params: str
) -> httpx.Response:
    return await client.post(
        "/v1/admin/imports/payment-methods",
        content=body,
        params=params,
        headers={**auth("ops", admin=True), **NDJSON},
    )


async def provision(
    client: httpx.AsyncClient,
    auth: Auth,
    service_id: str,
    customer: str,
    expires_at: datetime,
    *,
    currency: str = "EUR",
    status: str = "active",
) -> None:
    response = await client.put(
        f"/v1/admin/services/{service_id}",
        json={
            "customer_id": customer,
            "kind": "hosting",
            "name": f"Hosting {service_id}",
            "expires_at": expires_at.isoformat(),
            "period_months": 12,
            "price": {"amount": 1299, "currency": currency},
            "status": status,
        },
        headers=auth("provisioning", admin=True),
    )
    assert response.status_code in (200, 201), response.text


async def stored_card(
    client: httpx.AsyncClient, number: str = VISA, *, exp_month: int = 12, exp_year: int = 2030
) -> tuple[str, str]:
    """A card the previous panel stored at the gateway: (gateway customer, payment method)."""
    created = await client.post(
        "/sandbox/v1/customers",
        data={"description": "moved from the old panel"},
        headers={**SANDBOX_KEY, "Idempotency-Key": f"cus-{uuid.uuid4().hex}"},
    )
    assert created.status_code == 200, created.text
    customer = str(created.json()["id"])
    token = await tokenize(client, number, exp_month=exp_month, exp_year=exp_year)
    attached = await client.post(
        f"/sandbox/v1/payment_methods/{token}/attach",
        data={"customer": customer},
        headers={**SANDBOX_KEY, "Idempotency-Key": f"att-{uuid.uuid4().hex}"},
    )
    assert attached.status_code == 200, attached.text
    return customer, token


async def counts(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    """Rows an import may write, by table."""
    async with sessionmaker() as session:
        return {
            model.__tablename__: int(
                await session.scalar(select(func.count()).select_from(model)) or 0
            )
            for model in (PaymentMethod, Mandate, Event, ServiceChange, Service)
        }


async def events_of(session: AsyncSession, type_: str) -> list[Event]:
    query = select(Event).where(Event.type == type_).order_by(Event.created_at, Event.sequence)
    return list((await session.execute(query.execution_options(populate_existing=True))).scalars())
