"""The pools ping no connection on checkout (it cost three round trips a request): a pooled
connection the server ended (a restart, a failover, a terminated backend) must still not
fail the next request."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Integer, bindparam, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.database import create_engine
from app.core.reads import Reads, ReadStatement, read_only
from tests import factories

_BACKEND_PID = ReadStatement.of(select(func.pg_backend_pid().label("pid")))


async def _backend_pid(reads: Reads) -> int:
    return int((await reads.rows(_BACKEND_PID, {}))[0].pid)


async def _terminate(database_url: str, pids: set[int]) -> None:
    """The server ends these backends; this waits until their processes are gone."""
    killer = create_engine(database_url)
    try:
        async with killer.connect() as connection:
            for pid in pids:
                ended = await connection.execute(
                    text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid}
                )
                assert ended.scalar_one() is True
    finally:
        await killer.dispose()


async def test_a_dead_pooled_connection_is_survived(
    backend: str,
    database_url: str,
    app: FastAPI,
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    auth: Callable[..., dict[str, str]],
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite has no server connections to lose")
    async with sessionmaker() as session, session.begin():
        card = await factories.card_method(session, "cus_1", now=clock.now())
        await factories.service(session, "cus_1", now=clock.now(), method=card)
    reads = (f"/v1/payment-methods/{card.id}", "/v1/services")
    for path in reads:  # each pool now holds an idle connection
        assert (await client.get(path, headers=auth("cus_1"))).status_code == 200
    async with app.state.sessionmaker() as session:
        writer = (await session.execute(select(func.pg_backend_pid()))).scalar_one()
    await _terminate(database_url, {await read_only(app.state.reader, _backend_pid), writer})

    for path in reads:
        response = await client.get(path, headers=auth("cus_1"))
        assert response.status_code == 200, response.text
    # A write after them finds working connections too.
    response = await client.post(f"/v1/payment-methods/{card.id}/default", headers=auth("cus_1"))
    assert response.status_code == 200, response.text


async def test_a_connection_dying_under_a_driver_read_is_dropped_and_the_read_run_again(
    backend: str, database_url: str, app: FastAPI
) -> None:
    """The hottest reads run on asyncpg itself (app/core/reads.py), outside SQLAlchemy's
    error handling: a connection that dies there is dropped all the same."""
    if backend != "postgresql":
        pytest.skip("SQLite reads do not use the driver path")
    pids: list[int] = []

    async def read(reads: Reads) -> list[int]:
        pids.append(await _backend_pid(reads))
        if len(pids) == 1:
            await _terminate(database_url, {pids[0]})  # a server gone between two statements
        return [row.answer for row in await reads.rows(_ANSWER, {"n": 1})]

    assert await read_only(app.state.reader, read) == [42]
    assert len(set(pids)) == 2  # the second attempt had a new connection
    # The dead one left the pool: the next read finds a working connection at once.
    assert await read_only(app.state.reader, read) == [42]
    assert len(pids) == 3 and pids[2] != pids[0]


_ANSWER = ReadStatement.of(
    select((literal_column("41", Integer) + bindparam("n", type_=Integer)).label("answer"))
)
