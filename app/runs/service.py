"""One renewal run: the card sweep, the SEPA cycle (pre-notify, release, settle), then the
notices due about services (expiry reminders, lapses), counted in one summary."""

from __future__ import annotations

import time

from app.core.scheduler import JobContext
from app.renewals.engine.summary import SweepSummary
from app.renewals.engine.sweep import RenewalEngine
from app.renewals.lapse import announce_lapsed
from app.renewals.reminders import send_expiry_reminders
from app.sepa.collections import CycleSummary, run_cycle


def add_cycle(summary: SweepSummary, cycle: CycleSummary) -> None:
    """The SEPA cycle's counts in the run's summary (its metrics count themselves)."""
    summary.failed += cycle.failed
    summary.canceled += cycle.canceled
    summary.notices += cycle.prenotified
    summary.sepa_prenotified += cycle.prenotified
    summary.sepa_waiting += cycle.waiting
    summary.sepa_released += cycle.released
    summary.sepa_settled += cycle.settled


async def run_renewals(engine: RenewalEngine) -> SweepSummary:
    """Sweep card renewals with `engine`, then run the SEPA cycle on the same database,
    then send the reminders and lapse notices that are due.

    The SEPA cycle runs after every sweep (not only on its own schedule) so that a renewal
    the sweep has just planned gets its pre-notification in the same run; the notices
    about services come last, so they say what the run left scheduled."""
    started = time.perf_counter()
    summary = await engine.sweep()
    add_cycle(summary, await run_cycle(engine.sessionmaker, engine.clock, engine.settings))
    summary.expiry_reminders = await send_expiry_reminders(
        engine.sessionmaker, engine.clock.now(), engine.settings
    )
    summary.lapsed = await announce_lapsed(engine.sessionmaker, engine.clock.now(), engine.settings)
    summary.duration_seconds = round(time.perf_counter() - started, 3)
    return summary


async def renewals_job(context: JobContext) -> SweepSummary:
    """The scheduled job: one run with this replica's gateway."""
    if context.gateway is None:
        raise RuntimeError("the renewal sweep needs a payment gateway in its job context")
    engine = RenewalEngine(
        context.sessionmaker,
        context.gateway,
        context.clock,
        context.settings,
        availability=context.gateway_availability,
    )
    return await run_renewals(engine)
