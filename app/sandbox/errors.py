"""Stripe's error objects: `{"error": {...}}` with an HTTP status, as the API answers them.

400 invalid_request_error   bad or missing parameters, wrong state (not stored under an
                            idempotency key: the request did nothing)
400 idempotency_error       a key reused with other parameters
401 invalid_request_error   no key, an unknown or a live key
402 card_error              the card was declined (stored and replayed like a success)
403 invalid_request_error   a publishable key on a route that needs a secret one
                            (code secret_key_required)
404 invalid_request_error   no such object (code resource_missing)
409 invalid_request_error   the key's first request is still running (idempotency_key_in_use)
429 invalid_request_error   rate limited (code rate_limit), with Retry-After
500 api_error               a fault; the sandbox's "stored" fault is replayed for its key
"""

from __future__ import annotations

from typing import Any

from app.sandbox.cards import Decline

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


def unexpected_state(message: str, kind: str) -> StripeError:
    """An object in a state the request cannot act on (`payment_intent_unexpected_state`)."""
    return invalid_request(message, code=f"{kind}_unexpected_state")


def secret_key_required() -> StripeError:
    return StripeError(
        403,
        "invalid_request_error",
        "This API call cannot be made with a publishable API key. Please use a secret API "
        "key. You can find a list of your API keys at https://dashboard.stripe.com/account/apikeys.",
        code="secret_key_required",
    )


def card_error(decline: Decline, **objects: Any) -> StripeError:
    extra: dict[str, Any] = dict(objects)
    if decline.decline_code:
        extra["decline_code"] = decline.decline_code
    if decline.advice_code:
        extra["advice_code"] = decline.advice_code
    return StripeError(402, "card_error", decline.message, code=decline.code, extra=extra)


def error_dict(decline: Decline, **objects: Any) -> dict[str, Any]:
    """The `last_payment_error` / `last_setup_error` kept on an intent."""
    return card_error(decline, **objects).body


def internal_error(message: str = "sandbox fault") -> StripeError:
    return StripeError(
        500, "api_error", f"An unknown error occurred while processing your request ({message})."
    )
