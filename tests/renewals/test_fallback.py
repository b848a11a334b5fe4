"""The optional payment-method fallback: when a renewal's method fails for good, the customer's
next method pays instead, each switch on record; off by default."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.settings import Settings
from app.events.models import Event
from app.payment_methods.models import PaymentMethod
from app.renewals import fallback
from app.renewals.engine.sweep import RenewalEngine
from app.renewals.reasons import and_finally, describe
from app.services import repository as services_repository
from app.services.models import Service
from tests import factories
from tests.conftest import T0
from tests.renewals.fake_gateway import FakeGateway
from tests.renewals.test_engine import attempts, renewal_of

pytestmark = pytest.mark.usefixtures("sessionmaker")


@pytest.fixture
def fallback_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"renewal_fallback_enabled": True})


@pytest.fixture
def renewer(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: FakeGateway,
    clock: FrozenClock,
    fallback_settings: Settings,
) -> RenewalEngine:
    return RenewalEngine(sessionmaker, gateway, clock, fallback_settings, worker="test-worker")


async def card(
    session: AsyncSession,
    clock: FrozenClock,
    gateway: FakeGateway,
    behaviour: str = "ok",
    *,
    customer_id: str = "cus_1",
    **kwargs: object,
) -> PaymentMethod:
    method = await factories.card_method(session, customer_id, now=clock.now(), **kwargs)  # type: ignore[arg-type]
    gateway.behaviours[method.gateway_payment_method_id or ""] = behaviour
    clock.advance(timedelta(seconds=1))  # created one after the other: "oldest first" is defined
    return method


async def service_paid_by(
    session: AsyncSession,
    clock: FrozenClock,
    method: PaymentMethod,
    *,
    currency: str = "EUR",
    expires_in: timedelta = timedelta(days=5),
) -> Service:
    service = await factories.service(
        session, "cus_1", now=clock.now(), expires_in=expires_in, method=method, currency=currency
    )
    await session.commit()
    return service


async def refreshed(session: AsyncSession, service: Service) -> Service:
    await session.refresh(service)
    return service


async def method_changes(session: AsyncSession, service_id: str) -> list[tuple[str, str, str]]:
    rows = await services_repository.changes(session, service_id)
    return [
        (row.actor_id, row.actor_kind, row.reason or "")
        for row in rows
        if row.field == "payment_method_id"
    ]


async def test_a_hard_decline_switches_to_the_default_method_which_is_charged_once(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine, gateway: FakeGateway
) -> None:
    stolen = await card(session, clock, gateway, "hard_decline")
    default = await card(session, clock, gateway, is_default=True)
    service = await service_paid_by(session, clock, stolen)

    first = await renewer.sweep(max_batches=1)
    assert (first.failed, first.payment_method_switched) == (0, 1)
    renewal = await renewal_of(session, service.id)
    assert (renewal.status, renewal.payment_method_id) == ("scheduled", default.id)
    assert renewal.next_attempt_at == clock.now()
    assert (await refreshed(session, service)).payment_method_id == default.id
    [(actor_id, actor_kind, reason)] = await method_changes(session, service.id)
    assert (actor_id, actor_kind) == ("system:renewal-fallback", "system")
    assert renewal.id in reason and stolen.id in reason and "stolen_card" in reason
    event = (
        await session.execute(select(Event).where(Event.type == "service.payment_method_changed"))
    ).scalar_one()
    assert event.data == {
        "service_id": service.id,
        "customer_id": "cus_1",
        "payment_method_id": default.id,
        "previous_payment_method_id": stolen.id,
    }

    second = await renewer.sweep()  # the next sweep charges the default method
    assert second.succeeded == 1
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "succeeded"
    declined, paid = await attempts(session, renewal.id)
    assert (declined.payment_method_id, declined.status) == (stolen.id, "failed")
    assert (paid.payment_method_id, paid.status) == (default.id, "succeeded")
    assert paid.idempotency_key != declined.idempotency_key
    assert len(gateway.successful_charges()) == 1
    assert gateway.calls == [declined.idempotency_key, paid.idempotency_key]


async def test_exhausted_soft_declines_switch_and_the_new_method_gets_its_own_dunning(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine, gateway: FakeGateway
) -> None:
    poor = await card(session, clock, gateway, "soft_decline")
    other = await card(session, clock, gateway, "soft_decline")
    service = await service_paid_by(session, clock, poor, expires_in=timedelta(days=6))

    await renewer.sweep()  # poor: 1st failure, retry in 1 day
    clock.advance(timedelta(days=1))
    await renewer.sweep()  # poor: 2nd failure, retry in 3 days
    clock.advance(timedelta(days=3))
    summary = await renewer.sweep(max_batches=1)  # poor: the next step is past the expiry
    assert summary.payment_method_switched == 1
    renewal = await renewal_of(session, service.id)
    assert (renewal.status, renewal.payment_method_id) == ("scheduled", other.id)
    assert renewal.failed_charge_count == 0

    await renewer.sweep()  # other: its 1st failure, retried in a day (inside the expiry)
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "scheduled"
    assert renewal.next_attempt_at == clock.now() + timedelta(days=1)
    clock.advance(timedelta(days=1))
    await renewer.sweep()  # other: the next step (3 days) is past the expiry: no method left
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "failed"
    assert renewal.failure_reason == and_finally(
        describe("insufficient_funds", "service_expired_before_retry"), "fallback_exhausted"
    )
    assert [a.payment_method_id for a in await attempts(session, renewal.id)] == [
        poor.id,
        poor.id,
        poor.id,
        other.id,
        other.id,
    ]


async def test_an_expired_card_is_replaced_before_the_charge(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine, gateway: FakeGateway
) -> None:
    expired = await card(session, clock, gateway, status="expired")
    spare = await card(session, clock, gateway)
    service = await service_paid_by(session, clock, expired)

    summary = await renewer.sweep()
    assert (summary.payment_method_switched, summary.succeeded) == (1, 1)
    renewal = await renewal_of(session, service.id)
    [paid] = await attempts(session, renewal.id)
    assert (paid.payment_method_id, paid.status) == (spare.id, "succeeded")
    assert (await refreshed(session, service)).payment_method_id == spare.id
    [(_, _, reason)] = await method_changes(session, service.id)
    assert "payment_method_unusable" in reason


async def test_an_expired_card_without_replacement_waits_as_before(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine, gateway: FakeGateway
) -> None:
    expired = await card(session, clock, gateway, status="expired")
    service = await service_paid_by(session, clock, expired)
    summary = await renewer.sweep()
    assert (summary.retry_scheduled, summary.payment_method_switched) == (1, 0)
    renewal = await renewal_of(session, service.id)
    assert (renewal.status, renewal.failure_code) == ("scheduled", "payment_method_unusable")


async def test_without_candidates_the_renewal_fails_with_the_reason(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine, gateway: FakeGateway
) -> None:
    stolen = await card(session, clock, gateway, "hard_decline")
    service = await service_paid_by(session, clock, stolen)
    summary = await renewer.sweep()
    assert (summary.failed, summary.payment_method_switched) == (1, 0)
    renewal = await renewal_of(session, service.id)
    assert (renewal.status, renewal.failure_code) == ("failed", "stolen_card")
    assert renewal.failure_reason == and_finally(
        describe("stolen_card", "hard_decline"), "fallback_exhausted"
    )
    assert await method_changes(session, service.id) == []


async def test_sepa_other_customers_and_unusable_methods_are_never_candidates(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine, gateway: FakeGateway
) -> None:
    stolen = await card(session, clock, gateway, "hard_decline")
    sepa = await factories.sepa_method(session, "cus_1", now=clock.now())
    sepa.is_default = True
    await card(session, clock, gateway, customer_id="cus_2")
    await card(session, clock, gateway, status="requires_action")
    await card(session, clock, gateway, exp=(10, 2026))  # expired last month
    service = await service_paid_by(session, clock, stolen)

    await renewer.sweep()
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "failed"
    assert (await refreshed(session, service)).payment_method_id == stolen.id
    assert len(gateway.calls) == 1


async def test_only_cards_that_can_pay_are_chosen(settings: Settings) -> None:
    """Card → card only: a SEPA method is never chosen, not even the default one (here on a
    USD service it could not pay anyway); the currency, status and expiry checks are the ones
    a customer's own assignment goes through (`check_method_can_pay`)."""
    now = T0
    service = Service(
        id="svc",
        customer_id="cus_1",
        kind="hosting",
        expires_at=now + timedelta(days=5),
        price_currency="USD",
        status="active",
    )

    def method(id: str, type: str, *, is_default: bool = False) -> PaymentMethod:
        return PaymentMethod(
            id=id,
            customer_id="cus_1",
            type=type,
            status="validated",
            is_default=is_default,
            created_at=now,
            gateway_payment_method_id=f"g_{id}",
            card_exp_month=12,
            card_exp_year=2030,
        )

    candidates = [method("pm_sepa", "sepa_debit", is_default=True), method("pm_card", "card")]
    chosen = fallback.next_method(service, candidates, tried=set(), settings=settings, now=now)
    assert chosen is not None and chosen.id == "pm_card"
    assert (
        fallback.next_method(service, candidates[:1], tried=set(), settings=settings, now=now)
        is None
    )
    assert (
        fallback.next_method(service, candidates, tried={"pm_card"}, settings=settings, now=now)
        is None
    )


async def test_methods_already_tried_are_not_tried_again(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine, gateway: FakeGateway
) -> None:
    first = await card(session, clock, gateway, "hard_decline")
    second = await card(session, clock, gateway, "hard_decline", is_default=True)
    third = await card(session, clock, gateway, "hard_decline")
    service = await service_paid_by(session, clock, first)

    await renewer.sweep()  # first → second (the default) → third → nothing left
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "failed"
    assert renewal.failure_reason == and_finally(
        describe("stolen_card", "hard_decline"), "fallback_exhausted"
    )
    tried = [a.payment_method_id for a in await attempts(session, renewal.id)]
    assert tried == [first.id, second.id, third.id]
    assert len(set(a.idempotency_key for a in await attempts(session, renewal.id))) == 3
    assert [
        reason.split(": ")[1] for _, _, reason in await method_changes(session, service.id)
    ] == [
        f"{first.id} failed (stolen_card)",
        f"{second.id} failed (stolen_card)",
    ]


async def test_off_by_default_nothing_is_switched(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    gateway: FakeGateway,
    settings: Settings,
) -> None:
    assert settings.renewal_fallback_enabled is False
    stolen = await card(session, clock, gateway, "hard_decline")
    await card(session, clock, gateway, is_default=True)
    service = await service_paid_by(session, clock, stolen)

    engine = RenewalEngine(sessionmaker, gateway, clock, settings, worker="test-worker")
    summary = await engine.sweep()
    assert (summary.failed, summary.payment_method_switched) == (1, 0)
    renewal = await renewal_of(session, service.id)
    assert (renewal.status, renewal.failure_reason) == (
        "failed",
        describe("stolen_card", "hard_decline"),
    )
    assert (await refreshed(session, service)).payment_method_id == stolen.id
    assert await method_changes(session, service.id) == []
