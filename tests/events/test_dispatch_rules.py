"""Dispatcher rules that need no receiver: backoff shape, lease sizing, send-time SSRF check."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.settings import ConfigurationError, Settings
from app.events.dispatcher import Dispatcher, backoff
from app.events.endpoints import create_endpoint

from .helpers import emit_committed
from .receiver import Receiver


def test_backoff_doubles_with_jitter_and_gives_up_after_about_three_days() -> None:
    settings = Settings()
    rng = random.Random(7)
    first = backoff(1, settings, rng)
    assert timedelta(seconds=15) <= first <= timedelta(seconds=30)
    assert backoff(40, settings, rng) <= timedelta(hours=12)

    elapsed, attempts = timedelta(0), 0
    window = timedelta(hours=settings.webhook_retry_window_hours)
    while True:
        attempts += 1
        delay = backoff(attempts, settings, rng)
        if elapsed + delay > window:
            break
        elapsed += delay
    assert timedelta(days=2) < elapsed <= timedelta(days=3)
    assert 12 <= attempts <= 25


def test_the_lease_must_outlast_a_whole_pass() -> None:
    with pytest.raises(ConfigurationError, match="LEASE"):
        Settings(webhook_timeout_seconds=30, webhook_lease_seconds=60).check()
    Settings(
        webhook_timeout_seconds=30,
        webhook_lease_seconds=60,
        webhook_dispatch_batch_size=1,
    ).check()


async def test_production_refuses_to_send_to_an_inner_address_at_send_time(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock, settings: Settings
) -> None:
    # Registered while the rules allowed it (or a public name that now resolves inward).
    with Receiver() as receiver:
        async with sessionmaker() as session, session.begin():
            await create_endpoint(
                session,
                settings,
                url=receiver.url,
                description=None,
                event_types=[],
                enabled=True,
                now=clock.now(),
            )
        await emit_committed(sessionmaker, clock.now())
        production = settings.model_copy(update={"env": "production"})
        summary = await Dispatcher(sessionmaker, production, clock).run_once()
    assert summary.retrying == 1
    assert receiver.received == []
