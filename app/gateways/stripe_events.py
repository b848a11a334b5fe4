"""Stripe's webhook events: the signature checked with the official SDK, the objects read
into the port's values.

`Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, keyed with the
endpoint's `whsec_…` secret. `stripe.Webhook.construct_event` checks it over the raw bytes
(re-serialised JSON would not match) and refuses a timestamp older than the tolerance, so
a captured delivery cannot be replayed later. The SDK compares against the wall clock, as
Stripe signs with it; our injectable clock is for business time, not for this.

An event names its object as the API shows it at that moment (`data.object`): a
PaymentMethod, SetupIntent, PaymentIntent, Dispute or Charge. Only the fields read here are
trusted to carry meaning; anything else in the event is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import stripe

from app.gateways.notices import Dispute, Refund
from app.gateways.port import AuthenticationRequired, CardDeclined, CardDetails, Charge
from app.gateways.stripe_errors import card_error
from app.gateways.stripe_objects import card_from_stripe, charge_from_stripe

TOLERANCE_SECONDS = 300

_EVENT_ID = re.compile(r"^evt_[A-Za-z0-9_]{1,251}$")
_EVENT_TYPE = re.compile(r"^[a-z_]{1,40}(\.[a-z_]{1,40}){1,3}$")
_OBJECT_ID = re.compile(r"^[A-Za-z0-9_]{1,255}$")
_LAST4 = re.compile(r"^[0-9]{4}$")
# Stripe's enumerations (card brands, dispute reasons and statuses): what we store of them.
_CODE = re.compile(r"^[a-z0-9_]{1,64}$")


class SignatureRejected(Exception):
    """Missing, malformed, not made with our secret, or too old."""


class MalformedEvent(Exception):
    """Signed, but not an event we can read (not JSON, not an event object)."""


@dataclass(frozen=True)
class StripeEvent:
    id: str
    type: str
    object: Mapping[str, Any]

    @property
    def object_id(self) -> str | None:
        value = self.object.get("id")
        return value if isinstance(value, str) and _OBJECT_ID.match(value) else None


def verify(payload: bytes, signature: str | None, secret: str) -> StripeEvent:
    """The event in `payload`, once its signature has been checked. Raises
    SignatureRejected or MalformedEvent."""
    if not signature:
        raise SignatureRejected("The Stripe-Signature header is missing.")
    try:
        # The SDK leaves this function unannotated; it returns a stripe.Event (a dict).
        event = stripe.Webhook.construct_event(  # type: ignore[no-untyped-call]
            payload, signature, secret, tolerance=TOLERANCE_SECONDS
        )
    except stripe.SignatureVerificationError as exc:
        reason = str(exc.user_message or exc).rstrip(".")
        raise SignatureRejected(f"The Stripe-Signature header does not verify: {reason}.") from None
    except (ValueError, TypeError, AttributeError):
        # Not UTF-8, not JSON, or JSON that is not an object: the SDK fails while reading it.
        raise MalformedEvent("The body is not a Stripe event.") from None
    event_id, event_type, data = event.get("id"), event.get("type"), event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if (
        not isinstance(event_id, str)
        or not _EVENT_ID.match(event_id)
        or not isinstance(event_type, str)
        or not _EVENT_TYPE.match(event_type)
        or not isinstance(obj, Mapping)
    ):
        raise MalformedEvent("The body is not a Stripe event (id, type, data.object).")
    return StripeEvent(id=event_id, type=event_type, object=obj)


def _id(value: Any) -> str | None:
    """An object id, whether the field holds the id or the expanded object."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and _OBJECT_ID.match(value) else None


def _code(value: Any) -> str | None:
    return value if isinstance(value, str) and _CODE.match(value) else None


def _currency(value: Any) -> str:
    return value.upper() if isinstance(value, str) and re.fullmatch(r"[a-z]{3}", value) else ""


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _time(value: Any) -> datetime | None:
    # Unix seconds; anything else (or a time past the year 2200) is treated as absent.
    if not isinstance(value, int) or not 0 < value < 7_258_118_400:
        return None
    return datetime.fromtimestamp(value, UTC)


def card_of(payment_method: Mapping[str, Any]) -> CardDetails | None:
    """A card PaymentMethod's details (brand, last 4, expiry; never a number), or None when
    the object is not a card or its details are incomplete."""
    details = payment_method.get("card")
    if payment_method.get("type") != "card" or not isinstance(details, Mapping):
        return None
    if not all(isinstance(details.get(field), int) for field in ("exp_month", "exp_year")):
        return None
    card = card_from_stripe(payment_method)
    if not _LAST4.match(card.last4) or not 1 <= card.exp_month <= 12 or card.exp_year < 2000:
        return None
    return card if _CODE.match(card.brand) else replace(card, brand="unknown")


def payment_of(
    intent: Mapping[str, Any],
) -> tuple[Charge, CardDeclined | AuthenticationRequired | None] | None:
    """A PaymentIntent, and for a failed one its last error as the adapter classifies the
    same error when a charge call answers with it (hard or soft decline, 3-D Secure).
    None when the object is not a PaymentIntent we can read."""
    if _id(intent) is None or not isinstance(intent.get("amount"), int):
        return None
    charge = charge_from_stripe(intent)
    error = intent.get("last_payment_error")
    if charge.status != "failed" or not isinstance(error, Mapping):
        return charge, None
    message = str(error.get("message") or "The card was declined.")
    return charge, card_error({**error, "payment_intent": intent}, message)


def dispute_of(dispute: Mapping[str, Any]) -> Dispute | None:
    """A Dispute on a PaymentIntent's charge; None for one on a charge made without one."""
    dispute_id, charge_id = _id(dispute), _id(dispute.get("payment_intent"))
    if dispute_id is None or charge_id is None:
        return None
    return Dispute(
        dispute_id=dispute_id,
        charge_id=charge_id,
        status=(_code(dispute.get("status")) or "unknown")[:32],
        reason=_code(dispute.get("reason")),
        amount=_int(dispute.get("amount")),
        currency=_currency(dispute.get("currency")),
        opened_at=_time(dispute.get("created")),
    )


def refund_of(charge: Mapping[str, Any]) -> Refund | None:
    """A refunded Charge, named by its PaymentIntent; None for a charge made without one."""
    charge_id = _id(charge.get("payment_intent"))
    if charge_id is None:
        return None
    return Refund(
        charge_id=charge_id,
        amount=_int(charge.get("amount")),
        amount_refunded=_int(charge.get("amount_refunded")),
        currency=_currency(charge.get("currency")),
    )
