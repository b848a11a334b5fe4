"""All SQL of the renewal engine: planning candidates, insert-if-absent, claims, lists."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.core.reads import Reads, ReadStatement
from app.payment_methods.models import PaymentMethod
from app.renewals.models import Renewal, RenewalAttempt
from app.services.models import Service


async def services_to_plan(
    session: AsyncSession, *, now: datetime, limit: int
) -> list[tuple[Service, str | None]]:
    """Services whose planning time has come (`renewal_notice_at` up to now), with their
    payment method's type, which decides the lead. Along ix_services_renewal_notice: the
    caller moves each row out of the range (a later time, or none), so every page starts
    at the front and reads only what is due. On PostgreSQL replicas take disjoint pages.
    The type is the one stored on the service; a row written without it (by hand, by SQL)
    gets it looked up here and stored."""
    query = (
        select(Service)
        .where(Service.renewal_notice_at <= now)
        .order_by(Service.renewal_notice_at, Service.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    services = list((await session.execute(query)).scalars())
    untyped = [s for s in services if s.payment_method_id and s.payment_method_type is None]
    if untyped:
        rows = await session.execute(
            select(PaymentMethod.id, PaymentMethod.type).where(
                PaymentMethod.id.in_({s.payment_method_id for s in untyped})
            )
        )
        types = {row[0]: row[1] for row in rows.all()}
        for service in untyped:
            service.payment_method_type = types.get(service.payment_method_id or "")
    return [(s, s.payment_method_type if s.payment_method_id else None) for s in services]


async def insert_or_revive(
    session: AsyncSession, rows: Sequence[dict[str, Any]]
) -> list[tuple[str, str]]:
    """Insert renewals, or bring back to life a canceled one of the same (service, period):
    planning may run on several replicas at once, and the unique key decides who wins. A
    live renewal of the period is left alone. Returns (renewal id, service id) of each
    renewal planned here."""
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Renewal).values(list(rows))
    revived: dict[str, Any] = {
        column: statement.excluded[column]
        for column in (
            "period_end", "amount", "currency", "payment_method_id", "payment_method_type",
            "status", "due_at", "next_attempt_at", "failed_charge_count", "notified_at",
            "updated_at",
        )
    }  # fmt: skip
    revived |= {"failure_code": None, "failure_reason": None, "action_url": None}
    revived["finished_at"] = None
    planned = statement.on_conflict_do_update(
        index_elements=["service_id", "period_start"],
        set_=revived,
        where=Renewal.status == "canceled",
    ).returning(Renewal.id, Renewal.service_id)
    return [(row[0], row[1]) for row in (await session.execute(planned)).all()]


def due_now(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    return and_(Renewal.status == "scheduled", Renewal.next_attempt_at <= now)


def lease_expired(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    # A lease that ran out: its worker crashed or lost the gateway's answer.
    return and_(Renewal.status == "processing", Renewal.lease_expires_at < now)


# One alias for every claim: a new one per call made SQLAlchemy build its columns and
# cache key again for each batch.
_METHOD = aliased(PaymentMethod)


def claimable(*conditions: ColumnElement[bool]) -> Select[tuple[str]]:
    method = _METHOD
    return (
        select(Renewal.id)
        .join(Service, Service.id == Renewal.service_id)
        .outerjoin(method, method.id == Service.payment_method_id)
        .where(
            or_(*conditions),
            # SEPA renewals are collected by pain.008 batches, not charged here.
            or_(method.type.is_(None), method.type != "sepa_debit"),
        )
    )


async def current_for(session: AsyncSession, services: Sequence[Service]) -> dict[str, Renewal]:
    """Each service's renewal for the period that starts at its expiry, if planned."""
    if not services:
        return {}
    query = select(Renewal).where(
        tuple_(Renewal.service_id, Renewal.period_start).in_(
            [(service.id, service.expires_at) for service in services]
        )
    )
    return {renewal.service_id: renewal for renewal in (await session.execute(query)).scalars()}


# The current renewal of each service, for reads that build no models.
_CURRENT = ReadStatement.of(
    select(Renewal.__table__).where(
        tuple_(Renewal.service_id, Renewal.period_start).in_(bindparam("keys", expanding=True))
    ),
    # PostgreSQL: the pairs as two arrays, one prepared statement for any count (an
    # expanding IN is compiled again for every count).
    postgresql=select(Renewal.__table__).where(
        text(
            "(renewals.service_id, renewals.period_start) IN (SELECT * FROM "
            "unnest(CAST(:ids AS varchar[]), CAST(:starts AS timestamptz[])))"
        )
    ),
)


async def current_rows(reads: Reads, services: Sequence[tuple[str, datetime]]) -> dict[str, Any]:
    """`current_for` as rows, for (service id, expiry) pairs: for read-only routes."""
    if not services:
        return {}
    ids, starts = zip(*services, strict=True)
    values = {"keys": list(services), "ids": list(ids), "starts": list(starts)}
    return {row.service_id: row for row in await reads.rows(_CURRENT, values)}


async def follow_method_type(
    session: AsyncSession, service_id: str, method_type: str | None
) -> None:
    """The service's method changed: its renewals that may still be charged or collected
    (a failed one may be retried) are routed by the new method's type."""
    await session.execute(
        update(Renewal)
        .where(Renewal.service_id == service_id, Renewal.status.not_in(("succeeded", "refunded")))
        .values(payment_method_type=method_type)
        .execution_options(synchronize_session=False)
    )


async def current_of(
    session: AsyncSession, service: Service, *, for_update: bool = False
) -> Renewal | None:
    query = select(Renewal).where(
        Renewal.service_id == service.id, Renewal.period_start == service.expires_at
    )
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


# The sweep's reads by id, built once: `column.in_(values)` builds and coerces one bound
# parameter per value on every call, where an expanding parameter takes the list as it is.
_METHODS_BY_ID = select(PaymentMethod).where(PaymentMethod.id.in_(bindparam("ids", expanding=True)))


def settlement_lock(*columns: Any) -> Select[Any]:
    """`columns` (models or table columns) of the attempts bound as `ids` and of their
    renewals and services, locked in renewal id order: two transactions settling
    overlapping groups wait for each other instead of deadlocking."""
    renewals, attempts, services = Renewal.__table__, RenewalAttempt.__table__, Service.__table__
    return (
        select(*columns)
        .join_from(renewals, attempts, attempts.c.renewal_id == renewals.c.id)
        .join(services, services.c.id == renewals.c.service_id)
        .where(attempts.c.id.in_(bindparam("ids", expanding=True)))
        .order_by(renewals.c.id)
        .with_for_update()
    )


_LOCK_FOR_SETTLEMENT = settlement_lock(Renewal, RenewalAttempt, Service).execution_options(
    populate_existing=True
)


async def methods_by_id(session: AsyncSession, ids: Sequence[str]) -> dict[str, PaymentMethod]:
    if not ids:
        return {}
    rows = await session.execute(_METHODS_BY_ID, {"ids": list(set(ids))})
    return {method.id: method for method in rows.scalars()}


async def lock_for_settlement(
    session: AsyncSession, attempt_ids: Sequence[str]
) -> dict[str, tuple[Renewal, RenewalAttempt, Service]]:
    """Attempts being settled with their renewals and services, locked in one round trip
    (`settlement_lock`). What the session read of them before the lock is replaced by what
    the lock read: another transaction may have settled them since.
    """
    rows = (await session.execute(_LOCK_FOR_SETTLEMENT, {"ids": list(attempt_ids)})).all()
    return {attempt.id: (renewal, attempt, service) for renewal, attempt, service in rows}


async def attempt_with_charge(session: AsyncSession, charge_id: str) -> RenewalAttempt | None:
    """The latest attempt that recorded this gateway charge (a charge confirmed again, on
    session, may be recorded by a later attempt of the same renewal)."""
    query = (
        select(RenewalAttempt)
        .where(RenewalAttempt.gateway_charge_id == charge_id)
        .order_by(RenewalAttempt.started_at.desc(), RenewalAttempt.number.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalars().first()


async def attempt_with_key(session: AsyncSession, idempotency_key: str) -> RenewalAttempt | None:
    query = select(RenewalAttempt).where(RenewalAttempt.idempotency_key == idempotency_key)
    return (await session.execute(query)).scalar_one_or_none()


async def open_attempt(session: AsyncSession, renewal_id: str) -> RenewalAttempt | None:
    query = (
        select(RenewalAttempt)
        .where(RenewalAttempt.renewal_id == renewal_id, RenewalAttempt.status == "processing")
        .order_by(RenewalAttempt.number.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def latest_attempt(session: AsyncSession, renewal: Renewal) -> RenewalAttempt | None:
    query = select(RenewalAttempt).where(
        RenewalAttempt.renewal_id == renewal.id, RenewalAttempt.number == renewal.attempt_count
    )
    return (await session.execute(query)).scalar_one_or_none()


async def open_customer_charge(session: AsyncSession, renewal: Renewal) -> str | None:
    """The gateway charge of this renewal that a customer's browser may still confirm: one
    waiting for authentication, or one on-session whose authentication or card failed (its
    client secret went through the browser, and Stripe lets such a PaymentIntent be
    confirmed again). Paying again confirms it rather than creating a second one."""
    query = (
        select(RenewalAttempt.gateway_charge_id)
        .where(
            RenewalAttempt.renewal_id == renewal.id,
            RenewalAttempt.gateway_charge_id.is_not(None),
            RenewalAttempt.amount == renewal.amount,
            RenewalAttempt.currency == renewal.currency,
            (RenewalAttempt.status == "requires_action")
            | (RenewalAttempt.on_session & (RenewalAttempt.status == "failed")),
        )
        .order_by(RenewalAttempt.number.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def waiting_for_authentication(session: AsyncSession, *, limit: int) -> list[tuple[str, str]]:
    """(attempt id, charge id) of on-session attempts waiting at the gateway's 3-D Secure
    page while their renewal waits too, newest first: those are the ones a customer has
    just finished; an abandoned one stays older and older."""
    query = (
        select(RenewalAttempt.id, RenewalAttempt.gateway_charge_id)
        .join(Renewal, Renewal.id == RenewalAttempt.renewal_id)
        .where(
            Renewal.status == "requires_action",
            RenewalAttempt.number == Renewal.attempt_count,
            RenewalAttempt.status == "requires_action",
            RenewalAttempt.on_session.is_(True),
            RenewalAttempt.gateway_charge_id.is_not(None),
        )
        .order_by(RenewalAttempt.started_at.desc(), RenewalAttempt.id)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


async def attempts_for(
    session: AsyncSession, renewal_ids: Sequence[str]
) -> dict[str, list[RenewalAttempt]]:
    grouped: dict[str, list[RenewalAttempt]] = {renewal_id: [] for renewal_id in renewal_ids}
    if not renewal_ids:
        return grouped
    query = (
        select(RenewalAttempt)
        .where(RenewalAttempt.renewal_id.in_(renewal_ids))
        .order_by(RenewalAttempt.renewal_id, RenewalAttempt.number)
    )
    for attempt in (await session.execute(query)).scalars():
        grouped[attempt.renewal_id].append(attempt)
    return grouped


async def due_backlog(session: AsyncSession, *, now: datetime) -> int:
    waiting = claimable(due_now(now), lease_expired(now))
    query = select(func.count()).select_from(waiting.subquery())
    return int((await session.execute(query)).scalar_one())


async def oldest_due(session: AsyncSession, *, now: datetime) -> datetime | None:
    """When the longest-waiting card renewal became due; None when none is waiting."""
    query = claimable(due_now(now)).with_only_columns(func.min(Renewal.next_attempt_at))
    oldest: datetime | None = (await session.execute(query)).scalar_one()
    return oldest


def list_query(
    *,
    customer_id: str | None,
    service_id: str | None = None,
    status: str | None = None,
) -> Select[tuple[Renewal]]:
    """Renewals filtered for a list; app.core.pagination orders and pages it."""
    query = select(Renewal)
    if customer_id is not None:
        query = query.where(Renewal.customer_id == customer_id)
    if service_id is not None:
        query = query.where(Renewal.service_id == service_id)
    if status is not None:
        query = query.where(Renewal.status == status)
    return query


async def get(
    session: AsyncSession,
    renewal_id: str,
    *,
    customer_id: str | None = None,
    for_update: bool = False,
) -> Renewal | None:
    query = select(Renewal).where(Renewal.id == renewal_id)
    if customer_id is not None:
        query = query.where(Renewal.customer_id == customer_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def latest_paid(session: AsyncSession, service_id: str) -> Renewal | None:
    """The succeeded renewal whose period ends last: what the customer has paid up to."""
    query = (
        select(Renewal)
        .where(Renewal.service_id == service_id, Renewal.status == "succeeded")
        .order_by(Renewal.period_end.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()
