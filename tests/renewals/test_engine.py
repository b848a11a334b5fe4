"""The renewal engine against a scripted gateway: plan, charge once, settle, reconcile, dun."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.settings import Settings
from app.events.models import Event
from app.gateways.throttle import ThrottledGateway
from app.renewals import links
from app.renewals.engine import settle
from app.renewals.engine.sweep import RenewalEngine
from app.renewals.models import Renewal, RenewalAttempt
from app.renewals.reasons import describe
from app.services.models import Service
from tests import factories
from tests.renewals.fake_gateway import FakeGateway

pytestmark = pytest.mark.usefixtures("sessionmaker")


async def due_service(
    session: AsyncSession,
    clock: FrozenClock,
    *,
    behaviour: str = "ok",
    gateway: FakeGateway | None = None,
    expires_in: timedelta = timedelta(days=5),
    **kwargs: object,
) -> Service:
    """A card-paid hosting service inside its 7-day lead: due for renewal now."""
    method = await factories.card_method(session, "cus_1", now=clock.now())
    if gateway is not None:
        gateway.behaviours[method.gateway_payment_method_id or ""] = behaviour
    service = await factories.service(
        session,
        "cus_1",
        now=clock.now(),
        expires_in=expires_in,
        method=method,
        **kwargs,  # type: ignore[arg-type]
    )
    await session.commit()
    return service


async def renewal_of(session: AsyncSession, service_id: str) -> Renewal:
    query = (
        select(Renewal)
        .where(Renewal.service_id == service_id)
        .order_by(Renewal.created_at)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalars().all()[-1]


async def attempts(session: AsyncSession, renewal_id: str) -> list[RenewalAttempt]:
    query = (
        select(RenewalAttempt)
        .where(RenewalAttempt.renewal_id == renewal_id)
        .order_by(RenewalAttempt.number)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(query)).scalars())


async def test_nothing_is_planned_before_the_lead_window(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine
) -> None:
    await due_service(session, clock, expires_in=timedelta(days=8))
    summary = await renewer.sweep()
    assert summary.planned == 0
    assert (await session.execute(select(func.count()).select_from(Renewal))).scalar_one() == 0


async def test_a_due_service_is_charged_once_and_extended_one_period(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine, gateway: FakeGateway
) -> None:
    service = await due_service(session, clock)
    old_expiry = service.expires_at

    summary = await renewer.sweep()
    assert (summary.planned, summary.succeeded) == (1, 1)
    again = await renewer.sweep()  # nothing left to do, nothing charged again
    assert (again.planned, again.claimed) == (0, 0)

    renewal = await renewal_of(session, service.id)
    assert renewal.status == "succeeded"
    assert renewal.period_start == old_expiry
    [attempt] = await attempts(session, renewal.id)
    assert attempt.status == "succeeded"
    assert attempt.gateway_charge_id == gateway.successful_charges()[0].charge_id
    assert attempt.idempotency_key == f"renewal:{renewal.id}:attempt:1"
    assert len(gateway.successful_charges()) == 1
    await session.refresh(service)
    assert service.expires_at == old_expiry.replace(year=old_expiry.year + 1)


async def test_planning_twice_creates_one_renewal(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine
) -> None:
    await due_service(session, clock)
    assert await renewer.plan() == 1
    assert await renewer.plan() == 0
    assert (await session.execute(select(func.count()).select_from(Renewal))).scalar_one() == 1


async def test_planning_pages_through_due_services_and_skips_the_rest(
    session: AsyncSession,
    clock: FrozenClock,
    renewer: RenewalEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("app.renewals.engine.plan.PLANNING_PAGE", 2)
    method = await factories.card_method(session, "cus_1", now=clock.now())
    due, not_due = [], []
    # Three sharing one expiry (pages must not lose or repeat ties), then domains and
    # hosting interleaved at 10 days: inside a domain's 14-day lead, outside hosting's 7.
    for index, (kind, days) in enumerate(
        [("hosting", 3), ("hosting", 3), ("hosting", 3), ("domain", 10), ("hosting", 10),
         ("domain", 10), ("hosting", 12), ("domain", 13), ("hosting", 6)]
    ):  # fmt: skip
        service = await factories.service(
            session,
            "cus_1",
            now=clock.now(),
            service_id=f"svc-{index}",
            kind=kind,
            expires_in=timedelta(days=days),
            method=method,
        )
        (due if kind == "domain" or days <= 7 else not_due).append(service.id)
    await session.commit()

    assert await renewer.plan() == len(due)
    planned = set((await session.execute(select(Renewal.service_id))).scalars())
    assert planned == set(due)


async def test_soft_declines_are_retried_on_the_schedule_then_fail(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine, gateway: FakeGateway
) -> None:
    service = await due_service(
        session, clock, behaviour="soft_decline", gateway=gateway, expires_in=timedelta(days=6)
    )
    await renewer.sweep()
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "scheduled"
    assert renewal.next_attempt_at == clock.now() + timedelta(days=1)
    assert renewal.failure_code == "insufficient_funds"

    assert (await renewer.sweep()).claimed == 0  # not before its time
    clock.advance(timedelta(days=1))
    await renewer.sweep()
    renewal = await renewal_of(session, service.id)
    assert renewal.next_attempt_at == clock.now() + timedelta(days=3)

    clock.advance(timedelta(days=3))
    await renewer.sweep()  # third failure: the next step (5 days) is past the expiry
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "failed"
    assert renewal.failure_reason == describe("insufficient_funds", "service_expired_before_retry")
    assert [a.status for a in await attempts(session, renewal.id)] == ["failed"] * 3
    assert gateway.successful_charges() == []


async def test_a_hard_decline_fails_at_once(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine, gateway: FakeGateway
) -> None:
    service = await due_service(session, clock, behaviour="hard_decline", gateway=gateway)
    await renewer.sweep()
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "failed"
    assert renewal.failure_code == "stolen_card"
    [attempt] = await attempts(session, renewal.id)
    assert attempt.hard_decline


async def test_authentication_required_waits_for_the_customer(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine, gateway: FakeGateway
) -> None:
    service = await due_service(session, clock, behaviour="auth", gateway=gateway)
    await renewer.sweep()
    clock.advance(timedelta(days=2))
    assert (await renewer.sweep()).claimed == 0  # never retried blind
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "requires_action"
    # The renewal's own link, which confirms the payment on-session when followed: the
    # off-session try has no page the customer could use.
    assert renewal.action_url == links.authenticate_url(renewer.settings, renewal.id)
    [attempt] = await attempts(session, renewal.id)
    assert attempt.action_url is not None and attempt.action_url.startswith("https://gw/3ds/")


async def test_a_lost_answer_is_reconciled_without_a_second_charge(
    session: AsyncSession,
    clock: FrozenClock,
    renewer: RenewalEngine,
    gateway: FakeGateway,
    settings: Settings,
) -> None:
    service = await due_service(session, clock, behaviour="lost_response", gateway=gateway)
    first = await renewer.sweep()
    assert first.outcome_unknown == 1
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "processing"

    assert (await renewer.sweep()).claimed == 0  # the lease still holds
    clock.advance(timedelta(seconds=settings.renewal_lease_seconds + 1))
    second = await renewer.sweep()
    assert (second.reconciled, second.succeeded) == (1, 1)

    renewal = await renewal_of(session, service.id)
    assert renewal.status == "succeeded"
    [attempt] = await attempts(session, renewal.id)
    assert attempt.reconciled
    assert len(gateway.successful_charges()) == 1
    assert gateway.calls == [attempt.idempotency_key] * 2  # the same key, re-sent


async def test_a_refused_reconciliation_keeps_the_attempt_and_its_key(
    session: AsyncSession,
    clock: FrozenClock,
    renewer: RenewalEngine,
    gateway: FakeGateway,
    settings: Settings,
) -> None:
    """The first send charged but its answer was lost; the re-send meets a 429. A new
    attempt would carry a new key and charge again: the open attempt must be kept."""
    service = await due_service(session, clock, behaviour="lost_response", gateway=gateway)
    await renewer.sweep()
    clock.advance(timedelta(seconds=settings.renewal_lease_seconds + 1))
    gateway.rate_limit_next = 1
    refused = await renewer.sweep()
    assert (refused.rate_limited, refused.succeeded) == (1, 0)
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "processing"
    assert renewal.lease_expires_at == clock.now() + timedelta(seconds=2)

    clock.advance(timedelta(seconds=3))
    assert (await renewer.sweep()).succeeded == 1
    [attempt] = await attempts(session, renewal.id)
    assert attempt.status == "succeeded"
    assert gateway.calls == [attempt.idempotency_key] * 3
    assert len(gateway.successful_charges()) == 1


async def test_an_answer_lost_before_the_window_closed_is_looked_up_not_resent(
    session: AsyncSession,
    clock: FrozenClock,
    renewer: RenewalEngine,
    gateway: FakeGateway,
) -> None:
    service = await due_service(session, clock, behaviour="unknown_then_ok", gateway=gateway)
    await renewer.sweep()  # never reached the gateway, but we cannot know that
    clock.advance(timedelta(hours=30))  # past the idempotency window
    summary = await renewer.sweep()
    renewal = await renewal_of(session, service.id)
    first, *_rest = await attempts(session, renewal.id)
    assert first.status == "not_sent"
    assert first.failure_code == "no_charge_found"
    assert summary.reconciled == 1
    # A new attempt with a new key then charges it.
    await renewer.sweep()
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "succeeded"
    assert len(gateway.successful_charges()) == 1
    assert gateway.successful_charges()[0].idempotency_key.endswith(":attempt:2")


async def never_sleep(seconds: float) -> None:
    raise AssertionError("a Retry-After past the throttle's wait budget is not waited for")


@pytest.mark.parametrize("throttled", [False, True], ids=["bare", "throttled"])
async def test_rate_limits_defer_without_a_dunning_step(
    session: AsyncSession,
    clock: FrozenClock,
    renewer: RenewalEngine,
    gateway: FakeGateway,
    throttled: bool,
) -> None:
    if throttled:
        # The throttle hands back a 429 whose Retry-After (2 s) is past its budget (1 s).
        renewer.gateway = ThrottledGateway(
            gateway, max_wait_seconds=1, monotonic=lambda: 0.0, sleep=never_sleep
        )
    service = await due_service(session, clock, behaviour="rate_limited", gateway=gateway)
    summary = await renewer.sweep()
    assert summary.rate_limited == 1
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "scheduled"
    assert renewal.failed_charge_count == 0
    assert renewal.next_attempt_at == clock.now() + timedelta(seconds=2)


@pytest.mark.parametrize(
    "change", ["auto_renew_off", "service_cancelled", "payment_method_revoked"]
)
async def test_changes_before_the_charge_cancel_the_renewal(
    session: AsyncSession,
    clock: FrozenClock,
    renewer: RenewalEngine,
    gateway: FakeGateway,
    change: str,
) -> None:
    service = await due_service(session, clock)
    assert await renewer.plan() == 1
    service = await session.get(Service, service.id) or service
    if change == "auto_renew_off":
        service.auto_renew = False
    elif change == "service_cancelled":
        service.status = "cancelled"
    else:
        from app.payment_methods.models import PaymentMethod

        method = await session.get(PaymentMethod, service.payment_method_id)
        assert method is not None
        method.status = "revoked"
    await session.commit()
    await renewer.sweep()
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "canceled"
    assert renewal.failure_code == change
    assert gateway.calls == []


async def test_a_price_change_after_planning_is_what_gets_charged(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine, gateway: FakeGateway
) -> None:
    service = await due_service(session, clock, amount=1299)
    await renewer.plan()
    service = await session.get(Service, service.id) or service
    service.price_amount = 1499
    await session.commit()
    await renewer.sweep()
    [charge] = gateway.successful_charges()
    assert charge.amount == 1499


async def test_sepa_renewals_wait_for_the_collection_batch(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine, gateway: FakeGateway
) -> None:
    method = await factories.sepa_method(session, "cus_1", now=clock.now())
    service = await factories.service(
        session, "cus_1", now=clock.now(), expires_in=timedelta(days=20), method=method
    )
    await session.commit()
    summary = await renewer.sweep()
    assert (summary.planned, summary.claimed) == (1, 0)
    renewal = await renewal_of(session, service.id)
    assert renewal.status == "scheduled"
    assert gateway.calls == []


async def test_after_downtime_one_period_at_a_time(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine, gateway: FakeGateway
) -> None:
    # Its charge date passed six days ago while nothing ran: one renewal, one period.
    service = await due_service(session, clock, expires_in=timedelta(days=1), period_months=1)
    old_expiry = service.expires_at
    summary = await renewer.sweep()
    assert (summary.planned, summary.succeeded) == (1, 1)
    assert (await renewer.sweep()).planned == 0
    assert len(gateway.successful_charges()) == 1
    await session.refresh(service)
    assert service.expires_at == old_expiry.replace(month=old_expiry.month + 1)


async def test_a_lapsed_service_is_not_renewed(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine, gateway: FakeGateway
) -> None:
    await due_service(session, clock, expires_in=timedelta(days=-3))
    assert (await renewer.sweep()).planned == 0
    assert gateway.calls == []


async def event_types(session: AsyncSession) -> list[str]:
    from app.events.models import Event

    query = select(Event.type).order_by(Event.created_at, Event.sequence)
    return list((await session.execute(query)).scalars())


async def test_outcomes_are_announced_in_the_same_transaction(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine, gateway: FakeGateway
) -> None:
    await due_service(session, clock)
    await renewer.sweep()
    # One transaction, one instant: the two events have no order between them.
    assert sorted(await event_types(session)) == ["renewal.succeeded", "service.renewed"]


async def test_a_failed_charge_is_announced_each_time(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine, gateway: FakeGateway
) -> None:
    """A decline with a retry ahead is `retry_scheduled`; `failed` means failed for good."""
    await due_service(
        session, clock, behaviour="soft_decline", gateway=gateway, expires_in=timedelta(days=6)
    )
    await renewer.sweep()
    clock.advance(timedelta(days=1))
    await renewer.sweep()
    assert await event_types(session) == ["renewal.retry_scheduled"] * 2
    clock.advance(timedelta(days=3))
    await renewer.sweep()  # the next step (5 days) is past the expiry
    assert await event_types(session) == ["renewal.retry_scheduled"] * 2 + ["renewal.failed"]
    [retry, _, failed] = (
        await session.execute(select(Event.data).order_by(Event.created_at, Event.sequence))
    ).scalars()
    assert (retry["status"], retry["failure_code"], retry["attempt_count"]) == (
        "scheduled",
        "insufficient_funds",
        1,
    )
    assert retry["next_attempt_at"] is not None
    assert failed["status"] == "failed"
    assert failed["next_action"] == {"type": "choose_payment_method", "url": None}


async def test_answers_of_one_batch_settle_together_each_by_its_own_rules(
    session: AsyncSession, clock: FrozenClock, renewer: RenewalEngine, gateway: FakeGateway
) -> None:
    behaviours = ["ok", "soft_decline", "ok", "hard_decline", "auth", "ok"]
    services = [
        await due_service(session, clock, behaviour=behaviour, gateway=gateway)
        for behaviour in behaviours
    ]
    summary = await renewer.sweep()
    assert (summary.succeeded, summary.retry_scheduled, summary.failed) == (3, 1, 1)
    assert summary.requires_action == 1
    statuses = [(await renewal_of(session, s.id)).status for s in services]
    assert statuses == [
        "succeeded",
        "scheduled",
        "succeeded",
        "failed",
        "requires_action",
        "succeeded",
    ]
    assert len(gateway.successful_charges()) == 3
    events = (
        await session.execute(
            select(Event.type, func.count()).group_by(Event.type).order_by(Event.type)
        )
    ).all()
    assert [tuple(row) for row in events] == [
        ("renewal.failed", 1),
        ("renewal.requires_action", 1),
        ("renewal.retry_scheduled", 1),
        ("renewal.succeeded", 3),
        ("service.renewed", 3),
    ]


def break_rules_for(monkeypatch: pytest.MonkeyPatch, service_id: str) -> None:
    """A rule that raises for one renewal: stands in for a bug or a bad row."""
    apply_outcome = settle.apply_outcome

    def broken(renewal: Renewal, *args: Any, **kwargs: Any) -> None:
        if renewal.service_id == service_id:
            raise RuntimeError("a bug in one renewal's rules")
        apply_outcome(renewal, *args, **kwargs)

    monkeypatch.setattr(settle, "apply_outcome", broken)


async def test_one_bad_answer_does_not_hold_back_the_rest_of_its_group(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    settings: Settings,
    gateway: FakeGateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = [await due_service(session, clock) for _ in range(4)]
    renewer = RenewalEngine(sessionmaker, gateway, clock, settings, worker="w")
    break_rules_for(monkeypatch, services[1].id)

    summary = await renewer.sweep()
    assert summary.succeeded == 3  # counted once each, though their group rolled back
    statuses = [(await renewal_of(session, s.id)).status for s in services]
    assert statuses == ["succeeded", "processing", "succeeded", "succeeded"]

    # The broken one stays processing under its lease, then is reconciled by key: charged
    # once at the gateway, settled as a success without a second charge.
    monkeypatch.undo()
    fixed = RenewalEngine(sessionmaker, gateway, clock, settings, worker="w2")
    clock.advance(timedelta(seconds=settings.renewal_lease_seconds + 1))
    assert (await fixed.sweep()).reconciled == 1
    assert (await renewal_of(session, services[1].id)).status == "succeeded"
    assert len(gateway.successful_charges()) == 4


class HoldingGateway(FakeGateway):
    """Holds the first charge it is asked for until another charge has been answered."""

    def __init__(self) -> None:
        super().__init__()
        self.first_seen = False
        self.other_answered = asyncio.Event()

    async def charge_off_session(self, **kwargs: Any) -> Any:
        if not self.first_seen:
            self.first_seen = True
            await asyncio.wait_for(self.other_answered.wait(), timeout=5)
            return await super().charge_off_session(**kwargs)
        answer = await super().charge_off_session(**kwargs)
        self.other_answered.set()
        return answer


async def test_a_slow_charge_does_not_hold_back_the_next_batch(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    settings: Settings,
) -> None:
    await due_service(session, clock)
    await due_service(session, clock)
    gateway = HoldingGateway()
    one_per_batch = settings.model_copy(update={"renewal_batch_size": 1, "renewal_concurrency": 2})
    renewer = RenewalEngine(sessionmaker, gateway, clock, one_per_batch, worker="w")

    # The first batch's charge is answered only after the second batch's: the sweep must
    # claim and charge the next batch while the first is still waiting for its answer.
    summary = await renewer.sweep()
    assert summary.succeeded == 2
    assert len(gateway.successful_charges()) == 2
