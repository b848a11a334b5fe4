"""Every migration runs up to head and back down to base, on both databases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import inspect

import app.models  # noqa: F401
from app.core import migrations
from app.core.database import Base, create_engine


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def test_upgrade_to_head_then_downgrade_to_base(
    scratch_database: Callable[[], Any],
) -> None:
    url = await scratch_database()
    engine = create_engine(url)
    try:
        await migrations.upgrade(engine)
        tables = await _tables(url)
        assert set(Base.metadata.tables) <= tables
        # Running again is a no-op: replicas starting together must not trip over each other.
        await migrations.upgrade(engine)
        await migrations.downgrade(engine, "base")
        assert await _tables(url) <= {"alembic_version"}
        await migrations.upgrade(engine)
        assert set(Base.metadata.tables) <= await _tables(url)
    finally:
        await engine.dispose()
