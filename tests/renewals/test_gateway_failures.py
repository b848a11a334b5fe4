"""Money safety when the gateway answers badly: the real Stripe adapter, a scripted Stripe
(tests/gateways/scripted_stripe.py) and whole sweeps, counting the charges Stripe made.

No answer that leaves open whether money moved may end a renewal, and no new idempotency
key may be used while the earlier one might have charged: each case below once charged a
customer twice (through the customer's retry or the fallback to another card) or gave a
renewal up for an unusable API key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.settings import Settings
from app.gateways.stripe import StripeGateway
from app.renewals.engine import reconcile
from app.renewals.engine.sweep import RenewalEngine
from app.services.models import Service
from tests import factories
from tests.gateways.scripted_stripe import (
    API_KEY,
    BASE_URL,
    ScriptedStripe,
    error_answer,
    not_json,
)
from tests.renewals.test_engine import attempts, renewal_of

pytestmark = pytest.mark.usefixtures("sessionmaker")

REVOKED = {"sk_test_the_new_key_nobody_deployed"}


@pytest.fixture
def stripe() -> ScriptedStripe:
    return ScriptedStripe()


@pytest.fixture
async def adapter(stripe: ScriptedStripe) -> AsyncIterator[StripeGateway]:
    gateway = StripeGateway(api_key=API_KEY, base_url=BASE_URL, transport=stripe.transport())
    yield gateway
    await gateway.aclose()


@pytest.fixture
def renewer(
    sessionmaker: async_sessionmaker[AsyncSession],
    adapter: StripeGateway,
    clock: FrozenClock,
    settings: Settings,
) -> RenewalEngine:
    return RenewalEngine(sessionmaker, adapter, clock, settings, worker="w1")


async def due_service(session: AsyncSession, clock: FrozenClock, *, card: str = "pm_ok") -> Service:
    method = await factories.card_method(
        session, "cus_1", now=clock.now(), gateway_pm=f"{card}_{clock.now().timestamp():.0f}"
    )
    clock.advance(timedelta(seconds=1))
    service = await factories.service(
        session, "cus_1", now=clock.now(), expires_in=timedelta(days=5), method=method
    )
    await session.commit()
    return service


def past_the_lease(clock: FrozenClock, settings: Settings) -> None:
    clock.advance(timedelta(seconds=settings.renewal_lease_seconds + 1))


def unavailable_gauge() -> float | None:
    return REGISTRY.get_sample_value("autorenew_gateway_unavailable")


async def retry(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]], renewal_id: str
) -> int:
    return (
        await client.post(f"/v1/renewals/{renewal_id}/retry", headers=auth("cus_1"))
    ).status_code


async def test_an_idempotency_error_on_the_resend_is_settled_by_lookup(
    session: AsyncSession,
    clock: FrozenClock,
    settings: Settings,
    renewer: RenewalEngine,
    stripe: ScriptedStripe,
    client: httpx.AsyncClient,
    auth: Callable[..., dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = await due_service(session, clock)
    stripe.fail_next("charge", None, processed=True)  # charged; the answer is lost
    assert (await renewer.sweep()).outcome_unknown == 1

    # A deploy changed the charge's metadata: the re-send no longer matches the first
    # request, and Stripe refuses the key instead of replaying.
    metadata = reconcile.charge_metadata
    monkeypatch.setattr(
        reconcile, "charge_metadata", lambda r, key: {**metadata(r, key), "release": "2"}
    )
    stripe.search_lag = 1  # and the search index has not caught up yet
    past_the_lease(clock, settings)
    await renewer.sweep()
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "processing"  # not failed: the first send may have charged
    assert await retry(client, auth, renewal.id) == 409  # no new key while it may have

    past_the_lease(clock, settings)
    await renewer.sweep()  # looked up: not found yet, so still open
    assert (await renewal_of(session, service.id)).status == "processing"

    past_the_lease(clock, settings)
    assert (await renewer.sweep()).succeeded == 1  # found by its key's metadata
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "succeeded"
    [attempt] = await attempts(session, renewal.id)
    assert (attempt.status, attempt.gateway_charge_id) == ("succeeded", "pi_1")
    assert len(stripe.charges()) == 1
    # After the refusal it was looked up only: the same request is never sent a third time.
    assert len(stripe.sent("POST", "/v1/payment_intents")) == 2


async def test_an_idempotency_error_does_not_fall_back_to_another_card(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    settings: Settings,
    adapter: StripeGateway,
    stripe: ScriptedStripe,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_fallback = settings.model_copy(update={"renewal_fallback_enabled": True})
    renewer = RenewalEngine(sessionmaker, adapter, clock, with_fallback, worker="w1")
    service = await due_service(session, clock)
    await factories.card_method(session, "cus_1", now=clock.now(), gateway_pm="pm_ok_spare")
    await session.commit()
    stripe.fail_next("charge", None, processed=True)
    await renewer.sweep()
    metadata = reconcile.charge_metadata
    monkeypatch.setattr(
        reconcile, "charge_metadata", lambda r, key: {**metadata(r, key), "release": "2"}
    )
    past_the_lease(clock, settings)
    summary = await renewer.sweep()
    assert (summary.payment_method_switched, summary.failed) == (0, 0)
    past_the_lease(clock, settings)
    await renewer.sweep()
    assert (await renewal_of(session, service.id)).status == "succeeded"
    assert [c["payment_method"] for c in stripe.charges()] == [
        stripe.intents["pi_1"]["payment_method"]
    ]


async def test_a_rejected_api_key_stops_the_sweep_and_leaves_every_renewal_due(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    settings: Settings,
    adapter: StripeGateway,
    stripe: ScriptedStripe,
) -> None:
    small = settings.model_copy(update={"renewal_batch_size": 2, "renewal_concurrency": 1})
    renewer = RenewalEngine(sessionmaker, adapter, clock, small, worker="w1")
    services = [await due_service(session, clock) for _ in range(5)]
    stripe.valid_keys = REVOKED  # the key was rotated at Stripe, not here

    summary = await renewer.sweep()
    assert (summary.failed, summary.succeeded) == (0, 0)
    for service in services:
        renewal = await renewal_of(session, service.id)
        assert renewal.status == "scheduled"
        assert renewal.next_attempt_at is not None and renewal.next_attempt_at <= clock.now()
        assert renewal.failed_charge_count == 0
        # A claimed attempt is closed as never sent (401: Stripe did nothing), never open.
        assert {a.status for a in await attempts(session, renewal.id)} <= {"not_sent"}
    assert summary.gateway_unavailable
    assert summary.gateway_unavailable_reason is not None
    assert "401" in summary.gateway_unavailable_reason
    # Charging stopped at the first refusal instead of spending the batch on the same 401.
    assert len(stripe.requests) == 1
    assert unavailable_gauge() == 1

    stripe.valid_keys = {API_KEY}  # the operator deploys the new key
    clock.advance(timedelta(minutes=5))
    summary = await renewer.sweep()
    assert (summary.succeeded, summary.gateway_unavailable) == (5, False)
    assert summary.gateway_unavailable_reason is None
    assert len(stripe.charges()) == 5
    assert unavailable_gauge() == 0


async def test_a_rejected_api_key_on_the_resend_keeps_the_attempt_open(
    session: AsyncSession,
    clock: FrozenClock,
    settings: Settings,
    renewer: RenewalEngine,
    stripe: ScriptedStripe,
    client: httpx.AsyncClient,
    auth: Callable[..., dict[str, str]],
) -> None:
    service = await due_service(session, clock)
    stripe.fail_next("charge", None, processed=True)
    await renewer.sweep()
    stripe.valid_keys = REVOKED
    past_the_lease(clock, settings)
    summary = await renewer.sweep()
    assert summary.gateway_unavailable
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "processing"
    [attempt] = await attempts(session, renewal.id)
    assert attempt.status == "processing"
    assert await retry(client, auth, renewal.id) == 409

    stripe.valid_keys = {API_KEY}
    clock.advance(timedelta(minutes=1))
    assert (await renewer.sweep()).succeeded == 1
    assert len(stripe.charges()) == 1


@pytest.mark.parametrize(
    ("answer", "processed"),
    [
        # Stripe acted, then a dependency outside it failed.
        (error_answer(424, "api_error", code="external_dependency_failed"), True),
        # Stripe acted; a proxy on the way answered 200 with a page of its own.
        (not_json(200), True),
        # Stripe says this one is worth sending again (a lock held by another request).
        (
            error_answer(
                400, "invalid_request_error", {"Stripe-Should-Retry": "true"}, code="lock_timeout"
            ),
            False,
        ),
    ],
    ids=["424", "2xx-not-json", "should-retry-true"],
)
async def test_answers_that_do_not_prove_a_failure_are_reconciled_under_the_same_key(
    session: AsyncSession,
    clock: FrozenClock,
    settings: Settings,
    renewer: RenewalEngine,
    stripe: ScriptedStripe,
    client: httpx.AsyncClient,
    auth: Callable[..., dict[str, str]],
    answer: Callable[[httpx.Request], httpx.Response],
    processed: bool,
) -> None:
    service = await due_service(session, clock)
    stripe.fail_next("charge", answer, processed=processed)
    summary = await renewer.sweep()
    assert (summary.failed, summary.outcome_unknown) == (0, 1)
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "processing"
    assert await retry(client, auth, renewal.id) == 409

    past_the_lease(clock, settings)
    assert (await renewer.sweep()).succeeded == 1
    keys = {r.headers["idempotency-key"] for r in stripe.sent("POST", "/v1/payment_intents")}
    assert len(keys) == 1
    assert len(stripe.charges()) == 1


async def test_a_stored_error_that_stripe_will_not_retry_is_looked_up(
    session: AsyncSession,
    clock: FrozenClock,
    settings: Settings,
    renewer: RenewalEngine,
    stripe: ScriptedStripe,
) -> None:
    """Stripe stored a 500 under the key (it replays it to every repeat) and says so with
    `Stripe-Should-Retry: false`: re-sending can only fetch the same 500 again."""
    service = await due_service(session, clock)
    stored_500 = error_answer(500, "api_error", {"Stripe-Should-Retry": "false"})
    stripe.fail_next("charge", stored_500, processed=True, stored=True)
    assert (await renewer.sweep()).outcome_unknown == 1
    past_the_lease(clock, settings)
    assert (await renewer.sweep()).succeeded == 1
    assert (await renewal_of(session, service.id)).status == "succeeded"
    assert len(stripe.sent("POST", "/v1/payment_intents")) == 1
    assert len(stripe.sent("GET", "/v1/payment_intents/search")) == 1
    assert len(stripe.charges()) == 1


async def test_the_operator_sees_an_unavailable_gateway(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: Callable[..., dict[str, str]],
    session: AsyncSession,
    clock: FrozenClock,
    adapter: StripeGateway,
    stripe: ScriptedStripe,
) -> None:
    app.state.gateway = adapter
    await due_service(session, clock)
    stripe.valid_keys = REVOKED
    admin = auth("ops", admin=True)

    run = (await client.post("/v1/admin/renewals/run", headers=admin)).json()
    assert (run["gateway_unavailable"], run["failed"]) == (True, 0)
    assert "401" in run["gateway_unavailable_reason"]
    ready = await client.get("/readyz")
    assert ready.status_code == 200  # the customer area still works; charging waits
    assert ready.json()["gateway"]["available"] is False
    assert "401" in ready.json()["gateway"]["reason"]
    assert "autorenew_gateway_unavailable 1.0" in (await client.get("/metrics")).text

    stripe.valid_keys = {API_KEY}
    clock.advance(timedelta(minutes=5))
    run = (await client.post("/v1/admin/renewals/run", headers=admin)).json()
    assert (run["gateway_unavailable"], run["succeeded"]) == (False, 1)
    assert (await client.get("/readyz")).json()["gateway"] == {
        "available": True,
        "reason": None,
        "since": None,
    }
