"""The pools ping no connection on checkout (it cost three round trips a request): a pooled
connection the server ended (a restart, a failover, a terminated backend) must still not
fail the next request."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.database import create_engine, fetch_on_driver, read_only
from tests import factories


async def _backend_pid(session: AsyncSession) -> int:
    return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


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
    pooled = {
        await read_only(app.state.reader, _backend_pid),
        await read_only(app.state.sessionmaker, _backend_pid),
    }

    # The server ends them, and this waits until their processes are gone.
    killer = create_engine(database_url)
    try:
        async with killer.connect() as connection:
            for pid in pooled:
                ended = await connection.execute(
                    text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid}
                )
                assert ended.scalar_one() is True
    finally:
        await killer.dispose()

    for path in reads:
        response = await client.get(path, headers=auth("cus_1"))
        assert response.status_code == 200, response.text
    # A write after them finds working connections too.
    response = await client.post(f"/v1/payment-methods/{card.id}/default", headers=auth("cus_1"))
    assert response.status_code == 200, response.text


async def test_a_connection_dying_under_a_driver_read_is_dropped_and_the_read_run_again(
    backend: str, app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The hottest reads run on asyncpg itself (`fetch_on_driver`), outside SQLAlchemy's
    error handling: a connection that dies there is invalidated all the same."""
    if backend != "postgresql":
        pytest.skip("SQLite reads do not use the driver path")
    connections: list[int] = []

    async def read(session: AsyncSession) -> list[int]:
        connection = await session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        connections.append(id(driver))
        if len(connections) == 1:
            driver.terminate()  # as a server gone between two statements
        rows = await fetch_on_driver(session, "SELECT 41 + $1 AS answer", 1)
        return [row.answer for row in rows]

    assert await read_only(app.state.reader, read) == [42]
    assert len(set(connections)) == 2  # the second attempt had a new connection
    # The dead one left the pool: the next read finds a working connection at once.
    assert await read_only(app.state.reader, read) == [42]
    assert len(connections) == 3
