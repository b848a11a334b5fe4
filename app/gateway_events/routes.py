"""HTTP for the card gateway's webhooks. Authenticated by the gateway's signature over the
raw body, not by a bearer token: the body is read as bytes, never parsed before that."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request

from app.core.deps import ClockDep, GatewayDep, SessionDep, SettingsDep
from app.core.errors import problem_responses
from app.gateway_events import service
from app.gateway_events.schemas import GatewayEventReceipt

router = APIRouter(prefix="/v1", tags=["gateway webhooks"])

_STRIPE_EVENT_BODY = {
    "requestBody": {
        "required": True,
        "description": "A Stripe event object (https://docs.stripe.com/api/events/object), "
        "exactly as Stripe sent it: the signature covers these bytes.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@router.post(
    "/gateway-webhooks/stripe",
    response_model=GatewayEventReceipt,
    summary="Receive Stripe's webhook events (card updates, detached cards, 3-D Secure "
    "finished, payments, disputes, refunds)",
    description="Point a Stripe webhook endpoint (or `stripe listen --forward-to`) here; its "
    "signing secret is `AUTORENEW_GATEWAY_WEBHOOK_SECRET`. Each event id is applied once; a "
    "repeat answers 200 with the first outcome. Types the service does not act on are "
    "acknowledged with 200.",
    responses=problem_responses(400, 413, 415, 422, 503),
    openapi_extra=_STRIPE_EVENT_BODY,
)
async def receive_stripe_webhook(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    gateway: GatewayDep,
    stripe_signature: Annotated[
        str | None,
        Header(description="`t=<unix time>,v1=<HMAC-SHA256>`, as Stripe signs its events."),
    ] = None,
) -> GatewayEventReceipt:
    return await service.receive_stripe_event(
        session,
        payload=await request.body(),
        signature=stripe_signature,
        receiving=service.Receiving(gateway=gateway, settings=settings, now=clock.now()),
    )
