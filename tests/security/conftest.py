"""The attack surface, read from the app: every documented operation, and a customer A with
real resources of every kind for another customer to reach for."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.ids import new_id
from app.renewals.models import Renewal

Auth = Callable[..., dict[str, str]]

CUSTOMER_A = "cus_alice"
CUSTOMER_B = "cus_bob"
IBAN_A = "DE89 3704 0044 0532 0130 00"
_PARAMETER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    has_body: bool
    authenticated: bool
    media_type: str = "application/json"

    @property
    def parameters(self) -> list[str]:
        return _PARAMETER.findall(self.path)

    def url(self, values: dict[str, str]) -> str:
        return _PARAMETER.sub(lambda match: values[match.group(1)], self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def operations(app: FastAPI) -> list[Operation]:
    """Every operation the app documents (the sandbox is not part of the API)."""
    found = []
    for path, methods in app.openapi()["paths"].items():
        for method, spec in methods.items():
            found.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    has_body="requestBody" in spec,
                    authenticated=bool(spec.get("security")),
                    media_type=next(iter(spec.get("requestBody", {}).get("content", {})), ""),
                )
            )
    return found


@dataclass
class World:
    """Ids of customer A's resources, by the path parameter that names them."""

    ids: dict[str, str] = field(default_factory=dict)


@pytest.fixture
async def world(
    client: httpx.AsyncClient,
    auth: Auth,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> World:
    """Customer A with a validated SEPA method, a service renewed by it, a renewal and
    events, all made through the API except the renewal (the engine is not ours to drive)."""
    a = auth(CUSTOMER_A)
    body = {"type": "sepa_debit", "sepa_debit": {"iban": IBAN_A, "account_holder_name": "Alice"}}
    created = await client.post("/v1/payment-methods", json=body, headers=a)
    assert created.status_code == 201, created.text
    method_id = created.json()["id"]
    accepted = await client.post(
        f"/v1/payment-methods/{method_id}/validate",
        json={"mandate": {"accepted": True, "signer_name": "Alice"}},
        headers=a,
    )
    assert accepted.status_code == 200, accepted.text

    service_id = "svc_alice_1"
    service = {
        "customer_id": CUSTOMER_A,
        "kind": "domain",
        "name": "alice.example",
        "expires_at": (clock.now() + timedelta(days=40)).isoformat(),
        "period_months": 12,
        "price": {"amount": 1299, "currency": "EUR"},
        "auto_renew": True,
    }
    upserted = await client.put(
        f"/v1/admin/services/{service_id}", json=service, headers=auth("ops", admin=True)
    )
    assert upserted.status_code == 201, upserted.text
    assigned = await client.put(
        f"/v1/services/{service_id}/payment-method",
        json={"payment_method_id": method_id},
        headers=a,
    )
    assert assigned.status_code == 200, assigned.text

    now = clock.now()
    renewal = Renewal(
        id=new_id("ren"),
        service_id=service_id,
        customer_id=CUSTOMER_A,
        period_start=now + timedelta(days=40),
        period_end=now + timedelta(days=405),
        amount=1299,
        currency="EUR",
        payment_method_id=method_id,
        status="scheduled",
        due_at=now + timedelta(days=33),
        created_at=now,
        updated_at=now,
    )
    async with sessionmaker() as session:
        session.add(renewal)
        await session.commit()

    events = await client.get("/v1/events", headers=a)
    assert events.status_code == 200 and events.json()["data"], events.text
    return World(
        ids={
            "method_id": method_id,
            "service_id": service_id,
            "renewal_id": renewal.id,
            "event_id": events.json()["data"][0]["id"],
        }
    )


def request_body(operation: Operation, world: World) -> dict[str, Any] | None:
    """A body that passes validation, so only ownership can refuse the call."""
    if not operation.has_body:
        return None
    ids = world.ids
    bodies: dict[str, dict[str, Any]] = {
        "POST /v1/payment-methods/{method_id}/validate": {
            "mandate": {"accepted": True, "signer_name": "Bob"}
        },
        "PATCH /v1/services/{service_id}": {"auto_renew": False},
        "PUT /v1/services/{service_id}/payment-method": {"payment_method_id": ids["method_id"]},
        "PUT /v1/services/payment-method": {
            "payment_method_id": ids["method_id"],
            "service_ids": [ids["service_id"]],
        },
    }
    assert str(operation) in bodies, f"{operation}: add a valid body for the security sweep"
    return bodies[str(operation)]


@asynccontextmanager
async def client_for(
    make_app: Callable[..., FastAPI], **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app built with changed settings, its lifespan running."""
    application = make_app(**overrides)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
