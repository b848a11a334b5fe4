"""A card from registration to a renewal charged once at the gateway; and its expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.scheduler import JobContext
from app.events.models import Event
from app.jobs import JOBS
from app.payment_methods.cards import expire_cards_job
from app.payment_methods.models import PaymentMethod
from tests.payment_methods.card_flows import (
    MASTERCARD,
    THREE_D_SECURE_ON_SETUP,
    Auth,
    add_card,
    answer_challenge,
    ledger_charges,
    new_customer,
    validate,
)


async def put_service(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, customer: str, service_id: str
) -> None:
    response = await client.put(
        f"/v1/admin/services/{service_id}",
        json={
            "customer_id": customer,
            "kind": "hosting",
            "name": "Hosting Pro",
            # Inside the card lead window (7 days): due at the next sweep.
            "expires_at": (clock.now() + timedelta(days=5)).isoformat(),
            "period_months": 12,
            "price": {"amount": 1299, "currency": "EUR"},
        },
        headers=auth("provisioning", admin=True),
    )
    assert response.status_code == 201, response.text


async def test_a_3ds_card_renews_a_service_once_at_the_gateway(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    customer = new_customer()
    service_id = f"host-{customer}"
    created = (await add_card(client, auth, customer, THREE_D_SECURE_ON_SETUP)).json()
    await answer_challenge(client, created["next_action"]["url"], "complete")
    assert (await validate(client, auth, customer, created["id"])).json()["status"] == "validated"

    await put_service(client, auth, clock, customer, service_id)
    me = auth(customer)
    assigned = await client.put(
        f"/v1/services/{service_id}/payment-method",
        json={"payment_method_id": created["id"]},
        headers=me,
    )
    assert assigned.status_code == 200, assigned.text
    patched = await client.patch(
        f"/v1/services/{service_id}", json={"auto_renew": True}, headers=me
    )
    assert patched.json()["renewal_readiness"] == "ok", patched.text

    admin = auth("ops", admin=True)
    first = await client.post("/v1/admin/renewals/run", headers=admin)
    assert first.json()["succeeded"] == 1, first.text
    second = await client.post("/v1/admin/renewals/run", headers=admin)
    assert second.json()["succeeded"] == 0

    async with sessionmaker() as session:
        method = await session.get_one(PaymentMethod, created["id"])
    assert method.gateway_customer_id is not None
    charges = await ledger_charges(client, method.gateway_customer_id)
    assert [(c["status"], c["amount"], c["currency"]) for c in charges] == [
        ("succeeded", 1299, "eur")
    ]
    assert charges[0]["payment_method"] == method.gateway_payment_method_id
    renewals = await client.get(f"/v1/services/{service_id}/renewals", headers=me)
    assert renewals.status_code == 200
    assert charges[0]["id"] in renewals.text


async def test_a_card_past_its_month_expires(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    assert "expire-cards" in {job.id for job in JOBS}
    customer = new_customer()
    card = (await add_card(client, auth, customer, exp_month=11, exp_year=2026)).json()
    later = (await add_card(client, auth, customer, MASTERCARD)).json()
    context = JobContext(sessionmaker, clock, app.state.settings)
    assert await expire_cards_job(context) == 0  # still good through 30 November

    clock.set(datetime(2026, 12, 1, tzinfo=UTC))
    assert await expire_cards_job(context) == 1
    assert await expire_cards_job(context) == 0
    me = auth(customer)
    shown = await client.get(f"/v1/payment-methods/{card['id']}", headers=me)
    assert shown.json()["status"] == "expired"
    still = await client.get(f"/v1/payment-methods/{later['id']}", headers=me)
    assert still.json()["status"] == "validated"
    async with sessionmaker() as session:
        types = await session.scalars(select(Event.type).where(Event.resource_id == card["id"]))
        assert "payment_method.expired" in types.all()

    await put_service(client, auth, clock, customer, f"host-{customer}")
    refused = await client.put(
        f"/v1/services/host-{customer}/payment-method",
        json={"payment_method_id": card["id"]},
        headers=me,
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "payment_method_not_validated"
    # An expired card does not block registering its renewed self (same number).
    renewed = await add_card(client, auth, customer, exp_month=11, exp_year=2030)
    assert renewed.status_code == 201, renewed.text
