"""What every benchmark needs: a PostgreSQL server to use, and scratch databases on it."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.core import migrations
from app.core.database import create_engine
from app.core.settings import normalise_database_url


def server_url() -> str:
    """AUTORENEW_BENCH_DATABASE_URL: where benchmarks create their databases."""
    return os.environ.get(
        "AUTORENEW_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )


@asynccontextmanager
async def scratch_database(server_url: str, *, template: str | None = None) -> AsyncIterator[str]:
    """A database of its own; with `template` (a database on the same server), a copy of it."""
    url = make_url(normalise_database_url(server_url))
    name = f"autorenew_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url.render_as_string(hide_password=False))
    copy = f' TEMPLATE "{template}"' if template else ""
    async with admin.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@asynccontextmanager
async def migrated_database(server_url: str) -> AsyncIterator[str]:
    """A scratch database with the service's schema."""
    async with scratch_database(server_url) as database_url:
        engine = create_engine(database_url)
        await migrations.upgrade(engine)
        await engine.dispose()
        yield database_url
