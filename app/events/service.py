"""The outbox: `emit` writes an event and the deliveries it owes, in the caller's transaction.

Every module reports its state changes through `emit`, inside the same session as the
change itself and without committing: if the change commits, the event and its deliveries
commit with it; if it rolls back, nothing is ever sent. The dispatcher
(`app.events.dispatcher`) sends what committed, even after a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound
from app.core.ids import new_id
from app.events import repository as repo
from app.events.catalogue import lookup
from app.events.guard import check_no_secrets
from app.events.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint


async def emit(
    session: AsyncSession,
    *,
    type: str,
    resource_id: str,
    data: BaseModel | Mapping[str, Any],
    now: datetime,
    customer_id: str | None,
    resource_type: str | None = None,
) -> Event:
    """Record one event in the caller's transaction (flushes, never commits).

    `type` must be in the catalogue and `data` must fit its payload model (a model instance
    of that class, or a mapping validated against it). Raises `ValueError` (or
    `UnsafeEventData`) for a bug in the emitter: unknown type, wrong shape, a secret.
    """
    spec = lookup(type)
    if isinstance(data, BaseModel):
        if not isinstance(data, spec.payload):
            raise TypeError(f"{type} takes {spec.payload.__name__}, not {data.__class__.__name__}")
        payload = data.model_dump(mode="json")
    else:
        payload = spec.payload.model_validate(dict(data)).model_dump(mode="json")
    check_no_secrets(payload)

    resource_type = resource_type or spec.resource_type
    sequence = await repo.next_sequence(session, resource_type, resource_id)
    event = Event(
        id=new_id("evt"),
        type=type,
        schema_version=spec.version,
        customer_id=customer_id,
        resource_type=resource_type,
        resource_id=resource_id,
        sequence=sequence,
        data=payload,
        created_at=now,
    )
    session.add(event)
    owed = [e for e in await repo.enabled_endpoints(session) if e.wants(type)]
    if owed:
        await session.flush()  # the event row before the deliveries that reference it
        session.add_all(new_delivery(event, endpoint, now) for endpoint in owed)
    # Otherwise the event is written with the caller's other changes, at their flush or
    # commit: one round trip fewer for the common case of no subscriber.
    return event


def new_delivery(event: Event, endpoint: WebhookEndpoint, now: datetime) -> WebhookDelivery:
    return WebhookDelivery(
        id=new_id("whd"),
        event_id=event.id,
        endpoint_id=endpoint.id,
        status="pending",
        attempt_count=0,
        next_attempt_at=now,
        lease_token=None,
        retry_from=now,
        last_status_code=None,
        last_error=None,
        delivered_at=None,
        created_at=now,
        updated_at=now,
    )


async def redeliver(
    session: AsyncSession,
    *,
    event_id: str,
    now: datetime,
    endpoint_id: str | None = None,
) -> list[WebhookDelivery]:
    """Send an event again now: to one endpoint, or to every endpoint it was owed to.

    The delivery goes back to pending with a fresh retry window; its attempts stay on record.
    An endpoint added after the event was emitted gets a delivery of its own.
    """
    event = await repo.get_event(session, event_id)
    if event is None:
        raise NotFound("No such event.", code="event_not_found")
    deliveries = await repo.deliveries_for_event(session, event_id)
    if endpoint_id is not None:
        endpoint = await repo.get_endpoint(session, endpoint_id)
        if endpoint is None:
            raise NotFound("No such webhook endpoint.", code="webhook_endpoint_not_found")
        deliveries = [d for d in deliveries if d.endpoint_id == endpoint_id]
        if not deliveries:
            delivery = new_delivery(event, endpoint, now)
            session.add(delivery)
            await session.flush()
            return [delivery]
    for delivery in deliveries:
        delivery.status = "pending"
        delivery.next_attempt_at = now
        delivery.lease_token = None
        delivery.retry_from = now
        delivery.updated_at = now
    await session.flush()
    return deliveries


# --- history ------------------------------------------------------------------------------


async def customer_events(
    session: AsyncSession,
    customer_id: str,
    filters: repo.EventFilters,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Event]:
    """The caller's own events, newest first; `limit + 1` rows so the caller sees if more."""
    return await repo.list_customer_events(session, customer_id, filters, after, limit + 1)


async def customer_event(session: AsyncSession, customer_id: str, event_id: str) -> Event:
    event = await repo.get_customer_event(session, customer_id, event_id)
    if event is None:
        raise NotFound("No such event.", code="event_not_found")
    return event


async def all_events(
    session: AsyncSession,
    filters: repo.EventFilters,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Event]:
    return await repo.list_events(session, filters, after, limit + 1)


async def event_with_deliveries(
    session: AsyncSession, event_id: str
) -> tuple[Event, list[tuple[WebhookDelivery, list[WebhookAttempt]]]]:
    event = await repo.get_event(session, event_id)
    if event is None:
        raise NotFound("No such event.", code="event_not_found")
    deliveries = await repo.deliveries_for_event(session, event_id)
    attempts = await repo.attempts_for(session, [d.id for d in deliveries])
    return event, [(delivery, attempts[delivery.id]) for delivery in deliveries]
