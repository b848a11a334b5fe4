"""The sandbox's running state, below its HTTP surface: configuration, clock, the ledger's
engine and transactions, the account secret, the edge (limits, chaos).

`api.py` and `challenge.py` reach it through `runtime_of(request)`; `app.py` builds the
Starlette app on top of it. Data flows one way: app → api/challenge → runtime → ledger.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import Request

from app.core.clock import Clock, SystemClock
from app.core.database import create_engine, create_sessionmaker
from app.sandbox.config import SandboxConfig
from app.sandbox.context import Context
from app.sandbox.edge import Chaos, RateLimiter
from app.sandbox.models import LEDGER_VERSION, Account, LedgerVersion, SandboxBase


class OutdatedLedger(RuntimeError):
    """The ledger database was made by an older sandbox, with tables of another shape."""


def _begin_immediate(engine: AsyncEngine) -> None:
    # SQLite: take the write lock when the transaction starts, not at its first write, so two
    # processes racing for one idempotency key queue up instead of failing with "database is
    # locked" when a reader tries to become a writer (SQLAlchemy's documented recipe).
    @event.listens_for(engine.sync_engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        # WAL + NORMAL survives a crashed process (what the sandbox simulates), not a power
        # cut; it saves an fsync per commit.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _create_ledger(connection: Connection, url: str) -> None:
    """Create the tables, or check that the existing ones are of this version's shape. The
    ledger is test data and not migrated: an older one is refused with what to do."""
    existing = set(inspect(connection).get_table_names())
    ours = {table.name for table in SandboxBase.metadata.sorted_tables}
    if existing & ours:
        version = None
        if LedgerVersion.__tablename__ in existing:
            version = connection.scalar(select(LedgerVersion.version))
        if version != LEDGER_VERSION:
            raise OutdatedLedger(
                f"the sandbox ledger at {url} was made by another version of the sandbox "
                f"(ledger version {version}, this one needs {LEDGER_VERSION}); it holds test "
                "data only: delete it (or point AUTORENEW_SANDBOX_DATABASE_URL elsewhere)"
            )
    SandboxBase.metadata.create_all(connection)
    insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    connection.execute(
        insert(LedgerVersion).values(version=LEDGER_VERSION).on_conflict_do_nothing()
    )


class SandboxRuntime:
    def __init__(self, config: SandboxConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.chaos = Chaos(config)
        self.limiter = RateLimiter(config.rate_limit_per_second)
        self._engine: AsyncEngine | None = None
        self._sessionmaker: async_sessionmaker[AsyncSession] | None = None
        self._secret: str | None = None
        # SQLite has one writer at a time: queueing this process's transactions here is far
        # cheaper than letting each connection poll the file lock (busy_timeout backs off in
        # steps of up to 100 ms). Other processes still queue on the file lock.
        self._write_lock: asyncio.Lock | None = None
        # Set when a request wrote events, so the webhook sender need not wait for its poll.
        self.events_written = asyncio.Event()

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        if self._sessionmaker is None:
            raise RuntimeError("the sandbox is not started")
        return self._sessionmaker

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A unit of work on the ledger: committed on success, rolled back on error."""
        if self._write_lock is None:
            async with self.sessionmaker() as session, session.begin():
                yield session
            return
        async with self._write_lock, self.sessionmaker() as session, session.begin():
            yield session

    @property
    def secret(self) -> str:
        if self._secret is None:
            raise RuntimeError("the sandbox is not started")
        return self._secret

    async def start(self) -> None:
        engine = create_engine(self.config.database_url, pool_size=5)
        if engine.dialect.name == "sqlite":
            _begin_immediate(engine)
            self._write_lock = asyncio.Lock()
        try:
            async with engine.begin() as connection:
                if engine.dialect.name == "postgresql":
                    # Several sandbox processes may start at once on one ledger.
                    await connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7340237)")
                await connection.run_sync(_create_ledger, self.config.database_url)
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine
        self._sessionmaker = create_sessionmaker(engine)
        self._secret = await self._account_secret()

    async def _account_secret(self) -> str:
        # Every process on this ledger must key fingerprints the same way: the first one to
        # start writes the secret, the others read it.
        try:
            async with self.transaction() as session:
                account = await session.scalar(select(Account).where(Account.id == 1))
                if account is None:
                    account = Account(id=1, secret=secrets.token_hex(32))
                    session.add(account)
                return account.secret
        except IntegrityError:
            # Another process wrote it between our read and our insert: read theirs.
            async with self.sessionmaker() as session:
                return (await session.get_one(Account, 1)).secret

    async def stop(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
            self._sessionmaker = None

    def context(self, request: Request | None, idempotency_key: str | None = None) -> Context:
        return Context(
            now=self.clock.now(),
            secret=self.secret,
            public_url=self.public_url(request),
            idempotency_key=idempotency_key,
            request_id=getattr(request.state, "stripe_request_id", None) if request else None,
            webhooks=self.config.webhook_url is not None,
        )

    def public_url(self, request: Request | None) -> str:
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        if request is None:
            return ""
        root = request.scope.get("root_path", "")
        return f"{request.url.scheme}://{request.url.netloc}{root}".rstrip("/")


def runtime_of(request: Request) -> SandboxRuntime:
    runtime: SandboxRuntime = request.app.state.sandbox
    return runtime
