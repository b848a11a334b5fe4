"""Stripe's events, written to the ledger's outbox in the transaction of the change they
report; `webhooks.py` sends them.

Each is the event object Stripe sends (`evt_…`, `type`, `data.object` as the API shows the
object now, `data.previous_attributes` for updates, `api_version`, `request`), and
`GET /v1/events/{id}` answers the very same document.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.ids import new_id
from app.sandbox.context import Context
from app.sandbox.errors import no_such
from app.sandbox.models import Event
from app.sandbox.objects import API_VERSION, unix

# The types the sandbox sends (a subset of Stripe's).
TYPES = (
    "setup_intent.succeeded",
    "setup_intent.setup_failed",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_method.attached",
    "payment_method.detached",
    "payment_method.updated",
    "payment_method.automatically_updated",
    "charge.dispute.created",
    "charge.refunded",
)


def emit(
    session: AsyncSession,
    ctx: Context,
    event_type: str,
    obj: dict[str, Any],
    previous: dict[str, Any] | None = None,
) -> str:
    """Queue one event; returns its id."""
    if event_type not in TYPES:
        raise ValueError(f"the sandbox does not send {event_type}")
    event_id = new_id("evt", 24)
    data: dict[str, Any] = {"object": obj}
    if previous:
        data["previous_attributes"] = previous
    document = {
        "id": event_id,
        "object": "event",
        "api_version": API_VERSION,
        "created": unix(ctx.now),
        "data": data,
        "livemode": False,
        "pending_webhooks": 1 if ctx.webhooks else 0,
        "request": {"id": ctx.request_id, "idempotency_key": ctx.idempotency_key},
        "type": event_type,
    }
    session.add(
        Event(
            id=event_id,
            type=event_type,
            body=json.dumps(document, separators=(",", ":")),
            created=ctx.now,
            delivery="pending" if ctx.webhooks else "none",
            attempts=0,
            next_attempt_at=ctx.now if ctx.webhooks else None,
        )
    )
    return event_id


async def get_event(session: AsyncSession, event_id: str) -> dict[str, Any]:
    event = await session.scalar(select(Event).where(Event.id == event_id))
    if event is None:
        raise no_such("event", event_id, "id")
    document: dict[str, Any] = json.loads(event.body)
    return document


async def list_events(
    session: AsyncSession, event_type: str | None, limit: int
) -> list[dict[str, Any]]:
    """Newest first, as Stripe lists them."""
    query = select(Event).order_by(Event.seq.desc()).limit(limit)
    if event_type:
        query = query.where(Event.type == event_type)
    return [json.loads(event.body) for event in (await session.scalars(query)).all()]
