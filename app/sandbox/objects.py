"""Stripe-shaped JSON for the ledger's rows, and Stripe-shaped errors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.sandbox.cards import Decline
from app.sandbox.models import Customer, PaymentIntent, PaymentMethod, SetupIntent

DOC_BASE = "https://docs.stripe.com/error-codes/"


class StripeError(Exception):
    """An error answered as Stripe does: `{"error": {...}}` with an HTTP status."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
        self.body: dict[str, Any] = {"type": error_type, "message": message}
        if code:
            self.body["code"] = code
            self.body["doc_url"] = DOC_BASE + code.replace("_", "-")
        if param:
            self.body["param"] = param
        self.body.update(extra or {})

    def document(self) -> dict[str, Any]:
        return {"error": self.body}


def invalid_request(
    message: str, *, param: str | None = None, code: str | None = None
) -> StripeError:
    return StripeError(400, "invalid_request_error", message, param=param, code=code)


def missing(param: str) -> StripeError:
    return invalid_request(
        f"Missing required param: {param}.", param=param, code="parameter_missing"
    )


def no_such(kind: str, object_id: str, param: str | None = None) -> StripeError:
    return StripeError(
        404,
        "invalid_request_error",
        f"No such {kind}: '{object_id}'",
        code="resource_missing",
        param=param,
    )


def card_error(decline: Decline, **objects: Any) -> StripeError:
    extra: dict[str, Any] = dict(objects)
    if decline.decline_code:
        extra["decline_code"] = decline.decline_code
    if decline.advice_code:
        extra["advice_code"] = decline.advice_code
    return StripeError(402, "card_error", decline.message, code=decline.code, extra=extra)


def error_dict(decline: Decline) -> dict[str, Any]:
    """The `last_payment_error` / `last_setup_error` kept on an intent."""
    return card_error(decline).body


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def customer_json(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "object": "customer",
        "created": unix(customer.created),
        "description": customer.description,
        "email": customer.email,
        "name": customer.name,
        "livemode": False,
        "metadata": customer.meta or {},
    }


def payment_method_json(method: PaymentMethod) -> dict[str, Any]:
    return {
        "id": method.id,
        "object": "payment_method",
        "type": "card",
        "created": unix(method.created),
        "customer": method.customer_id,
        "livemode": False,
        "metadata": {},
        "billing_details": {"address": None, "email": None, "name": None, "phone": None},
        "card": {
            "brand": method.brand,
            "display_brand": method.brand,
            "last4": method.last4,
            "exp_month": method.exp_month,
            "exp_year": method.exp_year,
            "funding": method.funding,
            "country": method.country,
            "fingerprint": method.fingerprint,
            "checks": {
                "cvc_check": method.cvc_check,
                "address_line1_check": None,
                "address_postal_code_check": None,
            },
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
    }


def _payment_method_field(method: PaymentMethod | None, method_id: str, expand: bool) -> Any:
    if expand and method is not None:
        return payment_method_json(method)
    return method_id


def setup_intent_json(
    intent: SetupIntent,
    *,
    method: PaymentMethod | None = None,
    expand: bool = False,
    challenge_url: str | None = None,
) -> dict[str, Any]:
    next_action = None
    if intent.status == "requires_action" and challenge_url:
        next_action = {
            "type": "redirect_to_url",
            "redirect_to_url": {"url": challenge_url, "return_url": intent.return_url},
        }
    return {
        "id": intent.id,
        "object": "setup_intent",
        "client_secret": f"{intent.id}_secret_sandbox",
        "created": unix(intent.created),
        "customer": intent.customer_id,
        "livemode": False,
        "metadata": intent.meta or {},
        "payment_method": _payment_method_field(method, intent.payment_method_id, expand),
        "payment_method_types": ["card"],
        "status": intent.status,
        "usage": intent.usage,
        "next_action": next_action,
        "last_setup_error": intent.last_error,
    }


def payment_intent_json(
    intent: PaymentIntent, *, method: PaymentMethod | None = None, expand: bool = False
) -> dict[str, Any]:
    return {
        "id": intent.id,
        "object": "payment_intent",
        "amount": intent.amount,
        "amount_received": intent.amount if intent.status == "succeeded" else 0,
        "capture_method": "automatic",
        "client_secret": f"{intent.id}_secret_sandbox",
        "confirmation_method": "automatic",
        "created": unix(intent.created),
        "currency": intent.currency,
        "customer": intent.customer_id,
        "latest_charge": intent.latest_charge,
        "livemode": False,
        "metadata": intent.meta or {},
        "next_action": None,
        "payment_method": _payment_method_field(method, intent.payment_method_id, expand),
        "payment_method_types": ["card"],
        "status": intent.status,
        "last_payment_error": intent.last_error,
    }
