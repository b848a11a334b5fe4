"""Stripe's objects → the port's values: SetupIntent → CardSetup, PaymentIntent → Charge,
PaymentMethod → StoredPaymentMethod.

The SDK hands back its `StripeObject`s, which are dicts; these read them as mappings, so
they work the same on any Stripe-shaped JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from app.gateways.port import (
    CardDetails,
    CardSetup,
    Charge,
    ChargeStatus,
    GatewayError,
    StoredPaymentMethod,
)

# Our metadata key for the caller's idempotency key (searchable, see find_charge).
IDEMPOTENCY_METADATA_KEY = "autorenew_idempotency_key"

SetupStatus = Literal["succeeded", "requires_action", "processing", "failed"]

_SETUP_STATUS: dict[str, SetupStatus] = {
    "succeeded": "succeeded",
    "requires_action": "requires_action",
    "processing": "processing",
}
_CHARGE_STATUS: dict[str, ChargeStatus] = {
    "succeeded": "succeeded",
    "processing": "processing",
    # Authorised but not captured: money is held, not lost; we use automatic capture.
    "requires_capture": "processing",
    "requires_action": "requires_action",
    "canceled": "canceled",
}
# When several intents carry one key (should not happen), the one that took money wins.
CHARGE_PRIORITY = {"succeeded": 0, "processing": 1, "requires_capture": 1, "requires_action": 2}


def card_from_stripe(payment_method: Mapping[str, Any]) -> CardDetails:
    card = payment_method.get("card") or {}
    return CardDetails(
        brand=str(card.get("brand") or "unknown"),
        last4=str(card.get("last4") or ""),
        exp_month=int(card.get("exp_month") or 0),
        exp_year=int(card.get("exp_year") or 0),
        funding=card.get("funding"),
        country=card.get("country"),
        fingerprint=card.get("fingerprint"),
    )


def _redirect_url(intent: Mapping[str, Any]) -> str | None:
    next_action = intent.get("next_action") or {}
    if next_action.get("type") != "redirect_to_url":
        return None
    url = (next_action.get("redirect_to_url") or {}).get("url")
    return str(url) if url else None


def _object_id(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("id") or "")
    return str(value or "")


def stored_payment_method_from_stripe(payment_method: Mapping[str, Any]) -> StoredPaymentMethod:
    """A PaymentMethod → StoredPaymentMethod (`customer` as an id, or expanded)."""
    method_type = str(payment_method.get("type") or "")
    return StoredPaymentMethod(
        gateway_payment_method_id=str(payment_method["id"]),
        type=method_type,
        gateway_customer_id=_object_id(payment_method.get("customer")) or None,
        card=card_from_stripe(payment_method) if method_type == "card" else None,
    )


def setup_from_stripe(intent: Mapping[str, Any]) -> CardSetup:
    """A SetupIntent (with `payment_method` expanded) → CardSetup."""
    payment_method = intent.get("payment_method")
    if not isinstance(payment_method, Mapping):
        raise GatewayError("The SetupIntent came back without its payment method expanded.")
    error = intent.get("last_setup_error") or {}
    return CardSetup(
        setup_id=str(intent["id"]),
        # requires_payment_method after a confirm means the card failed (declined, or the
        # customer failed 3-D Secure); canceled is a failure for us too.
        status=_SETUP_STATUS.get(str(intent.get("status")), "failed"),
        gateway_customer_id=_object_id(intent.get("customer")),
        gateway_payment_method_id=str(payment_method["id"]),
        card=card_from_stripe(payment_method),
        action_url=_redirect_url(intent),
        failure_code=error.get("code"),
        decline_code=error.get("decline_code"),
        failure_message=error.get("message"),
    )


def charge_from_stripe(intent: Mapping[str, Any]) -> Charge:
    """A PaymentIntent → Charge."""
    metadata = {str(k): str(v) for k, v in (intent.get("metadata") or {}).items()}
    error = intent.get("last_payment_error") or {}
    payment_method = _object_id(intent.get("payment_method"))
    return Charge(
        charge_id=str(intent["id"]),
        # requires_payment_method / requires_confirmation: this try took no money, and the
        # intent can be confirmed again (on-session, or with another card).
        status=_CHARGE_STATUS.get(str(intent.get("status")), "failed"),
        amount=int(intent.get("amount") or 0),
        currency=str(intent.get("currency") or "").upper(),
        idempotency_key=metadata.get(IDEMPOTENCY_METADATA_KEY),
        action_url=_redirect_url(intent),
        failure_code=error.get("code"),
        decline_code=error.get("decline_code"),
        metadata=metadata,
        failure_message=error.get("message"),
        gateway_payment_method_id=payment_method or None,
    )
