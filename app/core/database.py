"""Database plumbing: the declarative base, a UTC timestamp type, engines and sessions.

The service runs on SQLite (embedded default) and on PostgreSQL (production, several
replicas). Differences between the two are handled here and nowhere else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import ClauseElement, DateTime, MetaData, Select, event
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, DisconnectionError
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


def _refuse_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    # No ping per checkout (it cost three round trips per request: BEGIN, `;`, ROLLBACK).
    # A connection whose server end went away (restart, terminated backend) is usually
    # known closed to asyncpg by the time it is checked out again, for free: the pool then
    # drops it and hands out another. One that dies unnoticed fails its first statement,
    # which invalidates the pool; `read_only` runs a read once more on a new connection.
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
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after the commit that the request
    # dependency performs, so responses can be built from them without another query.
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def create_reader(engine: AsyncEngine, *, pool_size: int = 10) -> async_sessionmaker[AsyncSession]:
    """Sessions for routes that only read: no transaction around their statements.

    On PostgreSQL each statement of a read-committed transaction sees its own snapshot
    anyway, so BEGIN and COMMIT around a read bought nothing but two round trips. The
    reads get a pool of their own whose connections are in autocommit from the start:
    the same engine switched per checkout (`execution_options(isolation_level=…)`) paid
    for the switch and its reset on every request. SQLite keeps the writers' engine and
    its transactions (its driver opens none for a SELECT)."""
    if engine.dialect.name == "sqlite":
        return create_sessionmaker(engine)
    reader = create_async_engine(
        engine.url,
        pool_size=pool_size,
        max_overflow=0,
        pool_recycle=POOL_RECYCLE_SECONDS,
        isolation_level="AUTOCOMMIT",
    )
    event.listen(reader.sync_engine.pool, "checkout", _refuse_closed)
    return create_sessionmaker(reader)


async def dispose_reader(reader: async_sessionmaker[AsyncSession]) -> None:
    bind = reader.kw["bind"]
    if isinstance(bind, AsyncEngine):
        await bind.dispose()


T = TypeVar("T")


class ConnectionLost(Exception):
    """A statement run on the driver itself (`fetch_on_driver`) found its pooled connection
    dead; the connection is invalidated, and `read_only` runs the read again."""


def on_postgresql(session: AsyncSession) -> bool:
    return session.bind.dialect.name == "postgresql"


def postgresql_statement(statement: ClauseElement) -> str:
    """`statement` as asyncpg runs it (`$1`, `$2`, … in the order of its parameters)."""
    return str(statement.compile(dialect=postgresql_asyncpg.dialect()))  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class DriverStatement:
    """A statement with named bind parameters, compiled once: `query` for SQLAlchemy (which
    binds the names), `sql` for asyncpg (`fetch_on_driver`, positional in `names`' order)."""

    query: Select[Any]
    sql: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, query: Select[Any]) -> DriverStatement:
        compiled = query.compile(dialect=postgresql_asyncpg.dialect())  # type: ignore[no-untyped-call]
        return cls(query, str(compiled), tuple(compiled.positiontup or ()))

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[name] for name in self.names]


async def fetch_on_driver(session: AsyncSession, statement: str, *args: Any) -> list[Any]:
    """The rows of a PostgreSQL statement (`postgresql_statement`) run on asyncpg's own
    connection under the session's. The hottest reads skip SQLAlchemy's statement execution,
    a third of their database work (bench/api.py); asyncpg prepares each statement once per
    connection and keeps it. Each row is read by attribute, as a Core row is."""
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None  # a checked-out connection has one
    try:
        records = await driver.fetch(statement, *args)
    except (asyncpg.InterfaceError, asyncpg.PostgresConnectionError, OSError) as exc:
        await connection.invalidate(exc)
        raise ConnectionLost(str(exc)) from exc
    # A namespace, whose attributes Python reads at C speed: a wrapper's `__getattr__` per
    # column read was 2 % of the services list (twenty rows of a dozen columns read).
    return [SimpleNamespace(**dict(record.items())) for record in records]


async def fetch_rows(
    session: AsyncSession, statement: DriverStatement, values: Mapping[str, Any]
) -> list[Any]:
    """The rows of `statement` with `values` (other names in it are left out): on PostgreSQL on
    asyncpg itself (`fetch_on_driver`), elsewhere through SQLAlchemy Core. Either way
    each row is read by attribute."""
    if on_postgresql(session):
        return await fetch_on_driver(session, statement.sql, *statement.args(values))
    connection = await session.connection()
    bound = {name: values[name] for name in statement.names}
    return list((await connection.execute(statement.query, bound)).all())


async def read_only(
    reader: async_sessionmaker[AsyncSession], work: Callable[[AsyncSession], Awaitable[T]]
) -> T:
    """`work(session)` on a reader session. A read writes nothing, so when its pooled
    connection turns out dead on first use it runs once more, on a fresh connection."""
    for attempt in (1, 2):
        async with reader() as session:
            try:
                return await work(session)
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
            except ConnectionLost:
                if attempt == 2:
                    raise
    raise AssertionError("unreachable")


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A unit of work for background jobs: commit on success, roll back on error."""
    async with sessionmaker() as session, session.begin():
        yield session
