"""The renewal sweep's rows: renewals, their attempts and services read as plain rows
(app/core/rows.py), locked by the statement that reads them.

A sweep claims and settles renewals by the hundred; as mapped instances, loading them,
setting their fields and writing them back cost more than the rules themselves. These rows
go through the same rules (they are RenewalState, AttemptState, ServiceState) and are written
back by `app.core.bulk.write_rows`. Everything else (pay now, webhooks, the API) keeps the
mapped models.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import BindParameter, ColumnElement, Integer, Select, Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.database import UTCDateTime
from app.core.rows import PlainRow
from app.renewals.models import Renewal, RenewalAttempt
from app.renewals.repository import claimable, due_now, lease_expired, settlement_lock
from app.renewals.state import AttemptState, RenewalState
from app.services.models import Service
from app.services.state import ServiceState


class RenewalRow(PlainRow, RenewalState):
    table = cast(Table, Renewal.__table__)


class AttemptRow(PlainRow, AttemptState):
    table = cast(Table, RenewalAttempt.__table__)


class ServiceRow(PlainRow, ServiceState):
    table = cast(Table, Service.__table__)


_RENEWALS, _ATTEMPTS, _SERVICES = RenewalRow.table, AttemptRow.table, ServiceRow.table


def _scan(condition: ColumnElement[bool]) -> Select[Any]:
    return (
        claimable(condition)
        .with_only_columns(*_RENEWALS.columns)
        .order_by(Renewal.next_attempt_at, Renewal.id)
        .limit(bindparam("limit", type_=Integer()))
    )


# The claim's two scans, built once (building them per batch was 2 % of a sweep): leases
# that ran out first, then what is due.
_NOW: BindParameter[datetime] = bindparam("now", type_=UTCDateTime())
_SCANS = (_scan(lease_expired(_NOW)), _scan(due_now(_NOW)))
_LOCKING_SCANS = tuple(scan.with_for_update(of=Renewal, skip_locked=True) for scan in _SCANS)


async def claim_due(session: AsyncSession, *, now: datetime, limit: int) -> list[RenewalRow]:
    """Lock up to `limit` due renewals for this transaction: those whose lease ran out first
    (an answer is owed for them), then scheduled ones by due time; in id order.

    Two scans rather than one query with OR: each walks its own index in claim order and
    stops at `limit`, where the OR had to join and sort every due renewal for each batch.
    Each returns the whole rows it locks: no second read by id. Only those: a renewal that
    another transaction changed while the scan ran is locked and read as that transaction
    left it, but the rows the scan joined to it (its service, the method) stay as they were
    when the scan began, so a method revoked meanwhile would look valid. The caller reads
    services and methods in statements of their own, after the lock.

    On PostgreSQL, SKIP LOCKED lets several replicas claim disjoint batches without waiting
    on each other; the lease written by the caller keeps them claimed after the commit.
    SQLite has a single writer and runs one replica, so the plain select is enough there.
    """
    claimed: list[RenewalRow] = []
    scans = _LOCKING_SCANS if session.get_bind().dialect.name == "postgresql" else _SCANS
    for scan in scans:
        if len(claimed) == limit:
            break
        rows = await session.execute(scan, {"now": now, "limit": limit - len(claimed)})
        claimed += RenewalRow.all_of(rows.all())
    return sorted(claimed, key=lambda renewal: renewal.id)


_SERVICES_BY_ID = select(_SERVICES).where(_SERVICES.c.id.in_(bindparam("ids", expanding=True)))


async def services_by_id(session: AsyncSession, ids: Sequence[str]) -> dict[str, ServiceRow]:
    rows = (await session.execute(_SERVICES_BY_ID, {"ids": list(set(ids))})).all()
    return {service.id: service for service in ServiceRow.all_of(rows)}


_SETTLEMENT = settlement_lock(*_RENEWALS.columns, *_ATTEMPTS.columns, *_SERVICES.columns)
# Where each table's columns end in a settlement row.
_RENEWAL_END = len(_RENEWALS.columns)
_ATTEMPT_END = _RENEWAL_END + len(_ATTEMPTS.columns)


async def lock_for_settlement(
    session: AsyncSession, attempt_ids: Sequence[str]
) -> dict[str, tuple[RenewalRow, AttemptRow, ServiceRow]]:
    """Attempts being settled with their renewals and services, locked in one round trip
    (`repository.settlement_lock`). What they hold is what the lock read:
    another transaction may have settled them since the claim. Renewals of one service
    share one row of it, as they would share its mapped instance.
    """
    locked = {}
    services: dict[str, ServiceRow] = {}
    for row in (await session.execute(_SETTLEMENT, {"ids": list(attempt_ids)})).all():
        attempt = AttemptRow.of(row[_RENEWAL_END:_ATTEMPT_END])
        service = ServiceRow.of(row[_ATTEMPT_END:])
        service = services.setdefault(service.id, service)
        locked[attempt.id] = (RenewalRow.of(row[:_RENEWAL_END]), attempt, service)
    return locked
