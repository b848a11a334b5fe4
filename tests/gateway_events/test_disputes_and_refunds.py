"""A disputed renewal charge is shown and announced, never reversed here; a refunded one
undoes the renewal, by the same rule as a SEPA refund."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.settings import Settings
from app.renewals.engine.sweep import RenewalEngine
from app.renewals.models import Renewal
from app.services.models import Service
from tests.gateway_events.stripe_webhooks import (
    deliver,
    dispute,
    event,
    outbox,
    refunded_charge,
)
from tests.renewals.fake_gateway import FakeGateway
from tests.renewals.test_engine import due_service, renewal_of

Auth = Callable[..., dict[str, str]]


@pytest.fixture
async def paid(
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    clock: FrozenClock,
    settings: Settings,
) -> tuple[Service, Renewal, str]:
    """A service renewed by a card charge: the service, its renewal and the charge's id."""
    gateway = FakeGateway()
    service = await due_service(session, clock, gateway=gateway)
    summary = await RenewalEngine(sessionmaker, gateway, clock, settings, worker="w").sweep()
    assert summary.succeeded == 1
    [charge] = gateway.successful_charges()
    return service, await renewal_of(session, service.id), charge.charge_id


async def _expiry(session: AsyncSession, service_id: str) -> object:
    query = select(Service.expires_at).where(Service.id == service_id)
    return (await session.execute(query)).scalar_one()


async def test_a_dispute_is_shown_on_the_renewal_and_announced_and_reverses_nothing(
    client: httpx.AsyncClient,
    auth: Auth,
    session: AsyncSession,
    paid: tuple[Service, Renewal, str],
) -> None:
    service, renewal, charge_id = paid
    opened = await deliver(client, event("charge.dispute.created", dispute("dp_1", charge_id)))
    assert opened.json()["outcome"] == "applied", opened.text

    shown = await client.get(f"/v1/services/{service.id}/renewals", headers=auth("cus_1"))
    [row] = shown.json()["data"]
    assert row["status"] == "succeeded"
    assert row["dispute"] == {
        "id": "dp_1",
        "status": "needs_response",
        "reason": "fraudulent",
        "disputed_at": "2026-11-18T11:06:40Z",  # the dispute's own `created`
    }
    assert await _expiry(session, service.id) == renewal.period_end
    [announced] = await outbox(session, "renewal.disputed")
    assert announced.resource_id == renewal.id
    assert announced.data["status"] == "succeeded"
    assert announced.data["dispute"]["amount"] == {"amount": 1299, "currency": "EUR"}
    assert await outbox(session, "service.renewal_reversed") == []

    # Evidence under review: recorded quietly. Decided: announced again, for provisioning.
    review = dispute("dp_1", charge_id, status="under_review")
    assert (await deliver(client, event("charge.dispute.updated", review))).json()["outcome"] == (
        "applied"
    )
    assert len(await outbox(session, "renewal.disputed")) == 1
    lost = event("charge.dispute.closed", dispute("dp_1", charge_id, status="lost"))
    assert (await deliver(client, lost)).json()["outcome"] == "applied"
    assert (await deliver(client, lost)).json()["replayed"] is True
    decided = await outbox(session, "renewal.disputed")
    assert [e.data["dispute"]["status"] for e in decided] == ["needs_response", "lost"]
    assert await _expiry(session, service.id) == renewal.period_end


async def test_a_dispute_on_a_charge_that_is_not_ours_is_acknowledged(
    client: httpx.AsyncClient, paid: tuple[Service, Renewal, str]
) -> None:
    response = await deliver(client, event("charge.dispute.created", dispute("dp_x", "pi_other")))
    assert response.json()["outcome"] == "not_ours"
    no_intent = dispute("dp_y", "pi_other")
    no_intent["payment_intent"] = None
    response = await deliver(client, event("charge.dispute.created", no_intent))
    assert response.json()["outcome"] == "not_ours"


async def test_a_full_refund_refunds_the_renewal_and_reverses_the_service(
    client: httpx.AsyncClient,
    session: AsyncSession,
    paid: tuple[Service, Renewal, str],
) -> None:
    service, renewal, charge_id = paid
    response = await deliver(client, event("charge.refunded", refunded_charge(charge_id)))
    assert response.json()["outcome"] == "applied", response.text

    refunded = await renewal_of(session, service.id)
    assert (refunded.status, refunded.failure_code) == ("refunded", "charge_refunded")
    assert await _expiry(session, service.id) == renewal.period_start
    [reversed_] = await outbox(session, "service.renewal_reversed")
    assert reversed_.data["reason"] == "card_refund"
    assert reversed_.data["expires_at"] == renewal.period_start.isoformat().replace("+00:00", "Z")
    [announced] = await outbox(session, "renewal.refunded")
    assert announced.data["status"] == "refunded"

    # Another event about the same refund (a second refund object, a later update).
    again = await deliver(client, event("charge.refunded", refunded_charge(charge_id)))
    assert again.json()["outcome"] == "unchanged"
    assert len(await outbox(session, "renewal.refunded")) == 1


async def test_a_partial_refund_leaves_the_renewal_paid(
    client: httpx.AsyncClient,
    session: AsyncSession,
    paid: tuple[Service, Renewal, str],
) -> None:
    service, renewal, charge_id = paid
    partial = refunded_charge(charge_id, refunded=300)
    response = await deliver(client, event("charge.refunded", partial))
    assert response.json()["outcome"] == "unchanged"
    assert (await renewal_of(session, service.id)).status == "succeeded"
    assert await _expiry(session, service.id) == renewal.period_end
