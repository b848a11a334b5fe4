"""Test plumbing: every database test runs on SQLite and, when configured, on PostgreSQL.

- `database_url` is parametrised over the backends: SQLite always, PostgreSQL when
  `AUTORENEW_TEST_DATABASE_URL` is set (CI always sets it). Each backend gets a database of
  its own for the run (a temp file; a `CREATE DATABASE` on the server), migrated once.
- Each test starts from empty tables: rows are deleted after it, whatever it committed.
- `app` is the real application on that database with a frozen clock; `client` talks to it
  through httpx's ASGI transport.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import app.models
from app.core import migrations
from app.core.auth import mint_token
from app.core.clock import FrozenClock
from app.core.database import Base, create_engine, create_sessionmaker
from app.core.settings import Settings, normalise_database_url
from app.main import create_app
from app.renewals.engine.sweep import RenewalEngine
from tests.renewals.fake_gateway import FakeGateway

PG_URL = os.environ.get("AUTORENEW_TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])

# A fixed, timezone-aware starting point: tests move the clock, they never sleep.
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def create_scratch_database(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Callable[[], Any]]:
    """A new, empty database; returns its URL and an async function that drops it."""
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("db") / "autorenew-test.db"

        async def drop_file() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)  # noqa: ASYNC240

        return f"sqlite+aiosqlite:///{path}", drop_file

    assert PG_URL is not None
    server_url = make_url(normalise_database_url(PG_URL))
    name = f"autorenew_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url.render_as_string(hide_password=False))
    # CREATE/DROP DATABASE cannot run inside a transaction.
    async with admin.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(f'CREATE DATABASE "{name}"'))

    async def drop_database() -> None:
        async with admin.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()

    return server_url.set(database=name).render_as_string(hide_password=False), drop_database


@pytest.fixture(scope="session")
async def database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    url, drop = await create_scratch_database(backend, tmp_path_factory)
    engine = create_engine(url)
    await migrations.upgrade(engine)
    await engine.dispose()
    yield url
    await drop()


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def _empty_all_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(table.delete())


@pytest.fixture
async def sessionmaker(engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    yield create_sessionmaker(engine)
    await _empty_all_tables(engine)


@pytest.fixture
async def session(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session for calling services directly; the test commits what it wants kept."""
    async with sessionmaker() as session:
        yield session


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=database_url,
        migrate_on_start=False,
        scheduler_enabled=False,
        max_body_bytes=64 * 1024,
        # Most tests drive the engine on services already inside their charge lead: without
        # the notice they are charged at once. The notice rule has tests of its own
        # (tests/renewals/test_notice_timeline.py), with the default 15 days.
        renewal_notice_days=0,
        import_max_bytes=256 * 1024,
        # The mounted sandbox gateway keeps its ledger in a file of the run, never in ./
        sandbox_database_url=f"sqlite:///{tmp_path_factory.getbasetemp()}/sandbox-ledger.db",
    )


@pytest.fixture
def make_app(
    settings: Settings, clock: FrozenClock, sessionmaker: async_sessionmaker[AsyncSession]
) -> Callable[..., FastAPI]:
    """Build the real app; tests may pass changed settings."""

    def build(**overrides: Any) -> FastAPI:
        return create_app(settings.model_copy(update=overrides), clock=clock)

    return build


@pytest.fixture
async def app(make_app: Callable[..., FastAPI]) -> AsyncIterator[FastAPI]:
    application = make_app()
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def token_for(settings: Settings) -> Callable[..., str]:
    def mint(subject: str, *, admin: bool = False, ttl: timedelta | None = None) -> str:
        return mint_token(settings, subject=subject, admin=admin, ttl=ttl, now=datetime.now(UTC))

    return mint


@pytest.fixture
def auth(token_for: Callable[..., str]) -> Callable[..., dict[str, str]]:
    """`auth("cus_1")` → headers for customer cus_1; `auth("ops", admin=True)` for an admin."""

    def headers(subject: str, *, admin: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {token_for(subject, admin=admin)}"}

    return headers


@pytest.fixture
async def scratch_database(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Callable[[], Any]]:
    """For tests that need a database of their own (migrations): yields a factory."""
    drops: list[Callable[[], Any]] = []

    async def make() -> str:
        url, drop = await create_scratch_database(backend, tmp_path_factory)
        drops.append(drop)
        return url

    yield make
    for drop in drops:
        await drop()


# The renewal engine charging through the scripted gateway, for the renewal and gateway-event
# tests. A module that needs another engine (other settings, the real adapter) or another
# gateway defines its own fixture of the same name, which takes precedence.
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


_postgres_tests_passed = 0


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _postgres_tests_passed
    if report.when == "call" and report.passed and "postgresql" in report.nodeid:
        _postgres_tests_passed += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # CI sets AUTORENEW_REQUIRE_POSTGRES=1: a run where no PostgreSQL test passed is a failure,
    # so a missing server or URL cannot silently turn half the suite into skips.
    if os.environ.get("AUTORENEW_REQUIRE_POSTGRES") == "1" and _postgres_tests_passed == 0:
        print("\nAUTORENEW_REQUIRE_POSTGRES=1 but no PostgreSQL test passed")
        session.exitstatus = 1
