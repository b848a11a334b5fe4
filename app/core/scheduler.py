"""The in-process scheduler: periodic jobs started and stopped with the app.

Every replica runs the same jobs; the database is the coordinator (jobs claim rows with
SKIP LOCKED and leases), so running a job twice at once, on two replicas, is safe by design.
Within one replica APScheduler runs at most one instance of a job and folds missed runs
into one (`coalesce`), so a slow pass is never stacked behind itself.

A job is an async function taking a `JobContext`; `app/jobs.py` lists them all, like
`app/api.py` lists the routers.
"""

from __future__ import annotations

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

log = logging.getLogger("autorenew.scheduler")


@dataclass(frozen=True)
class JobContext:
    """What a job may use. `extras` carries test seams (e.g. an httpx transport)."""

    sessionmaker: async_sessionmaker[AsyncSession]
    clock: Clock
    settings: Settings
    extras: dict[str, Any] = field(default_factory=dict)


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
    try:
        result = await job.run(context)
    except Exception:
        log.exception("scheduled job failed", extra={"job": job.id})
        return None
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


def stop_scheduler(scheduler: AsyncIOScheduler | None) -> None:
    if scheduler is not None and scheduler.running:
        # Running passes are not awaited: whatever they claimed is leased and comes back.
        scheduler.shutdown(wait=False)
