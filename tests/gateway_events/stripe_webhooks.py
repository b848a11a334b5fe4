"""Stripe's webhook deliveries as Stripe makes them: an event document, its raw bytes signed
with the endpoint's secret (`Stripe-Signature: t=…,v1=<HMAC-SHA256 of "t.body">`), POSTed
with Stripe's content type. Signed here with hmac, independently of the code under test,
which checks them with the official SDK."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import DEV_SANDBOX_WEBHOOK_SECRET
from app.events.models import Event
from app.gateway_events.models import GatewayEvent

URL = "/v1/gateway-webhooks/stripe"
SECRET = DEV_SANDBOX_WEBHOOK_SECRET
API_VERSION = "2025-03-31.basil"


def signature(payload: bytes, *, secret: str = SECRET, timestamp: int | None = None) -> str:
    moment = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{moment}.".encode() + payload, hashlib.sha256)
    return f"t={moment},v1={digest.hexdigest()}"


def event(event_type: str, obj: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def body(document: dict[str, Any]) -> bytes:
    # Stripe's own layout: pretty-printed, non-ASCII kept. The signature covers exactly
    # these bytes, so nothing may re-serialise them before the check.
    return json.dumps(document, indent=2, ensure_ascii=False).encode()


async def deliver(
    client: httpx.AsyncClient,
    document: dict[str, Any],
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
) -> httpx.Response:
    payload = body(document)
    return await client.post(
        URL,
        content=payload,
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": signature(payload, secret=secret, timestamp=timestamp),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        },
    )


async def received(session: AsyncSession) -> list[GatewayEvent]:
    query = select(GatewayEvent).order_by(GatewayEvent.received_at, GatewayEvent.id)
    return list((await session.execute(query.execution_options(populate_existing=True))).scalars())


async def outbox(session: AsyncSession, event_type: str) -> list[Event]:
    query = select(Event).where(Event.type == event_type).order_by(Event.sequence)
    return list((await session.execute(query)).scalars())


async def count_outbox(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Event)) or 0)


# --- Stripe objects, in the fields the service reads (API version 2025-03-31.basil) -------


def card_payment_method(
    pm_id: str, *, last4: str = "4242", exp: tuple[int, int] = (12, 2030), brand: str = "visa"
) -> dict[str, Any]:
    return {
        "id": pm_id,
        "object": "payment_method",
        "type": "card",
        "billing_details": {"name": "María Núñez", "email": None},
        "card": {
            "brand": brand,
            "last4": last4,
            "exp_month": exp[0],
            "exp_year": exp[1],
            "funding": "credit",
            "country": "ES",
            "fingerprint": "fp_not_read",
        },
        "customer": "cus_gateway",
        "metadata": {},
    }


def setup_intent(setup_id: str, status: str, pm_id: str = "pm_x") -> dict[str, Any]:
    return {"id": setup_id, "object": "setup_intent", "status": status, "payment_method": pm_id}


def payment_intent(
    pi_id: str,
    status: str,
    *,
    amount: int = 1299,
    currency: str = "eur",
    metadata: dict[str, str] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount if status == "succeeded" else 0,
        "currency": currency,
        "status": status,
        "metadata": metadata or {},
        "last_payment_error": error,
        "next_action": None,
        "payment_method": "pm_x",
    }


def decline(decline_code: str, code: str = "card_declined") -> dict[str, Any]:
    return {
        "type": "card_error",
        "code": code,
        "decline_code": decline_code,
        "message": "Your card was declined.",
    }


def dispute(
    dispute_id: str, pi_id: str, *, status: str = "needs_response", amount: int = 1299
) -> dict[str, Any]:
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "currency": "eur",
        "charge": "ch_x",
        "payment_intent": pi_id,
        "reason": "fraudulent",
        "status": status,
        "created": 1_795_000_000,
    }


def refunded_charge(pi_id: str, *, amount: int = 1299, refunded: int = 1299) -> dict[str, Any]:
    return {
        "id": "ch_" + pi_id.removeprefix("pi_"),
        "object": "charge",
        "amount": amount,
        "amount_refunded": refunded,
        "refunded": refunded >= amount,
        "currency": "eur",
        "payment_intent": pi_id,
        "status": "succeeded",
    }
