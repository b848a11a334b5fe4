"""One renewal run: the card sweep, then the SEPA cycle (pre-notify, release, settle)."""

from __future__ import annotations

import time

from app.core.scheduler import JobContext
from app.renewals.engine.summary import SweepSummary
from app.renewals.engine.sweep import RenewalEngine
from app.sepa.collections import run_cycle


async def run_renewals(engine: RenewalEngine) -> SweepSummary:
    """Sweep card renewals with `engine`, then run the SEPA cycle on the same database.

    The SEPA cycle runs after every sweep (not only on its own schedule) so that a renewal
    the sweep has just planned gets its pre-notification in the same run."""
    started = time.perf_counter()
    summary = await engine.sweep()
    await run_cycle(engine.sessionmaker, engine.clock, engine.settings)
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
