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


def postgres_cpu_seconds() -> float | None:
    """CPU time so far of this machine's PostgreSQL: its live processes' own and what its
    exited backends left with the postmaster (Linux /proc; None elsewhere). The difference
    over a run is the database's work for it, give or take its background writers."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                data = stat.read()
        except OSError:
            continue  # ended meanwhile
        name, fields = data[data.index("(") + 1 : data.rindex(")")], data[data.rindex(")") + 2 :]
        if name.startswith("postgres"):
            # utime, stime, and the same of waited-for children (ended backends)
            total += sum(int(value) for value in fields.split()[11:15])
    return total / ticks
