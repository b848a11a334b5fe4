"""All SQL of the events package.

Ownership is written once: `_customer_events(customer_id)` is the only way customer routes
read events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.models import (
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

# --- events -------------------------------------------------------------------------------


_ON_CONFLICT = (
    "ON CONFLICT (resource_type, resource_id) "
    "DO UPDATE SET last_sequence = event_sequences.last_sequence + excluded.last_sequence "
    "RETURNING resource_type, resource_id, last_sequence"
)
# unnest keeps the arrays' (sorted) order, as VALUES does.
_NEXT_SEQUENCES_PG = text(
    "INSERT INTO event_sequences (resource_type, resource_id, last_sequence) "  # noqa: S608
    "SELECT * FROM unnest(CAST(:types AS VARCHAR[]), CAST(:ids AS VARCHAR[]), "
    f"CAST(:counts AS INTEGER[])) {_ON_CONFLICT}"
)


async def next_sequences(session: AsyncSession, resources: Sequence[tuple[str, str]]) -> list[int]:
    """Take the next number for each (resource type, resource id), atomically, in one trip.

    One upsert: the first event of a resource creates its counter row; later ones add to
    it. A resource named k times gets k consecutive numbers, in the order given. The
    increment row-locks the counters until the caller's transaction ends, so a concurrent
    emitter for the same resource waits and then reads the committed value: numbers follow
    commit order. A rolled-back transaction gives its numbers back with its events.

    Plain SQL on purpose: SQLAlchemy cannot cache a compiled ON CONFLICT DO UPDATE
    construct, and compiling one per call cost more than the rest of an emit. PostgreSQL
    gets one constant text over arrays; SQLite (3.35+) a VALUES list of the same upsert
    (a new text per call, cheap at its scale). Counters are taken in sorted order,
    so two transactions naming the same resources wait for each other, never deadlock.
    """
    wanted = Counter(resources)
    keys = sorted(wanted)
    if session.get_bind().dialect.name == "postgresql":
        # One text for any number of resources (arrays): nothing to build or compile per call.
        result = await session.execute(
            _NEXT_SEQUENCES_PG,
            {
                "types": [resource_type for resource_type, _ in keys],
                "ids": [resource_id for _, resource_id in keys],
                "counts": [wanted[key] for key in keys],
            },
        )
    else:
        rows = ", ".join(f"(:t{i}, :r{i}, :n{i})" for i in range(len(keys)))
        params: dict[str, object] = {}
        for i, (resource_type, resource_id) in enumerate(keys):
            params |= {f"t{i}": resource_type, f"r{i}": resource_id, f"n{i}": wanted[keys[i]]}
        # Only placeholders are formatted into the text; every value is a bound parameter.
        upsert = (
            "INSERT INTO event_sequences (resource_type, resource_id, last_sequence) "  # noqa: S608
            f"VALUES {rows} {_ON_CONFLICT}"
        )
        result = await session.execute(text(upsert), params)
    # The first number of each resource's run, then handed out in the order asked.
    following = {
        (resource_type, resource_id): int(last) - wanted[(resource_type, resource_id)] + 1
        for resource_type, resource_id, last in result.tuples()
    }
    numbers = []
    for resource in resources:
        numbers.append(following[resource])
        following[resource] += 1
    return numbers


@dataclass(frozen=True)
class EventFilters:
    customer_id: str | None = None
    types: Sequence[str] = ()
    resource_type: str | None = None
    resource_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def _customer_events(customer_id: str) -> Select[tuple[Event]]:
    return select(Event).where(Event.customer_id == customer_id)


def _filtered(query: Select[tuple[Event]], filters: EventFilters) -> Select[tuple[Event]]:
    if filters.customer_id is not None:
        query = query.where(Event.customer_id == filters.customer_id)
    if filters.types:
        query = query.where(Event.type.in_(filters.types))
    if filters.resource_type is not None:
        query = query.where(Event.resource_type == filters.resource_type)
    if filters.resource_id is not None:
        query = query.where(Event.resource_id == filters.resource_id)
    if filters.created_after is not None:
        query = query.where(Event.created_at >= filters.created_after)
    if filters.created_before is not None:
        query = query.where(Event.created_at < filters.created_before)
    return query


def _page(
    query: Select[tuple[Event]], after: tuple[datetime, str] | None, limit: int
) -> Select[tuple[Event]]:
    # Newest first; the cursor is the (created_at, id) of the last row already shown.
    if after is not None:
        created_at, event_id = after
        query = query.where(
            or_(
                Event.created_at < created_at,
                and_(Event.created_at == created_at, Event.id < event_id),
            )
        )
    return query.order_by(Event.created_at.desc(), Event.id.desc()).limit(limit)


async def list_customer_events(
    session: AsyncSession,
    customer_id: str,
    filters: EventFilters,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Event]:
    query = _page(_filtered(_customer_events(customer_id), filters), after, limit)
    return list((await session.scalars(query)).all())


async def get_customer_event(
    session: AsyncSession, customer_id: str, event_id: str
) -> Event | None:
    query = _customer_events(customer_id).where(Event.id == event_id)
    return (await session.scalars(query)).one_or_none()


async def list_events(
    session: AsyncSession, filters: EventFilters, after: tuple[datetime, str] | None, limit: int
) -> list[Event]:
    query = _page(_filtered(select(Event), filters), after, limit)
    return list((await session.scalars(query)).all())


async def get_event(session: AsyncSession, event_id: str) -> Event | None:
    return await session.get(Event, event_id)


# --- endpoints ----------------------------------------------------------------------------


async def list_endpoints(session: AsyncSession) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    return list((await session.scalars(query)).all())


# Built once: every transaction that emits events reads it (a sweep, once per group).
_ENABLED_ENDPOINTS = select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))


async def enabled_endpoints(session: AsyncSession) -> list[WebhookEndpoint]:
    return list((await session.scalars(_ENABLED_ENDPOINTS)).all())


async def get_endpoint(session: AsyncSession, endpoint_id: str) -> WebhookEndpoint | None:
    return await session.get(WebhookEndpoint, endpoint_id)


async def delete_endpoint(session: AsyncSession, endpoint_id: str) -> None:
    # Deliveries and attempts go with it (ON DELETE CASCADE); SQLite needs them by hand
    # only when foreign keys are off, which our engine never allows.
    await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))


# --- deliveries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedDelivery:
    delivery_id: str
    lease_token: str
    attempt_count: int
    retry_from: datetime
    event: Event
    endpoint: WebhookEndpoint


async def claim_due_deliveries(
    session: AsyncSession, *, now: datetime, limit: int, lease_until: datetime, token: str
) -> list[ClaimedDelivery]:
    """Lease up to `limit` due deliveries to this dispatcher.

    One UPDATE whose subquery picks the rows: on PostgreSQL the subquery's FOR UPDATE SKIP
    LOCKED lets replicas claim disjoint batches without waiting on each other; on SQLite
    (one replica) starting with a write takes the database's write lock up front, so a
    concurrent writer cannot invalidate a read made earlier in this transaction. The lease
    is the pushed-back `next_attempt_at`: if the claimer dies before recording an outcome,
    the delivery is simply due again when the lease runs out.
    """
    due = (
        select(WebhookDelivery.id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
            WebhookEndpoint.enabled.is_(True),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=WebhookDelivery)
    )
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(due))
        .values(next_attempt_at=lease_until, lease_token=token, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    claimed = (
        select(WebhookDelivery, Event, WebhookEndpoint)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.lease_token == token)
    )
    return [
        ClaimedDelivery(
            delivery.id, token, delivery.attempt_count, delivery.retry_from, event, endpoint
        )
        for delivery, event, endpoint in (await session.execute(claimed)).tuples()
    ]


async def settle_delivery(
    session: AsyncSession, delivery_id: str, token: str, values: dict[str, object]
) -> bool:
    """Write an outcome if this dispatcher still holds the lease; False if it lost it."""
    result = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.lease_token == token)
        .values(lease_token=None, **values)
    )
    return bool(getattr(result, "rowcount", 0))


async def deliveries_for_event(session: AsyncSession, event_id: str) -> list[WebhookDelivery]:
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.event_id == event_id)
        .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
    )
    return list((await session.scalars(query)).all())


async def deliveries_for_endpoint(
    session: AsyncSession, endpoint_id: str, status: str | None, limit: int
) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    query = query.order_by(WebhookDelivery.updated_at.desc(), WebhookDelivery.id.desc())
    return list((await session.scalars(query.limit(limit))).all())


async def revive_dead_deliveries(session: AsyncSession, endpoint_id: str, now: datetime) -> int:
    result = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "dead")
        .values(
            status="pending", next_attempt_at=now, retry_from=now, lease_token=None, updated_at=now
        )
    )
    return int(getattr(result, "rowcount", 0))


async def delivery_counts(session: AsyncSession, statuses: Sequence[str]) -> dict[str, int]:
    """How many deliveries are in each of `statuses` (0 for none), from the status index."""
    query = (
        select(WebhookDelivery.status, func.count())
        .where(WebhookDelivery.status.in_(statuses))
        .group_by(WebhookDelivery.status)
    )
    counts = {status: 0 for status in statuses}
    counts.update({status: int(count) for status, count in (await session.execute(query)).tuples()})
    return counts


async def attempts_for(
    session: AsyncSession, delivery_ids: Sequence[str]
) -> dict[str, list[WebhookAttempt]]:
    by_delivery: dict[str, list[WebhookAttempt]] = {id_: [] for id_ in delivery_ids}
    if not delivery_ids:
        return by_delivery
    query = (
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.attempted_at, WebhookAttempt.id)
    )
    for attempt in (await session.scalars(query)).all():
        by_delivery[attempt.delivery_id].append(attempt)
    return by_delivery
