"""Stripe's error objects → the port's exceptions.

Stripe answers a failed v1 request with `{"error": {"type", "code", "decline_code",
"advice_code", "message", "payment_intent" | "setup_intent", …}}` and an HTTP status:

    402 card_error        the issuer (or Stripe) refused the card → CardDeclined, or
                          AuthenticationRequired when the code says 3-D Secure is needed
    400 idempotency_error our key was reused with other parameters: a bug on our side
    400/404 invalid_request_error  e.g. resource_missing → InvalidCardRequest
    401/403               our API key is wrong → GatewayError (configuration)
    409                   another request with the same key is still running
                          (idempotency_key_in_use) → OutcomeUnknown: that request decides
    429                   rate limited → RateLimited with Retry-After
    5xx, timeouts, lost connections → OutcomeUnknown: Stripe may have acted; reconcile by
                          re-sending with the same Idempotency-Key

Hard or soft decline (`CardDeclined.hard`: retrying the same card will not help):
1. Stripe's `advice_code` wins when present: `do_not_try_again` and `confirm_card_data` are
   hard (the customer must act), `try_again_later` is soft.
2. Otherwise the decline code decides: codes that say the card itself is unusable (lost,
   stolen, expired, closed, not allowed, fraud, wrong number or CVC — we cannot re-ask an
   absent customer for them) are hard; everything else (insufficient_funds, generic_decline,
   do_not_honor, processing_error, try_again_later, …) is soft and worth a dunning retry.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from app.gateways.port import (
    AuthenticationRequired,
    CardDeclined,
    GatewayError,
    InvalidCardRequest,
    OutcomeUnknown,
    RateLimited,
)

HARD_DECLINE_CODES = frozenset(
    {
        "card_not_supported",
        "currency_not_supported",
        "do_not_try_again",
        "expired_card",
        "fraudulent",
        "incorrect_cvc",
        "incorrect_number",
        "invalid_account",
        "invalid_cvc",
        "invalid_expiry_month",
        "invalid_expiry_year",
        "invalid_number",
        "lost_card",
        "merchant_blacklist",
        "new_account_information_available",
        "pickup_card",
        "restricted_card",
        "revocation_of_all_authorizations",
        "revocation_of_authorization",
        "security_violation",
        "stolen_card",
        "stop_payment_order",
        "transaction_not_allowed",
    }
)
HARD_ADVICE_CODES = frozenset({"do_not_try_again", "confirm_card_data"})
SOFT_ADVICE_CODES = frozenset({"try_again_later"})
AUTHENTICATION_CODES = frozenset({"authentication_required"})


def is_hard_decline(code: str | None, decline_code: str | None, advice_code: str | None) -> bool:
    if advice_code in HARD_ADVICE_CODES:
        return True
    if advice_code in SOFT_ADVICE_CODES:
        return False
    return bool({code, decline_code} & HARD_DECLINE_CODES)


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    date = response.headers.get("date")
    now = parsedate_to_datetime(date) if date else None
    if now is None or moment.tzinfo is None or now.tzinfo is None:
        return None
    return max(0.0, (moment - now).total_seconds())


def _error_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _intent_id(error: dict[str, Any]) -> str | None:
    for field in ("payment_intent", "setup_intent"):
        intent = error.get(field)
        if isinstance(intent, dict) and isinstance(intent.get("id"), str):
            return str(intent["id"])
    return None


def _action_url(error: dict[str, Any]) -> str | None:
    for field in ("payment_intent", "setup_intent"):
        intent = error.get(field)
        if not isinstance(intent, dict):
            continue
        next_action = intent.get("next_action") or {}
        redirect = next_action.get("redirect_to_url") or {}
        if isinstance(redirect.get("url"), str):
            return str(redirect["url"])
    return None


def error_from_response(response: httpx.Response) -> GatewayError:
    """The port exception for a non-2xx answer from Stripe (or the sandbox)."""
    status = response.status_code
    error = _error_object(response)
    error_type = error.get("type")
    code = error.get("code")
    decline_code = error.get("decline_code")
    message = str(error.get("message") or f"The gateway answered HTTP {status}.")

    if status == 429:
        return RateLimited(message, retry_after=retry_after_seconds(response))
    if status >= 500 or status == 409:
        # 409 is idempotency_key_in_use: the first request with this key is still running
        # and its outcome is the one that counts.
        return OutcomeUnknown(message)
    if error_type == "idempotency_error":
        return GatewayError(message, code="idempotency_error")
    if status in (401, 403):
        return GatewayError(message, code="gateway_authentication_failed")
    if error_type == "card_error" or status == 402:
        if code in AUTHENTICATION_CODES or decline_code in AUTHENTICATION_CODES:
            return AuthenticationRequired(
                message, charge_id=_intent_id(error), action_url=_action_url(error)
            )
        return CardDeclined(
            message,
            code=str(code or "card_declined"),
            decline_code=decline_code,
            hard=is_hard_decline(code, decline_code, error.get("advice_code")),
            charge_id=_intent_id(error),
        )
    return InvalidCardRequest(message, code=str(code or error_type or "invalid_request"))


def error_from_transport(exc: httpx.TransportError) -> OutcomeUnknown:
    """Timeouts and broken connections: the request may have reached Stripe and acted."""
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    return OutcomeUnknown(f"The gateway request {kind} ({type(exc).__name__}).")
