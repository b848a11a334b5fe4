"""All SQL for received gateway events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.gateway_events.models import GatewayEvent


async def record_once(
    session: AsyncSession,
    *,
    event_id: str,
    gateway: str,
    event_type: str,
    object_id: str | None,
    now: datetime,
) -> bool:
    """Record a received event; False when it was recorded before (a replay).

    Insert-or-nothing on the primary key: a second delivery of the same event racing the
    first waits for the first transaction on the key, then finds the row and does nothing.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(GatewayEvent)
        .values(
            id=event_id,
            gateway=gateway,
            type=event_type,
            object_id=object_id,
            outcome="received",
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(GatewayEvent.id)
    )
    return (await session.execute(statement)).first() is not None


async def set_outcome(session: AsyncSession, event_id: str, outcome: str) -> None:
    await session.execute(
        update(GatewayEvent)
        .where(GatewayEvent.id == event_id)
        .values(outcome=outcome)
        .execution_options(synchronize_session=False)
    )
