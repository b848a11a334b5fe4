"""The in-process scheduler: periodic jobs started and stopped with the app.

Every replica runs the same jobs; the database is the coordinator (jobs claim rows with
SKIP LOCKED and leases), so running a job twice at once, on two replicas, is safe by design.
Within one replica APScheduler runs at most one instance of a job and folds missed runs
into one (`coalesce`), so a slow pass is never stacked behind itself.

A job is an async function taking a `JobContext`; `app/jobs.py` lists them all, like
`app/api.py` lists the routers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import Clock
from app.core.settings import Settings
from app.gateways.availability import GatewayAvailability
from app.gateways.port import PaymentGateway

log = logging.getLogger("autorenew.scheduler")


@dataclass(frozen=True)
class JobContext:
    """What a job may use. `extras` carries test seams (e.g. an httpx transport)."""

    sessionmaker: async_sessionmaker[AsyncSession]
    clock: Clock
    settings: Settings
    # The card gateway, for jobs that charge (the renewal sweep), and what they learnt of it.
    gateway: PaymentGateway | None = None
    gateway_availability: GatewayAvailability = field(default_factory=GatewayAvailability)
    extras: dict[str, Any] = field(default_factory=dict)
    # Passes in flight, so that shutdown can let them finish before the engine goes away.
    running: set[asyncio.Task[Any]] = field(default_factory=set)


JobFunc = Callable[[JobContext], Awaitable[object]]


@dataclass(frozen=True)
class Job:
    id: str
    run: JobFunc
    # Seconds between runs, read from the settings when the scheduler is built.
    interval: Callable[[Settings], float]


async def run_job(job: Job, context: JobContext) -> object:
    """Run one job once, logging instead of raising: a failing pass must not stop the
    schedule, and the next tick tries again."""
    task = asyncio.current_task()
    if task is not None:
        context.running.add(task)
    try:
        result = await job.run(context)
    except Exception:
        log.exception("scheduled job failed", extra={"job": job.id})
        return None
    finally:
        if task is not None:
            context.running.discard(task)
    log.debug("scheduled job ran", extra={"job": job.id, "result": repr(result)})
    return result


def build_scheduler(jobs: Sequence[Job], context: JobContext) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    for job in jobs:
        scheduler.add_job(
            run_job,
            IntervalTrigger(seconds=job.interval(context.settings), timezone=UTC),
            args=[job, context],
            id=job.id,
            name=job.id,
            replace_existing=True,
        )
    return scheduler


def start_scheduler(jobs: Sequence[Job], context: JobContext) -> AsyncIOScheduler | None:
    """Build and start the scheduler (needs a running event loop), or None when disabled."""
    if not context.settings.scheduler_enabled:
        return None
    scheduler = build_scheduler(jobs, context)
    scheduler.start()
    log.info("scheduler started", extra={"jobs": [job.id for job in jobs]})
    return scheduler


async def stop_scheduler(
    scheduler: AsyncIOScheduler | None, context: JobContext, *, grace_seconds: float = 10.0
) -> None:
    """No new runs; let running passes finish (bounded), then stop. A pass cut off after
    the grace period loses nothing: what it claimed is leased and comes back."""
    if scheduler is None or not scheduler.running:
        return
    scheduler.pause()
    if context.running:
        await asyncio.wait(set(context.running), timeout=grace_seconds)
    scheduler.shutdown(wait=False)
    # APScheduler's asyncio flavour performs the shutdown on the next loop iteration.
    await asyncio.sleep(0)
