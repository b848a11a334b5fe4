"""All SQL about services. Every customer-facing query starts from `_owned_by`, so the
ownership filter is written once."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Select, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import PageParams, cut_page, page_query, page_values
from app.core.reads import Reads, ReadStatement
from app.services.models import AppliedSettings, Service, ServiceChange


def _owned_by(
    customer_id: str | BindParameter[str] | None, *, columns: bool = False
) -> Select[tuple[Service]]:
    # `columns`: the table's columns, for rows without models (the read-only routes).
    query = select(Service.__table__) if columns else select(Service)
    if customer_id is not None:
        query = query.where(Service.customer_id == customer_id)
    return query


async def get(
    session: AsyncSession,
    service_id: str,
    *,
    customer_id: str | None = None,
    for_update: bool = False,
) -> Service | None:
    """One service; with `customer_id`, only if it is that customer's."""
    query = _owned_by(customer_id).where(Service.id == service_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def get_many(
    session: AsyncSession,
    service_ids: Sequence[str],
    *,
    customer_id: str | None,
    for_update: bool,
) -> list[Service]:
    """Services by id, in id order (so concurrent lockers queue instead of deadlocking);
    with `customer_id`, only that customer's."""
    query = _owned_by(customer_id).where(Service.id.in_(service_ids)).order_by(Service.id)
    if for_update:
        query = query.with_for_update()
    return list((await session.execute(query)).scalars())


def list_query(
    *,
    customer_id: str | BindParameter[str] | None,
    status: str | None = None,
    auto_renew: bool | BindParameter[bool] | None = None,
    expiring_before: datetime | BindParameter[datetime] | None = None,
    columns: bool = False,
) -> Select[tuple[Service]]:
    """Services filtered for a list (each filter a value, or a bind parameter for a
    statement compiled once); app.core.pagination orders and pages it."""
    query = _owned_by(customer_id, columns=columns)
    if status is not None:
        query = query.where(Service.status == status)
    if auto_renew is not None:
        query = query.where(Service.auto_renew == auto_renew)
    if expiring_before is not None:
        query = query.where(Service.expires_at < expiring_before)
    return query


@functools.cache
def _customer_page(*, auto_renew: bool, expiring_before: bool, after: bool) -> ReadStatement:
    # One statement per combination of filters and cursor, built and compiled once, the
    # values bound by name (`customer_page`).
    query = list_query(
        customer_id=bindparam("customer_id"),
        auto_renew=bindparam("auto_renew") if auto_renew else None,
        expiring_before=bindparam("expiring_before") if expiring_before else None,
        columns=True,
    )
    return ReadStatement.of(
        page_query(query, after=after, created_at=Service.created_at, row_id=Service.id)
    )


async def customer_page(
    reads: Reads,
    customer_id: str,
    page: PageParams,
    *,
    auto_renew: bool | None,
    expiring_before: datetime | None,
) -> tuple[list[Any], str | None]:
    """One page of the customer's services as rows read by attribute, no models (the
    read-only list)."""
    values = page_values(page)
    statement = _customer_page(
        auto_renew=auto_renew is not None,
        expiring_before=expiring_before is not None,
        after=page.cursor is not None,
    )
    values.update(customer_id=customer_id, auto_renew=auto_renew, expiring_before=expiring_before)
    rows = await reads.rows(statement, values)
    return cut_page(rows, page, Service.created_at, Service.id)


async def active_ids_for_customer(session: AsyncSession, customer_id: str) -> list[str]:
    query = (
        select(Service.id)
        .where(Service.customer_id == customer_id, Service.status == "active")
        .order_by(Service.id)
    )
    return list((await session.execute(query)).scalars())


async def using_payment_method(
    session: AsyncSession, payment_method_id: str, *, for_update: bool = False
) -> list[Service]:
    query = (
        select(Service)
        .where(Service.payment_method_id == payment_method_id, Service.status == "active")
        .order_by(Service.id)
    )
    if for_update:
        query = query.with_for_update()
    return list((await session.execute(query)).scalars())


async def changes(session: AsyncSession, service_id: str) -> list[ServiceChange]:
    query = (
        select(ServiceChange)
        .where(ServiceChange.service_id == service_id)
        .order_by(ServiceChange.id)
    )
    return list((await session.execute(query)).scalars())


# --- when the renewal jobs look again (app/services/schedule.py) ---------------------------


def _days_before_expiry(session: AsyncSession, days: int) -> ColumnElement[datetime]:
    # SQLite keeps times as text and has no interval type: its datetime() shifts them.
    if session.get_bind().dialect.name == "sqlite":
        return func.datetime(Service.expires_at, f"{-days:+d} days")
    return Service.expires_at - timedelta(days=days)


async def applied_settings(
    session: AsyncSession, name: str, fingerprint: str, *, now: datetime
) -> AppliedSettings:
    """The settings record `name`, locked; created with `fingerprint` if there is none."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(AppliedSettings)
        .values(name=name, fingerprint=fingerprint, applied_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    query = select(AppliedSettings).where(AppliedSettings.name == name).with_for_update()
    return (await session.execute(query)).scalar_one()


async def bring_notice_forward(session: AsyncSession, *, days: int) -> None:
    """No planning time later than `days` before expiry."""
    bound = _days_before_expiry(session, days)
    await session.execute(
        update(Service)
        .where(Service.renewal_notice_at > bound)
        .values(renewal_notice_at=bound)
        .execution_options(synchronize_session=False)
    )


async def bring_reminders_forward(session: AsyncSession, *, days: int, now: datetime) -> None:
    """Every active service not long expired gets its reminders looked at again, by `days`
    before expiry at the latest (the offsets already sent stay sent)."""
    bound = _days_before_expiry(session, days)
    await session.execute(
        update(Service)
        .where(
            Service.status == "active",
            Service.expires_at > now - timedelta(days=366),
            or_(Service.expiry_reminder_at.is_(None), Service.expiry_reminder_at > bound),
        )
        .values(expiry_reminder_at=bound)
        .execution_options(synchronize_session=False)
    )


def _skip_locked(query: Select[tuple[Service]], session: AsyncSession) -> Select[tuple[Service]]:
    # Replicas running the same job take disjoint pages; SQLite has a single writer.
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(of=Service, skip_locked=True)
    return query


async def due_for_reminder(session: AsyncSession, *, now: datetime, limit: int) -> list[Service]:
    """Services whose next expiry reminder is due, along ix_services_expiry_reminder."""
    query = (
        select(Service)
        .where(Service.expiry_reminder_at <= now)
        .order_by(Service.expiry_reminder_at, Service.id)
        .limit(limit)
    )
    return list((await session.execute(_skip_locked(query, session))).scalars())


async def past_grace_unannounced(
    session: AsyncSession,
    *,
    expired_before: datetime,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Service]:
    """Active services that expired before `expired_before` and were not announced as
    lapsed, along ix_services_lapse in (expiry, id) order, after the last one seen."""
    query = select(Service).where(
        Service.status == "active",
        Service.lapsed_at.is_(None),
        Service.expires_at < expired_before,
    )
    if after is not None:
        query = query.where(
            Service.expires_at >= after[0],
            (Service.expires_at > after[0]) | (Service.id > after[1]),
        )
    query = query.order_by(Service.expires_at, Service.id).limit(limit)
    return list((await session.execute(_skip_locked(query, session))).scalars())
