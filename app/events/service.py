"""The outbox: `emit` writes an event and the deliveries it owes, in the caller's transaction.

Every module reports its state changes through `emit`, inside the same session as the
change itself and without committing: if the change commits, the event and its deliveries
commit with it; if it rolls back, nothing is ever sent. The dispatcher
(`app.events.dispatcher`) sends what committed, even after a crash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.bulk import EncodedJSON, insert_rows
from app.core.errors import NotFound
from app.core.ids import new_id
from app.events import repository as repo
from app.events.catalogue import lookup
from app.events.guard import check_no_secrets_in_json
from app.events.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint


@dataclass(frozen=True)
class NewEvent:
    """An event to record: `data` is a payload model instance of its type, or a mapping
    validated against that model."""

    type: str
    resource_id: str
    data: BaseModel | Mapping[str, Any]
    customer_id: str | None
    resource_type: str | None = None


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
    """Record one event in the caller's transaction (never commits).

    `type` must be in the catalogue and `data` must fit its payload model (a model instance
    of that class, or a mapping validated against it). Raises `ValueError` (or
    `UnsafeEventData`) for a bug in the emitter: unknown type, wrong shape, a secret.
    """
    new = NewEvent(type, resource_id, data, customer_id, resource_type)
    (event,) = await emit_all(session, [new], now=now)
    return event


async def emit_all(
    session: AsyncSession, new_events: Sequence[NewEvent], *, now: datetime
) -> list[Event]:
    """Record several events in the caller's transaction, with one round trip for their
    sequence numbers (a renewal sweep settles many renewals per transaction)."""
    if not new_events:
        return []
    rows = await _rows(session, new_events, now)
    # The caller gets the events as it would read them back: data decoded.
    events = [Event(**{**row, "data": json.loads(row["data"])}) for row in rows]
    session.add_all(events)
    endpoints = await _enabled_endpoints(session)
    deliveries = [
        new_delivery(event, endpoint, now)
        for event in events
        for endpoint in endpoints
        if endpoint.wants(event.type)
    ]
    if deliveries:
        await session.flush()  # the event rows before the deliveries that reference them
        session.add_all(deliveries)
    # Otherwise the events are written with the caller's other changes, at their flush or
    # commit: one round trip fewer for the common case of no subscriber.
    return events


async def record_all(
    session: AsyncSession, new_events: Sequence[NewEvent], *, now: datetime
) -> None:
    """`emit_all` for callers that write many events and need none back (the renewal
    sweep): the same checks, numbers and deliveries, but the rows go in with one INSERT
    (app/core/bulk.py) instead of through the unit of work, which costs more than
    building them."""
    if not new_events:
        return
    rows = await _rows(session, new_events, now)
    endpoints = await _enabled_endpoints(session)
    await insert_rows(session, cast(Table, Event.__table__), rows)
    session.add_all(
        new_delivery_for(row["id"], endpoint, now)
        for row in rows
        for endpoint in endpoints
        if endpoint.wants(row["type"])
    )


async def _rows(
    session: AsyncSession, new_events: Sequence[NewEvent], now: datetime
) -> list[dict[str, Any]]:
    """The checked events' rows, numbered (one round trip)."""
    prepared = [_checked(new) for new in new_events]
    sequences = await repo.next_sequences(
        session, [(resource_type, new.resource_id) for new, resource_type, _, _ in prepared]
    )
    return [
        {
            "id": new_id("evt"),
            "type": new.type,
            "schema_version": version,
            "customer_id": new.customer_id,
            "resource_type": resource_type,
            "resource_id": new.resource_id,
            "sequence": sequence,
            "data": payload,
            "created_at": now,
        }
        for (new, resource_type, version, payload), sequence in zip(
            prepared, sequences, strict=True
        )
    ]


def _checked(new: NewEvent) -> tuple[NewEvent, str, int, EncodedJSON]:
    """The event's resource type, schema version and payload as JSON, or a ValueError."""
    spec = lookup(new.type)
    if isinstance(new.data, BaseModel):
        if not isinstance(new.data, spec.payload):
            raise TypeError(
                f"{new.type} takes {spec.payload.__name__}, not {new.data.__class__.__name__}"
            )
        payload = EncodedJSON(new.data.model_dump_json())
    else:
        payload = EncodedJSON(spec.payload.model_validate(dict(new.data)).model_dump_json())
    check_no_secrets_in_json(payload)
    return new, new.resource_type or spec.resource_type, spec.version, payload


async def _enabled_endpoints(session: AsyncSession) -> list[WebhookEndpoint]:
    """The enabled endpoints, read once per transaction: a transaction that emits many
    events (a renewal sweep settling a group) asks the database once, not once per event.
    No code path changes endpoints and emits events in the same transaction."""
    transaction = session.sync_session.get_transaction()
    cached = session.info.get(_ENDPOINTS_KEY)
    if cached is not None and cached[0] is transaction:
        return cast(list[WebhookEndpoint], cached[1])
    endpoints = await repo.enabled_endpoints(session)
    session.info[_ENDPOINTS_KEY] = (transaction, endpoints)
    return endpoints


_ENDPOINTS_KEY = "autorenew.events.enabled_endpoints"


def new_delivery(event: Event, endpoint: WebhookEndpoint, now: datetime) -> WebhookDelivery:
    return new_delivery_for(event.id, endpoint, now)


def new_delivery_for(event_id: str, endpoint: WebhookEndpoint, now: datetime) -> WebhookDelivery:
    return WebhookDelivery(
        id=new_id("whd"),
        event_id=event_id,
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
