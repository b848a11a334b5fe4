"""Event history (customer and admin), redelivery and a manual dispatch pass."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import Instant
from app.core.deps import AdminDep, CallerDep, ClockDep, SessionDep
from app.core.errors import problem_responses
from app.core.scheduler import JobContext
from app.events import service
from app.events.catalogue import EVENT_TYPES, EventEnvelope, check_event_types
from app.events.dispatcher import dispatch_events
from app.events.repository import EventFilters
from app.events.schemas import (
    DeliveryOut,
    DispatchSummaryOut,
    EventDetail,
    EventPage,
    RedeliverIn,
    decode_cursor,
    event_out,
    event_page,
)

router = APIRouter(prefix="/v1", tags=["events"])

Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
Cursor = Annotated[str | None, Query(max_length=200, description="From `next_cursor`.")]
ResourceType = Annotated[
    str | None, Query(max_length=40, description="payment_method, renewal, service, sepa_batch")
]
ResourceId = Annotated[str | None, Query(max_length=128)]
Types = Annotated[
    list[str] | None,
    Query(alias="type", description=f"Event types (repeatable): {', '.join(EVENT_TYPES)}."),
]
TYPE_FILTER = ("query", "type")


@router.get(
    "/events",
    response_model=EventPage,
    summary="The caller's own events, newest first",
    responses=problem_responses(400, 401, 422),
)
async def list_my_events(
    session: SessionDep,
    caller: CallerDep,
    types: Types = None,
    resource_type: ResourceType = None,
    resource_id: ResourceId = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> EventPage:
    filters = EventFilters(
        types=check_event_types(types or (), where=TYPE_FILTER),
        resource_type=resource_type,
        resource_id=resource_id,
    )
    events = await service.customer_events(
        session, caller.customer_id, filters, decode_cursor(cursor), limit
    )
    return event_page(events, limit)


@router.get(
    "/events/{event_id}",
    response_model=EventEnvelope,
    summary="One of the caller's events",
    responses=problem_responses(401, 404),
)
async def get_my_event(event_id: str, session: SessionDep, caller: CallerDep) -> EventEnvelope:
    return event_out(await service.customer_event(session, caller.customer_id, event_id))


@router.get(
    "/admin/events",
    response_model=EventPage,
    summary="All events, filtered by type, customer, resource and time",
    responses=problem_responses(400, 401, 403, 422),
)
async def list_events(
    session: SessionDep,
    _admin: AdminDep,
    types: Types = None,
    customer_id: Annotated[str | None, Query(max_length=128)] = None,
    resource_type: ResourceType = None,
    resource_id: ResourceId = None,
    created_after: Annotated[Instant | None, Query(description="Inclusive, UTC.")] = None,
    created_before: Annotated[Instant | None, Query(description="Exclusive, UTC.")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> EventPage:
    filters = EventFilters(
        customer_id=customer_id,
        types=check_event_types(types or (), where=TYPE_FILTER),
        resource_type=resource_type,
        resource_id=resource_id,
        created_after=created_after,
        created_before=created_before,
    )
    events = await service.all_events(session, filters, decode_cursor(cursor), limit)
    return event_page(events, limit)


async def _detail(session: AsyncSession, event_id: str) -> EventDetail:
    event, deliveries = await service.event_with_deliveries(session, event_id)
    return EventDetail(
        **event_out(event).model_dump(),
        deliveries=[DeliveryOut.of(delivery, attempts) for delivery, attempts in deliveries],
    )


@router.get(
    "/admin/events/{event_id}",
    response_model=EventDetail,
    summary="An event with its deliveries and every attempt",
    responses=problem_responses(401, 403, 404),
)
async def get_event(event_id: str, session: SessionDep, _admin: AdminDep) -> EventDetail:
    return await _detail(session, event_id)


@router.post(
    "/admin/events/{event_id}/redeliver",
    response_model=EventDetail,
    status_code=202,
    summary="Send an event again now (all its endpoints, or one)",
    responses=problem_responses(401, 403, 404),
)
async def redeliver_event(
    event_id: str,
    session: SessionDep,
    _admin: AdminDep,
    clock: ClockDep,
    body: RedeliverIn | None = None,
) -> EventDetail:
    endpoint_id = body.endpoint_id if body else None
    await service.redeliver(session, event_id=event_id, now=clock.now(), endpoint_id=endpoint_id)
    return await _detail(session, event_id)


@router.post(
    "/admin/events/dispatch",
    response_model=DispatchSummaryOut,
    summary="Run one webhook dispatch pass now",
    responses=problem_responses(401, 403),
)
async def dispatch_now(request: Request, _admin: AdminDep) -> DispatchSummaryOut:
    # Runs in its own transactions, like the scheduled job: nothing to do with the request's.
    context: JobContext = request.app.state.job_context
    summary = await dispatch_events(context)
    return DispatchSummaryOut.model_validate(summary, from_attributes=True)
