"""Stripe's payment_intent events settle the renewal attempt that made the charge, once, by
the engine's own rules: an attempt whose answer was lost, one paid on session after 3-D
Secure; never one already settled or one whose renewal has moved on."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.settings import Settings
from app.gateways.port import Charge
from app.renewals.engine.summary import SweepSummary
from app.renewals.engine.sweep import RenewalEngine
from app.renewals.gateway_events import settle_from_gateway
from app.renewals.models import Renewal, RenewalAttempt
from app.services.models import Service
from tests.gateway_events.stripe_webhooks import decline, deliver, event, outbox, payment_intent
from tests.renewals.fake_gateway import FakeGateway
from tests.renewals.test_engine import attempts, due_service, renewal_of

WORKER = "test-worker"


def metadata_of(renewal: Renewal, attempt: RenewalAttempt) -> dict[str, str]:
    """What the engine sends with each charge (and the adapter's own copy of the key)."""
    return {
        "renewal_id": renewal.id,
        "service_id": renewal.service_id,
        "customer_id": renewal.customer_id,
        "idempotency_key": attempt.idempotency_key,
        "autorenew_idempotency_key": attempt.idempotency_key,
    }


async def _charged(
    session: AsyncSession, renewer: RenewalEngine, gateway: FakeGateway, behaviour: str
) -> tuple[Service, Renewal, RenewalAttempt]:
    clock = FrozenClock(renewer.clock.now())
    service = await due_service(session, clock, behaviour=behaviour, gateway=gateway)
    await renewer.sweep()
    renewal = await renewal_of(session, service.id)
    [attempt] = await attempts(session, renewal.id)
    return service, renewal, attempt


async def _service(session: AsyncSession, service_id: str) -> Service:
    query = select(Service).where(Service.id == service_id)
    return (await session.execute(query.execution_options(populate_existing=True))).scalar_one()


async def test_a_lost_answer_is_settled_by_the_succeeded_event_and_charged_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    renewer: RenewalEngine,
    gateway: FakeGateway,
    clock: FrozenClock,
) -> None:
    service, renewal, attempt = await _charged(session, renewer, gateway, "lost_response")
    assert (renewal.status, attempt.status, attempt.gateway_charge_id) == (
        "processing",
        "processing",
        None,
    )
    [charge] = gateway.successful_charges()
    paid = payment_intent(charge.charge_id, "succeeded", metadata=metadata_of(renewal, attempt))
    document = event("payment_intent.succeeded", paid)
    response = await deliver(client, document)
    assert response.json()["outcome"] == "applied", response.text

    renewal = await renewal_of(session, service.id)
    [attempt] = await attempts(session, renewal.id)
    assert (renewal.status, attempt.status, attempt.gateway_charge_id) == (
        "succeeded",
        "succeeded",
        charge.charge_id,
    )
    assert (await _service(session, service.id)).expires_at == renewal.period_end
    assert len(await outbox(session, "renewal.succeeded")) == 1
    assert len(await outbox(session, "service.renewed")) == 1

    # Stripe sends it again, and the lease runs out: nothing is settled or charged twice.
    again = await deliver(client, event("payment_intent.succeeded", paid))
    assert again.json()["outcome"] == "unchanged"
    clock.advance(timedelta(minutes=10))
    summary = await renewer.sweep()
    assert (summary.claimed, summary.succeeded) == (0, 0)
    assert len(gateway.calls) == 1
    assert (await _service(session, service.id)).expires_at == renewal.period_end
    assert len(await outbox(session, "service.renewed")) == 1


@pytest.mark.parametrize(
    ("error", "status", "retries"),
    [
        (decline("insufficient_funds"), "scheduled", True),
        (decline("stolen_card"), "failed", False),
        (
            decline("authentication_required", code="authentication_required"),
            "requires_action",
            False,
        ),
    ],
)
async def test_a_lost_answer_is_settled_by_the_failed_event_as_the_engine_would(
    client: httpx.AsyncClient,
    session: AsyncSession,
    renewer: RenewalEngine,
    gateway: FakeGateway,
    error: dict[str, Any],
    status: str,
    retries: bool,
) -> None:
    service, renewal, attempt = await _charged(session, renewer, gateway, "unknown")
    failed = payment_intent(
        "pi_lost", "requires_payment_method", metadata=metadata_of(renewal, attempt), error=error
    )
    response = await deliver(client, event("payment_intent.payment_failed", failed))
    assert response.json()["outcome"] == "applied", response.text

    renewal = await renewal_of(session, service.id)
    [attempt] = await attempts(session, renewal.id)
    assert renewal.status == status
    assert attempt.gateway_charge_id == "pi_lost"
    assert (renewal.next_attempt_at is not None) == retries
    if status != "requires_action":
        assert attempt.decline_code == error["decline_code"]
        assert attempt.hard_decline is (status == "failed")
    assert (await _service(session, service.id)).expires_at == renewal.period_start


async def test_a_renewal_paid_on_session_after_3ds_is_settled_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    renewer: RenewalEngine,
    gateway: FakeGateway,
) -> None:
    service, renewal, attempt = await _charged(session, renewer, gateway, "auth")
    assert renewal.status == "requires_action" and renewal.action_url
    pi = attempt.gateway_charge_id
    assert pi is not None
    meta = metadata_of(renewal, attempt)

    # A failed authentication leaves the renewal waiting for the customer.
    failure = decline("", code="payment_intent_authentication_failure")
    failed = payment_intent(pi, "requires_payment_method", metadata=meta, error=failure)
    refused = await deliver(client, event("payment_intent.payment_failed", failed))
    assert refused.json()["outcome"] == "unchanged"
    assert (await renewal_of(session, service.id)).status == "requires_action"

    paid = await deliver(
        client, event("payment_intent.succeeded", payment_intent(pi, "succeeded", metadata=meta))
    )
    assert paid.json()["outcome"] == "applied"
    renewal = await renewal_of(session, service.id)
    [attempt] = await attempts(session, renewal.id)
    assert (renewal.status, renewal.action_url, attempt.status) == ("succeeded", None, "succeeded")
    assert (await _service(session, service.id)).expires_at == renewal.period_end
    assert len(await outbox(session, "service.renewed")) == 1


async def test_an_attempt_settled_already_or_overtaken_is_left_alone(
    client: httpx.AsyncClient,
    session: AsyncSession,
    renewer: RenewalEngine,
    gateway: FakeGateway,
    clock: FrozenClock,
) -> None:
    service, renewal, first = await _charged(session, renewer, gateway, "soft_decline")
    assert renewal.status == "scheduled"
    declined_pi = first.gateway_charge_id
    assert declined_pi is not None
    # The retry succeeds with attempt 2.
    gateway.behaviours = {key: "ok" for key in gateway.behaviours}
    clock.advance(timedelta(days=1, minutes=1))
    await renewer.sweep()
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "succeeded"
    expiry = (await _service(session, service.id)).expires_at
    second = (await attempts(session, renewal.id))[1]
    assert second.gateway_charge_id is not None

    meta = metadata_of(renewal, first)
    late = await deliver(
        client,
        event(
            "payment_intent.payment_failed",
            payment_intent(
                declined_pi,
                "requires_payment_method",
                metadata=meta,
                error=decline("insufficient_funds"),
            ),
        ),
    )
    assert late.json()["outcome"] == "unchanged"
    again = await deliver(
        client,
        event(
            "payment_intent.succeeded",
            payment_intent(
                second.gateway_charge_id, "succeeded", metadata=metadata_of(renewal, second)
            ),
        ),
    )
    assert again.json()["outcome"] == "unchanged"
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "succeeded" and renewal.failed_charge_count == 1
    assert (await _service(session, service.id)).expires_at == expiry


async def test_a_charge_of_another_amount_or_naming_another_renewal_is_not_settled(
    client: httpx.AsyncClient,
    session: AsyncSession,
    renewer: RenewalEngine,
    gateway: FakeGateway,
) -> None:
    service, renewal, attempt = await _charged(session, renewer, gateway, "unknown")
    meta = metadata_of(renewal, attempt)
    other_amount = payment_intent("pi_odd", "succeeded", amount=999, metadata=meta)
    response = await deliver(client, event("payment_intent.succeeded", other_amount))
    assert response.json()["outcome"] == "unchanged"
    foreign = payment_intent("pi_odd", "succeeded", metadata={**meta, "renewal_id": "ren_other"})
    response = await deliver(client, event("payment_intent.succeeded", foreign))
    assert response.json()["outcome"] == "not_ours"
    nothing = payment_intent("pi_none", "succeeded", metadata={"order": "42"})
    response = await deliver(client, event("payment_intent.succeeded", nothing))
    assert response.json()["outcome"] == "not_ours"
    assert (await renewal_of(session, service.id)).status == "processing"


async def test_the_engine_answer_after_the_event_is_dropped(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    clock: FrozenClock,
    settings: Settings,
    gateway: FakeGateway,
) -> None:
    """Stripe's event can beat the charge call's own answer; the answer then finds the
    attempt settled and leaves it (one extension, one set of events)."""
    service = await due_service(session, clock, gateway=gateway)
    engine = RenewalEngine(sessionmaker, gateway, clock, settings, worker=WORKER)
    assert await engine.plan() == 1
    [job] = await engine.claim(SweepSummary())  # committed; the charge call is under way
    renewal = await renewal_of(session, service.id)
    [attempt] = await attempts(session, renewal.id)
    paid = payment_intent("pi_fast", "succeeded", metadata=metadata_of(renewal, attempt))
    assert (await deliver(client, event("payment_intent.succeeded", paid))).json()["outcome"] == (
        "applied"
    )

    answer = Charge("pi_fast", "succeeded", job.amount, job.currency, job.idempotency_key)
    summary = SweepSummary()
    await engine.settle_group([(job, answer)], summary)
    assert (summary.succeeded, summary.settled_elsewhere) == (0, 1)  # the claim is told
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "succeeded"
    assert (await _service(session, service.id)).expires_at == renewal.period_end
    assert len(await outbox(session, "renewal.succeeded")) == 1


async def test_settle_from_gateway_is_a_plain_function(
    session: AsyncSession,
    renewer: RenewalEngine,
    gateway: FakeGateway,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    """What an on-session payment (issue 13's pay now) calls once it has the charge."""
    service, _, attempt = await _charged(session, renewer, gateway, "unknown")
    charge = Charge(
        "pi_plain", "succeeded", attempt.amount, attempt.currency, attempt.idempotency_key
    )
    assert await settle_from_gateway(session, charge, clock.now(), settings) == "applied"
    await session.commit()
    assert await settle_from_gateway(session, charge, clock.now(), settings) == "unchanged"
    await session.commit()
    assert (await renewal_of(session, service.id)).status == "succeeded"


async def test_a_payment_finished_at_the_gateway_page_is_settled_by_its_event_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: Callable[..., dict[str, str]],
    session: AsyncSession,
    renewer: RenewalEngine,
    gateway: FakeGateway,
) -> None:
    """The customer paid now and was sent to 3-D Secure, then closed the tab after
    finishing it: the gateway's event settles the payment (the same charge, confirmed
    again on-session), and neither the sweep nor anything else charges a second time."""
    app.state.gateway = gateway
    service, renewal, attempt = await _charged(session, renewer, gateway, "auth")
    paying = await client.post(f"/v1/renewals/{renewal.id}/pay", headers=auth("cus_1"))
    assert paying.json()["status"] == "requires_action", paying.text
    pi = attempt.gateway_charge_id
    assert pi is not None
    [_, waiting] = await attempts(session, renewal.id)
    assert (waiting.on_session, waiting.gateway_charge_id) == (True, pi)
    gateway.complete_authentication(pi)
    paid = payment_intent(pi, "succeeded", metadata=metadata_of(renewal, attempt))
    response = await deliver(client, event("payment_intent.succeeded", paid))
    assert response.json()["outcome"] == "applied"
    summary = await renewer.sweep()
    assert (summary.claimed, summary.succeeded) == (0, 0)
    assert len(gateway.calls) == 2  # the off-session try, its on-session confirmation
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "succeeded"
    assert (await _service(session, service.id)).expires_at == renewal.period_end
