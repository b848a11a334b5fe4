"""Stripe's errors (the SDK's typed exceptions) → the port's exceptions.

Stripe answers a failed v1 request with `{"error": {"type", "code", "decline_code",
"advice_code", "message", "payment_intent" | "setup_intent", …}}`, an HTTP status and
sometimes `Stripe-Should-Retry`. Which answers prove that nothing was charged decides
everything here; only those become final outcomes:

    402 CardError           the issuer (or Stripe) refused the card → CardDeclined, or
                            AuthenticationRequired when the code says 3-D Secure is needed
    400/404 InvalidRequestError  e.g. resource_missing → InvalidCardRequest. Stripe saves
                            no result for a request that failed validation, so nothing ran
    429 RateLimitError      nothing ran; slow down → RateLimited with Retry-After
    401/403 Authentication- / PermissionError   our API key is rotated, revoked or lacks a
                            permission: nothing ran, and nothing will until an operator acts
                            → GatewayUnavailable (the sweep stops; renewals stay due)
    400 IdempotencyError    the key was already used with other parameters: the first
                            request ran and may have charged → OutcomeUnknown, look_up
                            (re-sending cannot help: find the charge by its key)
    APIConnectionError      timeout, lost connection: Stripe may have acted → OutcomeUnknown
    APIError and the rest   409 (a request with this key is still running), 424 (a
                            dependency outside Stripe failed), 5xx, a body that is not
                            Stripe's JSON even with a 2xx → OutcomeUnknown

`Stripe-Should-Retry: true` makes any answer but 401/403/429 OutcomeUnknown (Stripe says the
same request may still go through); `false` on an OutcomeUnknown means the key replays a
stored result, so the charge is looked up instead of sent again (`look_up`).

Hard or soft decline (`CardDeclined.hard`: retrying the same card will not help):
1. Stripe's `advice_code` wins when present: `do_not_try_again` and `confirm_card_data` are
   hard (the customer must act), `try_again_later` is soft.
2. Otherwise the decline code decides: codes that say the card itself is unusable (lost,
   stolen, expired, closed, not allowed, fraud, wrong number or CVC — we cannot re-ask an
   absent customer for them) are hard; everything else (insufficient_funds, generic_decline,
   do_not_honor, processing_error, try_again_later, …) is soft and worth a dunning retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import stripe

from app.gateways.port import (
    AuthenticationRequired,
    CardDeclined,
    GatewayError,
    GatewayUnavailable,
    InvalidCardRequest,
    OutcomeUnknown,
    RateLimited,
)
from app.gateways.stripe_http import transport_failure

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


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
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
    date = headers.get("date")
    now = parsedate_to_datetime(date) if date else None
    if now is None or moment.tzinfo is None or now.tzinfo is None:
        return None
    return max(0.0, (moment - now).total_seconds())


def _error_object(exc: stripe.StripeError) -> dict[str, Any]:
    body = exc.json_body
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


def card_error(error: dict[str, Any], message: str) -> CardDeclined | AuthenticationRequired:
    """A card error object (an API error, or a PaymentIntent's `last_payment_error` with the
    intent under `payment_intent`) → the decline, hard or soft, or the call for 3-D Secure."""
    code = error.get("code")
    decline_code = error.get("decline_code")
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


def error_from_stripe(exc: stripe.StripeError) -> GatewayError:
    """The port exception for an error the SDK raised."""
    if isinstance(exc, stripe.APIConnectionError):
        cause = exc.__cause__
        if isinstance(cause, httpx.TransportError):
            return OutcomeUnknown(transport_failure(cause))
        return OutcomeUnknown(f"The gateway could not be reached: {exc.user_message}")
    status = exc.http_status
    headers = exc.headers or {}
    error = _error_object(exc)
    message = str(error.get("message") or f"The gateway answered HTTP {status}.")
    should_retry = headers.get("stripe-should-retry")

    if isinstance(exc, stripe.RateLimitError) or status == 429:
        return RateLimited(message, retry_after=retry_after_seconds(headers))
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return GatewayUnavailable(
            f"The gateway refused our API key (HTTP {status}): {message}",
            code="gateway_authentication_failed",
        )
    if isinstance(exc, stripe.IdempotencyError):
        return OutcomeUnknown(message, code="idempotency_error", look_up=True)
    if should_retry == "true":
        return OutcomeUnknown(message)
    if isinstance(exc, stripe.CardError) or error.get("type") == "card_error":
        return card_error(error, message)
    if isinstance(exc, stripe.InvalidRequestError) and error:
        return InvalidCardRequest(
            message, code=str(error.get("code") or error.get("type") or "invalid_request")
        )
    return OutcomeUnknown(message, look_up=should_retry == "false")


def error_kind(exc: stripe.StripeError, error: GatewayError) -> str | None:
    """How the operators' metric counts a failed call (`autorenew_gateway_errors_total`):
    what went wrong with the gateway, or None for the card's own refusal (a decline, or 3-D
    Secure wanted), which is a renewal outcome."""
    if isinstance(error, CardDeclined | AuthenticationRequired):
        return None
    if isinstance(exc, stripe.APIConnectionError):
        return "timeout" if isinstance(exc.__cause__, httpx.TimeoutException) else "network"
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, GatewayUnavailable):
        return "authentication"
    status = exc.http_status or 0
    if status == 409 or isinstance(exc, stripe.IdempotencyError):
        return "idempotency"
    if status >= 500:
        return "server_error"
    if isinstance(error, InvalidCardRequest):
        return "invalid_request"
    return "bad_response"  # an answer that is not Stripe's: a 2xx without its JSON, …
