"""`/v1/admin/webhook-endpoints`: subscribe internal systems to events."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from app.core.deps import AdminDep, ClockDep, SessionDep, SettingsDep
from app.core.errors import problem_responses
from app.events import endpoints
from app.events.schemas import (
    DeliveryList,
    DeliveryOut,
    RedeliveredOut,
    RotateSecretIn,
    WebhookEndpointIn,
    WebhookEndpointList,
    WebhookEndpointOut,
    WebhookEndpointPatch,
    WebhookEndpointWithSecret,
)

router = APIRouter(prefix="/v1/admin/webhook-endpoints", tags=["webhook endpoints"])


def _with_secret(endpoint: WebhookEndpointOut, secret: str) -> WebhookEndpointWithSecret:
    return WebhookEndpointWithSecret(**endpoint.model_dump(), secret=secret)


@router.post(
    "",
    response_model=WebhookEndpointWithSecret,
    status_code=201,
    summary="Register an endpoint; its signing secret is shown once",
    responses=problem_responses(401, 403),
)
async def create_endpoint(
    body: WebhookEndpointIn,
    session: SessionDep,
    _admin: AdminDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> WebhookEndpointWithSecret:
    endpoint, secret = await endpoints.create_endpoint(
        session,
        settings,
        url=body.url,
        description=body.description,
        event_types=body.event_types,
        enabled=body.enabled,
        now=clock.now(),
    )
    return _with_secret(WebhookEndpointOut.of(endpoint), secret)


@router.get(
    "",
    response_model=WebhookEndpointList,
    summary="Every endpoint (secrets are never listed)",
    responses=problem_responses(401, 403),
)
async def list_endpoints(session: SessionDep, _admin: AdminDep) -> WebhookEndpointList:
    found = await endpoints.list_endpoints(session)
    return WebhookEndpointList(data=[WebhookEndpointOut.of(endpoint) for endpoint in found])


@router.get(
    "/{endpoint_id}",
    response_model=WebhookEndpointOut,
    summary="One endpoint (never its secret)",
    responses=problem_responses(401, 403, 404),
)
async def get_endpoint(
    endpoint_id: str, session: SessionDep, _admin: AdminDep
) -> WebhookEndpointOut:
    return WebhookEndpointOut.of(await endpoints.get_endpoint(session, endpoint_id))


@router.patch(
    "/{endpoint_id}",
    response_model=WebhookEndpointOut,
    summary="Change the URL, the type filter, or enable/disable",
    responses=problem_responses(401, 403, 404),
)
async def update_endpoint(
    endpoint_id: str,
    body: WebhookEndpointPatch,
    session: SessionDep,
    _admin: AdminDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> WebhookEndpointOut:
    endpoint = await endpoints.update_endpoint(
        session,
        settings,
        endpoint_id,
        now=clock.now(),
        url=body.url,
        description=body.description,
        enabled=body.enabled,
        event_types=body.event_types,
    )
    return WebhookEndpointOut.of(endpoint)


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    response_class=Response,
    summary="Remove an endpoint and its pending deliveries",
    responses=problem_responses(401, 403, 404),
)
async def delete_endpoint(endpoint_id: str, session: SessionDep, _admin: AdminDep) -> Response:
    await endpoints.delete_endpoint(session, endpoint_id)
    return Response(status_code=204)


@router.post(
    "/{endpoint_id}/rotate-secret",
    response_model=WebhookEndpointWithSecret,
    summary="New signing secret; the old one keeps signing during the overlap",
    responses=problem_responses(401, 403, 404),
)
async def rotate_secret(
    endpoint_id: str,
    session: SessionDep,
    _admin: AdminDep,
    clock: ClockDep,
    settings: SettingsDep,
    body: RotateSecretIn | None = None,
) -> WebhookEndpointWithSecret:
    overlap = None
    if body is not None and body.overlap_seconds is not None:
        overlap = timedelta(seconds=body.overlap_seconds)
    endpoint, secret = await endpoints.rotate_secret(
        session, settings, endpoint_id, now=clock.now(), overlap=overlap
    )
    return _with_secret(WebhookEndpointOut.of(endpoint), secret)


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=DeliveryList,
    summary="What the endpoint was sent, newest first (status=dead: the dead letters)",
    responses=problem_responses(401, 403, 404),
)
async def list_deliveries(
    endpoint_id: str,
    session: SessionDep,
    _admin: AdminDep,
    status: Literal["pending", "succeeded", "dead"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DeliveryList:
    found = await endpoints.deliveries(session, endpoint_id, status=status, limit=limit)
    return DeliveryList(data=[DeliveryOut.of(delivery, attempts) for delivery, attempts in found])


@router.post(
    "/{endpoint_id}/redeliver-dead",
    response_model=RedeliveredOut,
    status_code=202,
    summary="Send every dead-lettered delivery of this endpoint again",
    responses=problem_responses(401, 403, 404),
)
async def redeliver_dead(
    endpoint_id: str, session: SessionDep, _admin: AdminDep, clock: ClockDep
) -> RedeliveredOut:
    count = await endpoints.redeliver_dead(session, endpoint_id, now=clock.now())
    return RedeliveredOut(redelivered=count)
