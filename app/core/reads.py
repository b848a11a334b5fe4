"""How the hottest read-only routes reach the database: `read_only(reader, work)`.

`work` gets a `Reads` and runs statements compiled once (`ReadStatement`), each with its
values bound by name. On PostgreSQL a read checks out one connection of the reader pool
(autocommit: each statement of a read-committed transaction sees its own snapshot anyway,
so BEGIN and COMMIT bought nothing but round trips) and runs them on asyncpg itself, which
prepares each statement once per connection. Neither a SQLAlchemy session nor its statement
execution is in the way: they were most of what the product's reads cost beyond the raw
app's (bench/api.py). On SQLite the same reads run through SQLAlchemy Core, on a session.

A connection the server ended while it waited in the pool fails the read's first
statement: the connection is dropped and the read runs once more, on another one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import Select, event
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from app.core.database import POOL_RECYCLE_SECONDS, create_sessionmaker, refuse_closed

T = TypeVar("T")


@dataclass(frozen=True)
class ReadStatement:
    """A read with named bind parameters, built and compiled once: `query` for SQLAlchemy
    (SQLite), `sql` for asyncpg (positional, in `names`' order)."""

    query: Select[Any]
    sql: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, query: Select[Any], *, postgresql: Select[Any] | None = None) -> ReadStatement:
        """`postgresql`: the same read written for PostgreSQL alone (arrays bound as one
        parameter, where `query` has an expanding IN compiled again for every count)."""
        compiled = (postgresql if postgresql is not None else query).compile(
            dialect=postgresql_asyncpg.dialect()  # type: ignore[no-untyped-call]
        )
        names = tuple(compiled.positiontup or ())
        # Every value is bound per call, by name: a value written into the query would be
        # an anonymous parameter that `rows` cannot bind (say so at import, not per call).
        fixed = [name for name in names if not compiled.binds[name].required]
        if fixed:
            raise ValueError(f"name these values with bindparam(): {fixed}")
        return cls(query, str(compiled), names)


class ConnectionLost(Exception):
    """A read's pooled connection turned out dead: it is dropped, and `read_only` runs the
    read again."""


class Reads:
    """The statements of one read, all on one connection."""

    def __init__(
        self, *, driver: asyncpg.Connection | None = None, session: AsyncSession | None = None
    ) -> None:
        self._driver, self._session = driver, session

    async def rows(self, statement: ReadStatement, values: Mapping[str, Any]) -> list[Any]:
        """The rows of `statement` with `values` (names it does not use are left out), each
        read by attribute."""
        if self._driver is not None:
            records = await self._driver.fetch(
                statement.sql, *[values[name] for name in statement.names]
            )
            # Namespaces, whose attributes Python reads at C speed: a `__getattr__` per
            # column read was 2 % of the services list (twenty rows of a dozen columns).
            return [SimpleNamespace(**dict(record.items())) for record in records]
        assert self._session is not None
        connection = await self._session.connection()  # Core rows, no ORM result machinery
        return list((await connection.execute(statement.query, dict(values))).all())


class Reader:
    """What `read_only` reads with: PostgreSQL's reader pool, or SQLite's sessions on the
    writers' engine (its driver opens no transaction for a SELECT)."""

    def __init__(self, engine: AsyncEngine, *, pool_size: int = 10) -> None:
        self._pool: AsyncEngine | None = None
        if engine.dialect.name != "sqlite":
            # A pool of its own, in autocommit from the start: the writers' engine switched
            # per checkout (`execution_options(isolation_level=…)`) paid for the switch and
            # its reset on every request.
            self._pool = create_async_engine(
                engine.url,
                pool_size=pool_size,
                max_overflow=0,
                pool_recycle=POOL_RECYCLE_SECONDS,
                isolation_level="AUTOCOMMIT",
            )
            event.listen(self._pool.sync_engine.pool, "checkout", refuse_closed)
        self.sessionmaker = create_sessionmaker(self._pool or engine)

    @asynccontextmanager
    async def reads(self) -> AsyncIterator[Reads]:
        if self._pool is None:
            async with self.sessionmaker() as session:
                yield Reads(session=session)
            return
        pooled = await self._pool.raw_connection()
        try:
            yield Reads(driver=pooled.driver_connection)
        except (asyncpg.InterfaceError, asyncpg.PostgresConnectionError, OSError) as exc:
            pooled.invalidate(exc)  # closed and never handed out again
            raise ConnectionLost(str(exc)) from exc
        finally:
            pooled.close()  # back to the pool

    async def dispose(self) -> None:
        if self._pool is not None:
            await self._pool.dispose()


async def read_only(reader: Reader, work: Callable[[Reads], Awaitable[T]]) -> T:
    """`work(reads)`. A read writes nothing, so when its pooled connection turns out dead on
    first use it runs once more, on a fresh connection."""

    async def once() -> T:
        async with reader.reads() as reads:
            return await work(reads)

    return await _twice(once)


async def read_models(reader: Reader, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """`read_only` for the rare read that needs models: `work(session)` on a session of
    the reader's pool (out of a `read_only`, which holds a connection of that pool)."""

    async def once() -> T:
        async with reader.sessionmaker() as session:
            return await work(session)

    return await _twice(once)


async def _twice(read: Callable[[], Awaitable[T]]) -> T:
    for attempt in (1, 2):
        try:
            return await read()
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
        except ConnectionLost:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
