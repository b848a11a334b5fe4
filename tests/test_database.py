"""Timestamps are timezone-aware UTC on both backends; naive ones are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, select
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import UTCDateTime

metadata = MetaData()
stamps = Table(
    "test_utc_stamps",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime()),
)


@pytest.fixture
async def stamp_table(engine: AsyncEngine):  # type: ignore[no-untyped-def]
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield stamps
    async with engine.begin() as connection:
        await connection.run_sync(metadata.drop_all)


async def test_timestamps_round_trip_as_utc(engine: AsyncEngine, stamp_table: Table) -> None:
    madrid_winter = timezone(timedelta(hours=1))
    moment = datetime(2027, 1, 31, 23, 30, 15, 123456, tzinfo=madrid_winter)
    async with engine.begin() as connection:
        await connection.execute(stamp_table.insert().values(id=1, at=moment))
        stored = (await connection.execute(select(stamp_table.c.at))).scalar_one()
    assert stored == moment
    assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    assert stored == datetime(2027, 1, 31, 22, 30, 15, 123456, tzinfo=UTC)


async def test_naive_timestamps_are_refused(engine: AsyncEngine, stamp_table: Table) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        async with engine.begin() as connection:
            await connection.execute(stamp_table.insert().values(id=2, at=datetime(2027, 1, 1)))


async def test_a_rolled_back_savepoint_leaves_nothing(
    engine: AsyncEngine, stamp_table: Table
) -> None:
    # On SQLite a SAVEPOINT issued before any other write used to commit on release.
    from datetime import UTC, datetime

    async with engine.connect() as connection:
        transaction = await connection.begin()
        async with connection.begin_nested():
            await connection.execute(
                stamp_table.insert().values(id=3, at=datetime(2027, 1, 1, tzinfo=UTC))
            )
        await transaction.rollback()
    async with engine.connect() as connection:
        rows = (await connection.execute(select(stamp_table.c.id))).all()
    assert rows == []
