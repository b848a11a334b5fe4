"""Database plumbing: the declarative base, a UTC timestamp type, engines and sessions.

The service runs on SQLite (embedded default) and on PostgreSQL (production, several
replicas). Differences between the two are handled here and nowhere else, but for the
hottest reads' own path (app/core/reads.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so that migrations can refer to them on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores `timestamptz`; SQLite has no timezone type and returns naive values,
    which we store as UTC and mark as UTC on the way out. Naive values are refused on the way
    in: a naive time in a billing system is a bug waiting for a daylight-saving change.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        # asyncpg reads timestamptz as aware datetimes in UTC already: nothing to do per
        # value (a page of services carries a hundred of them).
        if dialect.name == "postgresql" and dialect.driver == "asyncpg":
            return None
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Foreign keys are off by default in SQLite; WAL lets readers run beside the writer;
    # the busy timeout turns a momentary write lock into a short wait instead of an error.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _sqlite_begin_before_savepoint(connection: Any, _name: str) -> None:
    # The sqlite3 driver opens a transaction lazily, at the first INSERT/UPDATE/DELETE. A
    # SAVEPOINT issued before any of them is then a transaction of its own, and releasing it
    # commits for good: a later rollback would undo nothing. Open the real transaction first.
    driver_connection = connection.connection.driver_connection
    if not driver_connection.in_transaction:
        connection.exec_driver_sql("BEGIN")


# A pooled PostgreSQL connection is replaced after this long, so one the network or a
# proxy dropped silently does not wait in the pool for ever.
POOL_RECYCLE_SECONDS = 1800


def refuse_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    # No ping per checkout (it cost three round trips per request: BEGIN, `;`, ROLLBACK).
    # A connection whose server end went away (restart, terminated backend) is usually
    # known closed to asyncpg by the time it is checked out again, for free: the pool then
    # drops it and hands out another. One that dies unnoticed fails its first statement,
    # which invalidates the pool; `read_only` (app/core/reads.py) runs a read once more on a
    # new connection.
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the pooled connection was closed by the server")


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "savepoint", _sqlite_begin_before_savepoint)
        return engine
    # Up to twice `pool_size` connections, each kept once opened: an overflow connection
    # is closed as soon as it is returned, so a burst beyond `pool_size` made every request
    # open a new connection (a handshake, and asyncpg's statements prepared again).
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=2 * pool_size,
        max_overflow=0,
        pool_recycle=POOL_RECYCLE_SECONDS,
    )
    event.listen(engine.sync_engine.pool, "checkout", refuse_closed)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after the commit that the request
    # dependency performs, so responses can be built from them without another query.
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A unit of work for background jobs: commit on success, roll back on error."""
    async with sessionmaker() as session, session.begin():
        yield session
