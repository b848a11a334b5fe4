"""Every migration runs up to head and back down to base, on both databases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import inspect, text

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


async def test_the_live_card_index_refuses_to_hide_existing_duplicates(
    scratch_database: Callable[[], Any],
) -> None:
    url = await scratch_database()
    engine = create_engine(url)
    try:
        await migrations.upgrade(engine, "0006")
        async with engine.begin() as connection:
            for method_id in ("pm_a", "pm_b"):
                await connection.execute(
                    text(
                        "INSERT INTO payment_methods (id, customer_id, type, status, is_default,"
                        " card_fingerprint, created_at, updated_at) VALUES (:id, 'cus_1', "
                        "'card', 'validated', false, 'fp_1', :now, :now)"
                    ),
                    {"id": method_id, "now": datetime.now(UTC)},
                )
        with pytest.raises(RuntimeError, match="hold the same card twice"):
            await migrations.upgrade(engine)
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE payment_methods SET status = 'revoked' WHERE id = 'pm_b'")
            )
        await migrations.upgrade(engine)
        assert "uq_payment_methods_customer_card_live" in await _indexes(url, "payment_methods")
    finally:
        await engine.dispose()


async def _indexes(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            indexes = await connection.run_sync(lambda sync: inspect(sync).get_indexes(table))
            return {index["name"] for index in indexes if index["name"]}
    finally:
        await engine.dispose()


async def test_services_get_their_method_type_on_upgrade(
    scratch_database: Callable[[], Any],
) -> None:
    url = await scratch_database()
    engine = create_engine(url)
    now = {"now": datetime.now(UTC)}
    try:
        await migrations.upgrade(engine, "0010")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO payment_methods (id, customer_id, type, status, is_default,"
                    " created_at, updated_at) VALUES ('pm_s', 'cus_1', 'sepa_debit',"
                    " 'validated', false, :now, :now)"
                ),
                now,
            )
            for service_id, method in (("svc-1", "pm_s"), ("svc-2", None)):
                await connection.execute(
                    text(
                        "INSERT INTO services (id, customer_id, kind, name, status, expires_at,"
                        " expiry_anchor_day, period_months, price_amount, price_currency,"
                        " auto_renew, payment_method_id, created_at, updated_at) VALUES"
                        " (:id, 'cus_1', 'domain', 'x', 'active', :now, 1, 12,"
                        " 1000, 'EUR', true, :method, :now, :now)"
                    ),
                    {**now, "id": service_id, "method": method},
                )
        await migrations.upgrade(engine)
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT id, payment_method_type FROM services ORDER BY id")
            )
            assert [tuple(row) for row in rows] == [("svc-1", "sepa_debit"), ("svc-2", None)]
    finally:
        await engine.dispose()
