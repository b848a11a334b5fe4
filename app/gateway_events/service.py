"""Receive one of Stripe's webhook events: verify it, record it once, apply it.

    verify     Stripe-Signature over the raw body (app/gateways/stripe_events.py); a bad,
               stale or missing signature, or a body that is no event, is refused with 400
               and nothing changes
    record     the event id is written first (gateway_events, unique): a replay answers
               200 with the first outcome and changes nothing
    apply      by type, to a plain function of the domain the event changes; types without
               a handler are acknowledged (200, `unhandled`) so the gateway stops sending them

The request's transaction holds all of it: if applying fails (the gateway is away while a
set-up is read back), the record rolls back too and the gateway's retry applies it later.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import BadRequest, ServiceUnavailable
from app.core.settings import Settings
from app.gateway_events import repository
from app.gateway_events.metrics import GATEWAY_WEBHOOK_EVENTS
from app.gateway_events.models import GatewayEvent
from app.gateway_events.schemas import GatewayEventReceipt, Outcome
from app.gateways import stripe_events
from app.gateways.notices import NoticeOutcome
from app.gateways.port import PaymentGateway
from app.gateways.stripe_events import MalformedEvent, SignatureRejected, StripeEvent
from app.payment_methods import gateway_updates
from app.renewals import gateway_events as renewal_events

log = logging.getLogger("autorenew.gateway_events")


@dataclass(frozen=True)
class Receiving:
    """What applying an event may need besides the session."""

    gateway: PaymentGateway
    settings: Settings
    now: datetime


Handler = Callable[[AsyncSession, StripeEvent, Receiving], Awaitable[NoticeOutcome]]


async def receive_stripe_event(
    session: AsyncSession, *, payload: bytes, signature: str | None, receiving: Receiving
) -> GatewayEventReceipt:
    secret = receiving.settings.webhook_signing_secret
    if secret is None:
        raise ServiceUnavailable(
            "Gateway webhooks are not configured: set AUTORENEW_GATEWAY_WEBHOOK_SECRET.",
            code="gateway_webhooks_not_configured",
        )
    event = _verified(payload, signature, secret)
    handler = HANDLERS.get(event.type)
    label = event.type if handler is not None else "other"  # bounded metric labels
    first = await repository.record_once(
        session,
        event_id=event.id,
        gateway="stripe",
        event_type=event.type,
        object_id=event.object_id,
        now=receiving.now,
    )
    if not first:
        stored = await session.get(GatewayEvent, event.id)
        GATEWAY_WEBHOOK_EVENTS.labels(label, "replayed").inc()
        outcome = stored.outcome if stored is not None else "unchanged"
        return _receipt(event, outcome, replayed=True)
    result: Outcome = "unhandled"
    if handler is not None:
        result = await handler(session, event, receiving)
    await repository.set_outcome(session, event.id, result)
    GATEWAY_WEBHOOK_EVENTS.labels(label, result).inc()
    log.info(
        "gateway event received",
        extra={"event_id": event.id, "type": event.type, "outcome": result},
    )
    return _receipt(event, result, replayed=False)


def _verified(payload: bytes, signature: str | None, secret: str) -> StripeEvent:
    try:
        return stripe_events.verify(payload, signature, secret)
    except SignatureRejected as exc:
        GATEWAY_WEBHOOK_EVENTS.labels("unknown", "rejected").inc()
        raise BadRequest(str(exc), code="invalid_signature") from None
    except MalformedEvent as exc:
        GATEWAY_WEBHOOK_EVENTS.labels("unknown", "rejected").inc()
        raise BadRequest(str(exc), code="invalid_event") from None


def _receipt(event: StripeEvent, outcome: str, *, replayed: bool) -> GatewayEventReceipt:
    return GatewayEventReceipt.model_validate(
        {"id": event.id, "type": event.type, "outcome": outcome, "replayed": replayed}
    )


# --- handlers: read the object, hand it to its domain ----------------------------------


async def _card_updated(
    session: AsyncSession, event: StripeEvent, receiving: Receiving
) -> NoticeOutcome:
    card = stripe_events.card_of(event.object)
    if event.object_id is None or card is None:
        return "not_ours"  # not a card (we hold cards only at the gateway)
    return await gateway_updates.card_updated(session, event.object_id, card, receiving.now)


async def _card_detached(
    session: AsyncSession, event: StripeEvent, receiving: Receiving
) -> NoticeOutcome:
    if event.object_id is None:
        return "not_ours"
    return await gateway_updates.card_detached(session, event.object_id, receiving.now)


async def _setup_finished(
    session: AsyncSession, event: StripeEvent, receiving: Receiving
) -> NoticeOutcome:
    if event.object_id is None:
        return "not_ours"
    return await gateway_updates.setup_finished(
        session, event.object_id, receiving.gateway, receiving.now
    )


async def _payment(
    session: AsyncSession, event: StripeEvent, receiving: Receiving
) -> NoticeOutcome:
    read = stripe_events.payment_of(event.object)
    if read is None:
        return "not_ours"
    charge, failure = read
    return await renewal_events.settle_from_gateway(
        session, charge, receiving.now, receiving.settings, failure=failure
    )


async def _dispute(
    session: AsyncSession, event: StripeEvent, receiving: Receiving
) -> NoticeOutcome:
    dispute = stripe_events.dispute_of(event.object)
    if dispute is None:
        return "not_ours"
    return await renewal_events.record_dispute(session, dispute, receiving.now)


async def _refund(session: AsyncSession, event: StripeEvent, receiving: Receiving) -> NoticeOutcome:
    refund = stripe_events.refund_of(event.object)
    if refund is None:
        return "not_ours"
    return await renewal_events.refund_charge(session, refund, receiving.now)


HANDLERS: dict[str, Handler] = {
    "payment_method.automatically_updated": _card_updated,
    "payment_method.updated": _card_updated,
    "payment_method.detached": _card_detached,
    "setup_intent.succeeded": _setup_finished,
    "setup_intent.setup_failed": _setup_finished,
    "payment_intent.succeeded": _payment,
    "payment_intent.payment_failed": _payment,
    "charge.dispute.created": _dispute,
    "charge.dispute.updated": _dispute,
    "charge.dispute.closed": _dispute,
    "charge.refunded": _refund,
}
