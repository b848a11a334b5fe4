"""A real dispatcher process killed with SIGKILL while sending: the event still arrives."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.events.models import WebhookDelivery

from .helpers import Auth, dispatch, emit_committed, register_endpoint
from .receiver import Receiver, verify

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
async def test_a_dispatcher_killed_mid_send_is_taken_over_after_its_lease(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # The child process runs on the system clock: so does the test, from here on.
    clock.set(datetime.now(UTC))
    with Receiver("hang", 200) as receiver:
        endpoint = await register_endpoint(client, auth, receiver.url)
        event = await emit_committed(sessionmaker, clock.now())
        env = {
            **os.environ,
            "AUTORENEW_DATABASE_URL": database_url,
            "AUTORENEW_SCHEDULER_ENABLED": "false",
            "AUTORENEW_WEBHOOK_TIMEOUT_SECONDS": "60",
            "AUTORENEW_WEBHOOK_LEASE_SECONDS": "90",
            "AUTORENEW_WEBHOOK_DISPATCH_BATCH_SIZE": "1",
        }
        child = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "app.cli", "dispatch-events", "--once"],
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            arrived = await asyncio.to_thread(receiver.arrived.wait, 30)
        finally:
            child.send_signal(signal.SIGKILL)
            _, stderr = await asyncio.wait_for(child.communicate(), timeout=10)
        assert arrived, f"the child never sent the webhook: {stderr.decode()[-2000:]}"
        assert child.returncode == -signal.SIGKILL

        async with sessionmaker() as session:
            delivery = (await session.scalars(select(WebhookDelivery))).one()
        assert delivery.status == "pending" and delivery.attempt_count == 0
        assert delivery.lease_token is not None, "the dead child still holds the lease"

        assert (await dispatch(client, auth))["claimed"] == 0
        clock.set(delivery.next_attempt_at + timedelta(seconds=1))
        assert (await dispatch(client, auth))["succeeded"] == 1

    assert [r.headers["webhook-id"] for r in receiver.received] == [event.id, event.id]
    verify(endpoint["secret"], receiver.received[1], now=clock.now())
