"""app/core/bulk.py: changed plain rows written in batched UPDATEs and new rows in one INSERT
land exactly as a flush would write them, on both backends, and a naive timestamp is refused
as a flush refuses it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import Table, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.bulk import EncodedJSON, insert_rows, write_rows
from app.core.clock import FrozenClock
from app.core.rows import PlainRow
from app.events.models import Event
from app.services.models import Service
from app.services.state import ServiceState
from tests import factories

events = cast(Table, Event.__table__)


async def _seed_services(
    sessionmaker: async_sessionmaker[AsyncSession], count: int, now: datetime
) -> None:
    """Services svc_0, svc_1, … of customers cus_0, cus_1, …"""
    async with sessionmaker() as session, session.begin():
        for index in range(count):
            await factories.service(session, f"cus_{index}", now=now, service_id=f"svc_{index}")


async def _services_by_id(session: AsyncSession) -> dict[str, Service]:
    return {s.id: s for s in (await session.scalars(select(Service))).all()}


class _ServiceRow(PlainRow, ServiceState):
    table = cast(Table, Service.__table__)


async def _service_rows(session: AsyncSession) -> dict[str, _ServiceRow]:
    rows = _ServiceRow.all_of((await session.execute(select(_ServiceRow.table))).all())
    return {row.id: row for row in rows}


async def test_changed_rows_are_written_with_their_new_values(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    now = clock.now()
    await _seed_services(sessionmaker, 3, now)
    later = now + timedelta(days=365)
    async with sessionmaker() as session, session.begin():
        rows = await _service_rows(session)
        # Two rows change the same columns (one statement), one changes others.
        for service_id in ("svc_0", "svc_1"):
            rows[service_id].expires_at, rows[service_id].updated_at = later, later
        rows["svc_2"].auto_renew, rows["svc_2"].renewal_notice_at = False, None
        await write_rows(session, rows.values())
        assert all(row.changes() == {} for row in rows.values())  # written: nothing left
    async with sessionmaker() as session:
        stored = await _services_by_id(session)
    assert [stored[f"svc_{i}"].expires_at for i in range(3)] == [later, later, now + timedelta(30)]
    assert stored["svc_0"].updated_at == later and stored["svc_0"].name == rows["svc_0"].name
    assert stored["svc_2"].auto_renew is False and stored["svc_2"].renewal_notice_at is None
    assert stored["svc_1"].auto_renew is True


async def test_a_naive_timestamp_is_refused(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    await _seed_services(sessionmaker, 1, clock.now())

    async def write_naive() -> None:
        async with sessionmaker() as session, session.begin():
            row = (await _service_rows(session))["svc_0"]
            row.expires_at = datetime(2030, 1, 1)
            await write_rows(session, [row])

    with pytest.raises((ValueError, StatementError)):
        await write_naive()
    async with sessionmaker() as session:
        service = await session.get(Service, "svc_0")
        assert service is not None and service.expires_at == clock.now() + timedelta(days=30)


async def test_a_field_set_to_the_value_it_had_is_not_written(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    now = clock.now()
    await _seed_services(sessionmaker, 2, now)
    later = now + timedelta(days=365)
    version = text("SELECT xmin::text FROM services WHERE id = 'svc_1'")  # PostgreSQL's
    async with sessionmaker() as session, session.begin():
        on_postgresql = session.get_bind().dialect.name == "postgresql"
        before = await session.scalar(version) if on_postgresql else None
        rows = await _service_rows(session)
        rows["svc_0"].auto_renew, rows["svc_0"].expires_at = True, later
        rows["svc_1"].auto_renew, rows["svc_1"].name = True, rows["svc_1"].name
        assert rows["svc_1"].changes() == {}  # the seed's services renew already
        await write_rows(session, rows.values())
        if on_postgresql:
            assert await session.scalar(version) == before  # svc_1's row was not updated
    async with sessionmaker() as session:
        stored = await _services_by_id(session)
    assert stored["svc_0"].expires_at == later and stored["svc_0"].auto_renew is True
    assert stored["svc_1"].auto_renew is True and stored["svc_1"].updated_at == now


async def test_a_row_given_twice_is_written_once_and_a_vanished_row_is_an_error(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    await _seed_services(sessionmaker, 2, clock.now())
    async with sessionmaker() as session, session.begin():
        rows = await _service_rows(session)
        rows["svc_0"].name = "renamed"
        await write_rows(session, [rows["svc_0"], rows["svc_0"]])
    async with sessionmaker() as session:
        assert (await _services_by_id(session))["svc_0"].name == "renamed"

    async def write_a_deleted_row() -> None:
        async with sessionmaker() as session, session.begin():
            rows = await _service_rows(session)
            for table in ("service_changes", "services"):
                column = "service_id" if table == "service_changes" else "id"
                await session.execute(text(f"DELETE FROM {table} WHERE {column} = 'svc_1'"))  # noqa: S608
            rows["svc_1"].name = "gone"
            await write_rows(session, [rows["svc_1"]])

    with pytest.raises(RuntimeError, match="services: 0 of 1 rows updated"):
        await write_a_deleted_row()


async def test_a_row_read_again_takes_the_new_values_as_what_the_database_holds(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    """What the fallback's locked read of a service gives the sweep's plain row of it."""
    await _seed_services(sessionmaker, 1, clock.now())
    async with sessionmaker() as session, session.begin():
        row = (await _service_rows(session))["svc_0"]
        await session.execute(text("UPDATE services SET name = 'changed' WHERE id = 'svc_0'"))
        locked = await session.get(Service, "svc_0")
        assert locked is not None
        row.reread(locked)
        assert (row.name, row.changes()) == ("changed", {})
        row.auto_renew = False
        with pytest.raises(RuntimeError, match="would lose unwritten changes"):
            row.reread(locked)


def _event_row(number: int, created_at: datetime) -> dict[str, Any]:
    return {
        "id": f"evt_{number}",
        "type": "service.renewed",
        "schema_version": 1,
        "customer_id": "cus_1",
        "resource_type": "service",
        "resource_id": "svc_1",
        "sequence": number,
        "data": {"note": f"é {number}", "nested": [number, None]},
        "created_at": created_at,
    }


async def test_new_rows_are_inserted_as_given(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with sessionmaker() as session, session.begin():
        await insert_rows(session, events, [_event_row(n, clock.now()) for n in (1, 2, 3)])
    async with sessionmaker() as session:
        stored = (await session.scalars(select(Event).order_by(Event.sequence))).all()
    assert [(e.id, e.sequence, e.created_at) for e in stored] == [
        (f"evt_{n}", n, clock.now()) for n in (1, 2, 3)
    ]
    assert stored[1].data == {"note": "é 2", "nested": [2, None]}


async def test_encoded_json_is_written_as_the_data_it_encodes(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    """Already encoded (an event's payload) is not encoded a second time into a string."""
    rows = [_event_row(n, clock.now()) for n in (1, 2)]
    rows[0]["data"] = EncodedJSON(json.dumps(rows[0]["data"], ensure_ascii=False))
    async with sessionmaker() as session, session.begin():
        await insert_rows(session, events, rows)
    async with sessionmaker() as session:
        stored = (await session.scalars(select(Event).order_by(Event.sequence))).all()
    assert [e.data for e in stored] == [
        {"note": "é 1", "nested": [1, None]},
        {"note": "é 2", "nested": [2, None]},
    ]


async def test_rows_missing_a_column_or_with_a_naive_timestamp_are_refused(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    incomplete = _event_row(1, clock.now())
    del incomplete["data"]
    async with sessionmaker() as session:
        with pytest.raises(ValueError, match="missing \\['data'\\]"):
            await insert_rows(session, events, [incomplete])
        with pytest.raises((ValueError, StatementError)):
            await insert_rows(session, events, [_event_row(2, datetime(2030, 1, 1))])
    async with sessionmaker() as session:
        assert (await session.scalars(select(Event))).all() == []
