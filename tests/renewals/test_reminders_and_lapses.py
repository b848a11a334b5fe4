"""Expiry reminders by kind, once each per period; lapses said once; late renewals after a
scheduler outage: at most one, for the period that covers today, with its notice."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.renewals import metrics
from app.renewals.models import Renewal
from app.renewals.reminders import reminder_step
from app.services.periods import add_months
from tests.renewals.timeline import Auth, Desk, open_desk


@pytest.fixture
def desk_for(
    make_app: Callable[..., FastAPI],
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> Callable[..., object]:
    def opened(**settings: object) -> object:
        return open_desk(make_app, auth, clock, sessionmaker, **settings)

    return opened


@pytest.fixture
async def desk(desk_for: Callable[..., object]) -> AsyncIterator[Desk]:
    async with desk_for() as desk:  # type: ignore[attr-defined]
        yield desk


def test_only_the_latest_of_several_due_reminders_is_sent() -> None:
    from tests.conftest import T0

    offsets = [30, 7, -3]
    expires = T0 + timedelta(days=5)
    assert reminder_step(expires, offsets, None, T0) == (7, expires + timedelta(days=3))
    assert reminder_step(expires, offsets, 7, T0) == (None, expires + timedelta(days=3))
    later = expires + timedelta(days=3)
    assert reminder_step(expires, offsets, 7, later) == (-3, None)
    assert reminder_step(expires, offsets, -3, later) == (None, None)


async def test_domain_reminders_at_30_7_and_minus_3_days_then_one_lapse(desk: Desk) -> None:
    start = desk.clock.now()
    expires = start + timedelta(days=35)
    await desk.register("example.com", expires_at=expires, kind="domain")  # auto-renew off

    seen = await desk.day_by_day(expires + timedelta(days=6))

    assert seen["service.expiring"] == [
        expires - timedelta(days=30),
        expires - timedelta(days=7),
        expires + timedelta(days=3),
    ]
    reminders = await desk.events("service.expiring")
    assert [r.data["days_before_expiry"] for r in reminders] == [30, 7, -3]
    assert [r.data["renewal_scheduled"] for r in reminders] == [False] * 3
    assert reminders[0].data["renewal_readiness"] == "no_payment_method"
    assert "will not renew by itself" in reminders[0].data["message"]
    # Grace 0: lapsed the first run after expiry, and said once.
    assert seen["service.lapsed"] == [expires + timedelta(days=1)]
    [lapsed] = await desk.events("service.lapsed")
    assert lapsed.data["reason"] == "no_payment_method"
    assert (await desk.service("example.com"))["renewal_readiness"] == "service_lapsed"


async def test_a_renewing_domain_is_reminded_then_renewed_and_not_reminded_again(
    desk: Desk,
) -> None:
    start = desk.clock.now()
    card = await desk.card()
    expires = start + timedelta(days=35)
    await desk.register("example.com", expires_at=expires, kind="domain")
    await desk.choose("example.com", card)

    seen = await desk.day_by_day(expires + timedelta(days=6))

    # The 30-day reminder says when the renewal is charged (a domain's lead: 14 days).
    [reminder] = await desk.events("service.expiring")
    assert reminder.data["days_before_expiry"] == 30
    assert reminder.data["renewal_scheduled"] is True
    assert reminder.data["renewal_at"] == (expires - timedelta(days=14)).isoformat().replace(
        "+00:00", "Z"
    )
    assert seen["renewal.upcoming"] == [expires - timedelta(days=14 + 15)]
    assert seen["renewal.succeeded"] == [expires - timedelta(days=14)]
    # Renewed: nothing about the old expiry at 7 or -3 days, no lapse.
    assert seen["service.expiring"] == [expires - timedelta(days=30)]
    assert "service.lapsed" not in seen


async def test_a_domain_registered_days_before_expiry_gets_the_latest_reminder_only(
    desk: Desk,
) -> None:
    await desk.register("late.example", expires_in=timedelta(days=5), kind="domain")
    summary = await desk.run()
    assert summary["expiry_reminders"] == 1
    [reminder] = await desk.events("service.expiring")
    assert reminder.data["days_before_expiry"] == 7
    assert (await desk.run())["expiry_reminders"] == 0


async def test_after_an_outage_a_service_past_expiry_gets_one_renewal_covering_today(
    desk_for: Callable[..., object],
) -> None:
    async with desk_for(renewal_grace_days=45) as desk:  # type: ignore[attr-defined]
        start = desk.clock.now()
        card = await desk.card()
        expires = start + timedelta(days=60)
        await desk.register("host-1", expires_at=expires, period_months=1, auto_renew=True)
        await desk.choose("host-1", card)
        # The scheduler is down until 35 days after the expiry.
        desk.clock.advance(timedelta(days=95))
        first = await desk.run()
        second = await desk.run()

        assert (first["planned"], first["notices"], first["succeeded"]) == (1, 1, 1)
        assert (second["planned"], second["succeeded"]) == (0, 0)
        assert len(desk.gateway.successful_charges()) == 1
        async with desk.sessionmaker() as session:
            [renewal] = (await session.execute(select(Renewal))).scalars()
        covering = add_months(expires, 2, anchor_day=expires.day)
        assert renewal.period_start == expires
        assert renewal.period_end == covering > desk.clock.now()
        [notice] = await desk.events("renewal.upcoming")
        assert notice.data["notice"] == "short"
        assert (await desk.service("host-1"))["expires_at"] == covering.isoformat().replace(
            "+00:00", "Z"
        )
        assert await desk.events("service.lapsed") == []


async def test_with_no_grace_a_service_found_past_expiry_lapses_once(desk: Desk) -> None:
    start = desk.clock.now()
    card = await desk.card()
    await desk.register("host-1", expires_in=timedelta(days=60), auto_renew=True)
    await desk.choose("host-1", card)
    desk.clock.advance(timedelta(days=61))  # the scheduler was down past the expiry

    first, second = await desk.run(), await desk.run()

    assert (first["planned"], first["lapsed"], second["lapsed"]) == (0, 1, 0)
    assert desk.gateway.calls == []
    [lapsed] = await desk.events("service.lapsed")
    assert lapsed.data["reason"] == "not_renewed_in_time"
    assert lapsed.data["expired_at"] == (start + timedelta(days=60)).isoformat().replace(
        "+00:00", "Z"
    )
    shown = await desk.service("host-1")
    assert (shown["renewal_readiness"], shown["next_charge"]) == ("service_lapsed", None)


async def test_the_run_counts_sepa_outcomes(desk: Desk) -> None:
    sepa = await desk.sepa()
    await desk.register("host-1", expires_in=timedelta(days=90))
    await desk.choose("host-1", sepa)
    desk.clock.advance(timedelta(days=80))  # down until 10 days before expiry
    failed_before = metrics.RENEWAL_OUTCOMES.labels("failed")._value.get()

    summary = await desk.run()

    assert (summary["planned"], summary["failed"], summary["sepa_prenotified"]) == (1, 1, 0)
    assert metrics.RENEWAL_OUTCOMES.labels("failed")._value.get() == failed_before + 1
    [failed] = await desk.events("renewal.failed")
    assert failed.data["failure_code"] == "no_collection_date"
    shown = await desk.service("host-1")
    assert shown["renewal_readiness"] == "renewal_failed"
