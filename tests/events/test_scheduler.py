"""The in-process scheduler: started with the app, runs the dispatch job, survives failures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.scheduler import Job, JobContext, run_job
from app.core.settings import Settings
from app.jobs import JOBS

from .helpers import Auth, emit_committed, register_endpoint, serving
from .receiver import Receiver


async def test_the_app_runs_the_dispatch_job_on_its_own(
    make_app: Callable[..., FastAPI],
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    app = make_app(scheduler_enabled=True, webhook_dispatch_interval_seconds=0.05)
    with Receiver() as receiver:
        async with serving(app) as client:
            scheduler = app.state.scheduler
            assert {job.id for job in scheduler.get_jobs()} == {job.id for job in JOBS}
            await register_endpoint(client, auth, receiver.url)
            await emit_committed(sessionmaker, clock.now())
            # Waits for the receiver, not for a fixed time; bounded.
            assert await asyncio.to_thread(receiver.arrived.wait, 10)
        assert not scheduler.running, "stopped with the app"
    assert len(receiver.received) == 1


async def test_no_scheduler_when_disabled(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(scheduler_enabled=False)
    async with serving(app):
        assert app.state.scheduler is None


async def test_a_failing_job_is_logged_not_raised(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(context: JobContext) -> None:
        raise RuntimeError("boom")

    context = JobContext(sessionmaker, clock, Settings())
    assert await run_job(Job("broken", broken, lambda s: 1.0), context) is None
    assert "scheduled job failed" in caplog.text
