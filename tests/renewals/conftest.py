"""What the renewal tests share: the scripted gateway and an engine charging through it.
A test module that needs another engine (other settings, the real adapter) defines its own
`renewer`, which takes precedence."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.settings import Settings
from app.renewals.engine.sweep import RenewalEngine
from tests.renewals.fake_gateway import FakeGateway


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def renewer(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: FakeGateway,
    clock: FrozenClock,
    settings: Settings,
) -> RenewalEngine:
    return RenewalEngine(sessionmaker, gateway, clock, settings, worker="test-worker")
