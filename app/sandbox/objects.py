"""Stripe-shaped JSON for customers, payment methods and intents, as API version
2025-03-31.basil returns them: every field Stripe always sends is present, null where empty
(`tests/sandbox/test_object_shapes.py` holds the field lists, taken from Stripe's published
fixtures for that version). Charges, refunds and disputes are in `charge_objects.py`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.sandbox.models import Customer, PaymentIntent, PaymentMethod, SetupIntent

API_VERSION = "2025-03-31.basil"


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def empty_address() -> dict[str, None]:
    return dict.fromkeys(("city", "country", "line1", "line2", "postal_code", "state"))


def customer_json(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": unix(customer.created),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": customer.description,
        "discount": None,
        "email": customer.email,
        "invoice_prefix": customer.id[-8:].upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": customer.meta or {},
        "name": customer.name,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def card_json(method: PaymentMethod) -> dict[str, Any]:
    return {
        "brand": method.brand,
        "checks": {
            "address_line1_check": None,
            "address_postal_code_check": None,
            "cvc_check": method.cvc_check,
        },
        "country": method.country,
        "display_brand": method.brand,
        "exp_month": method.exp_month,
        "exp_year": method.exp_year,
        "fingerprint": method.fingerprint,
        "funding": method.funding,
        "generated_from": None,
        "last4": method.last4,
        "networks": {"available": [method.brand], "preferred": None},
        "regulated_status": "unregulated",
        "three_d_secure_usage": {"supported": True},
        "wallet": None,
    }


def payment_method_json(method: PaymentMethod) -> dict[str, Any]:
    return {
        "id": method.id,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": empty_address(),
            "email": None,
            "name": method.billing_name,
            "phone": None,
            "tax_id": None,
        },
        "card": card_json(method),
        "created": unix(method.created),
        "customer": method.customer_id,
        "livemode": False,
        "metadata": method.meta or {},
        "type": "card",
    }


def _payment_method_field(method: PaymentMethod | None, method_id: str | None, expand: bool) -> Any:
    if expand and method is not None:
        return payment_method_json(method)
    return method_id


def redirect_action(url: str | None, return_url: str | None) -> dict[str, Any] | None:
    if url is None:
        return None
    return {"type": "redirect_to_url", "redirect_to_url": {"url": url, "return_url": return_url}}


def _card_options() -> dict[str, Any]:
    return {
        "card": {
            "mandate_options": None,
            "network": None,
            "request_three_d_secure": "automatic",
        }
    }


def setup_intent_json(
    intent: SetupIntent,
    *,
    method: PaymentMethod | None = None,
    expand: bool = False,
    challenge_url: str | None = None,
) -> dict[str, Any]:
    waiting = intent.status == "requires_action"
    return {
        "id": intent.id,
        "object": "setup_intent",
        "application": None,
        "automatic_payment_methods": None,
        "cancellation_reason": None,
        "client_secret": intent.client_secret,
        "created": unix(intent.created),
        "customer": intent.customer_id,
        "description": intent.description,
        "flow_directions": None,
        "last_setup_error": intent.last_error,
        "latest_attempt": None,
        "livemode": False,
        "mandate": None,
        "metadata": intent.meta or {},
        "next_action": redirect_action(challenge_url, intent.return_url) if waiting else None,
        "on_behalf_of": None,
        "payment_method": _payment_method_field(method, intent.payment_method_id, expand),
        "payment_method_configuration_details": None,
        "payment_method_options": _card_options(),
        "payment_method_types": ["card"],
        "single_use_mandate": None,
        "status": intent.status,
        "usage": intent.usage,
    }


def payment_intent_json(
    intent: PaymentIntent,
    *,
    method: PaymentMethod | None = None,
    expand: bool = False,
    challenge_url: str | None = None,
) -> dict[str, Any]:
    waiting = intent.status == "requires_action"
    return {
        "id": intent.id,
        "object": "payment_intent",
        "amount": intent.amount,
        # Automatic capture: nothing is ever left authorised and waiting for capture.
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": intent.amount if intent.status == "succeeded" else 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": intent.client_secret,
        "confirmation_method": "automatic",
        "created": unix(intent.created),
        "currency": intent.currency,
        "customer": intent.customer_id,
        "description": intent.description,
        "last_payment_error": intent.last_error,
        "latest_charge": intent.latest_charge,
        "livemode": False,
        "metadata": intent.meta or {},
        "next_action": redirect_action(challenge_url, intent.return_url) if waiting else None,
        "on_behalf_of": None,
        "payment_method": _payment_method_field(method, intent.payment_method_id, expand),
        "payment_method_configuration_details": None,
        "payment_method_options": _card_options(),
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": intent.setup_future_usage,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": intent.status,
        "transfer_data": None,
        "transfer_group": None,
    }
