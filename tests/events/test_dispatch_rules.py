"""Dispatcher rules that need no receiver: backoff shape, lease sizing, send-time SSRF check."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.settings import ConfigurationError, Settings
from app.core.settings_checks import check_settings
from app.events.dispatcher import Dispatcher, backoff
from app.events.endpoints import create_endpoint
from app.events.service import event_with_deliveries

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
        check_settings(Settings(webhook_timeout_seconds=30, webhook_lease_seconds=60))
    check_settings(
        Settings(
            webhook_timeout_seconds=30,
            webhook_lease_seconds=60,
            webhook_dispatch_batch_size=1,
        )
    )


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


async def test_odd_bytes_and_unusable_secrets_are_recorded_not_fatal(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock, settings: Settings
) -> None:
    with Receiver((502, b"bad\x00gateway \xff"), 200) as receiver:
        async with sessionmaker() as session, session.begin():
            endpoint, _ = await create_endpoint(
                session,
                settings,
                url=receiver.url,
                description=None,
                event_types=[],
                enabled=True,
                now=clock.now(),
            )
        event = await emit_committed(sessionmaker, clock.now())
        assert (await Dispatcher(sessionmaker, settings, clock).run_once()).retrying == 1

        # The encryption key id changes under the sealed secret: recorded, retried later.
        rekeyed = settings.model_copy(update={"encryption_key_id": "k2"})
        clock.advance(timedelta(minutes=5))
        assert (await Dispatcher(sessionmaker, rekeyed, clock).run_once()).retrying == 1
    async with sessionmaker() as session:
        _, [(delivery, attempts)] = await event_with_deliveries(session, event.id)
    assert delivery.endpoint_id == endpoint.id
    assert attempts[0].response_body == "bad\ufffdgateway \ufffd"
    assert attempts[1].error == "cannot sign: ValueError"
    assert len(receiver.received) == 1
