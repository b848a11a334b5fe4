"""The sandbox as an object: its ledger engine, its ASGI app, its start and stop.

Mounted inside the service, the service's lifespan calls `start()`/`stop()` (Starlette does
not run a mounted app's lifespan); run alone, the app's own lifespan does.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request

from app.core.clock import Clock, SystemClock
from app.core.database import create_engine, create_sessionmaker
from app.sandbox.config import SandboxConfig
from app.sandbox.edge import Chaos, RateLimiter
from app.sandbox.ledger import Context
from app.sandbox.models import Account, SandboxBase


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


class Sandbox:
    def __init__(self, config: SandboxConfig, *, clock: Clock | None = None) -> None:
        from app.sandbox.api import routes

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
        self.app = Starlette(routes=routes(), lifespan=self._lifespan)
        self.app.state.sandbox = self

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
        async with engine.begin() as connection:
            await connection.run_sync(SandboxBase.metadata.create_all)
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

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def context(self, request: Request, idempotency_key: str | None = None) -> Context:
        return Context(
            now=self.clock.now(),
            secret=self.secret,
            public_url=self.public_url(request),
            idempotency_key=idempotency_key,
        )

    def public_url(self, request: Request) -> str:
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        root = request.scope.get("root_path", "")
        return f"{request.url.scheme}://{request.url.netloc}{root}".rstrip("/")


def sandbox_of(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox
