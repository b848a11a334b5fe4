"""Run Alembic from inside the service (startup, CLI, tests) on an async engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine


def project_root() -> Path:
    """Where `alembic.ini` and `migrations/` are: beside the package in a source checkout,
    or the working directory when the package is installed as a wheel (the Docker image)."""
    for candidate in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (candidate / "alembic.ini").is_file() and (candidate / "migrations").is_dir():
            return candidate
    raise FileNotFoundError("alembic.ini and migrations/ not found; run from the project folder")


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    root = project_root()
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    # The service configures its own JSON logging; Alembic's fileConfig would replace it.
    config.attributes["configure_logging"] = False
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _serialise(connection: Connection) -> None:
    # Replicas starting together would race to create the same tables; on PostgreSQL the
    # first one takes this transaction-scoped lock and the others wait, then find nothing
    # left to do. SQLite's single writer serialises them already.
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7253110001)")


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    def run(sync: Connection) -> None:
        _serialise(sync)
        command.upgrade(alembic_config(sync), revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    def run(sync: Connection) -> None:
        _serialise(sync)
        command.downgrade(alembic_config(sync), revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)
