"""The `stripe` adapter: the payment-gateway port over Stripe's v1 REST API.

It speaks the real API (form-encoded bodies, `Authorization: Bearer sk_…`, a pinned
`Stripe-Version`, an `Idempotency-Key` on every POST) through one pooled `httpx.AsyncClient`.
The built-in sandbox speaks the same subset, so the same adapter talks to both; tests and the
in-process sandbox swap the client's *transport*, never a code path.

The adapter never retries by itself: a timeout or 5xx becomes `OutcomeUnknown` and the caller
(the renewal engine) decides. Reconciliation is by re-sending the *same* request with the
*same* key: Stripe answers a repeat with the stored first response for 24 hours, so a charge
whose answer was lost is found, and one that never happened is made now, exactly once.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any, Literal

import httpx

from app.gateways.port import CardDetails, CardSetup, Charge, GatewayError, InvalidCardRequest
from app.gateways.stripe_errors import error_from_response, error_from_transport
from app.gateways.stripe_form import encode_form

log = logging.getLogger("autorenew.gateway")

STRIPE_API_BASE = "https://api.stripe.com"
# Pinned so a change of the account's default version never changes the shapes we parse.
STRIPE_API_VERSION = "2025-03-31.basil"
# Our metadata key for the renewal engine's idempotency key (searchable, see find_charge).
IDEMPOTENCY_METADATA_KEY = "autorenew_idempotency_key"

SetupStatus = Literal["succeeded", "requires_action", "processing", "failed"]
ChargeStatus = Literal["succeeded", "processing", "requires_action", "failed", "canceled"]

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
_CHARGE_PRIORITY = {"succeeded": 0, "processing": 1, "requires_action": 2}


def default_timeout(connect: float = 5.0, read: float = 30.0) -> httpx.Timeout:
    return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)


def _card(payment_method: Mapping[str, Any]) -> CardDetails:
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
        card=_card(payment_method),
        action_url=_redirect_url(intent),
        failure_code=error.get("code"),
        decline_code=error.get("decline_code"),
        failure_message=error.get("message"),
    )


def charge_from_stripe(intent: Mapping[str, Any]) -> Charge:
    """A PaymentIntent → Charge."""
    metadata = {str(k): str(v) for k, v in (intent.get("metadata") or {}).items()}
    error = intent.get("last_payment_error") or {}
    return Charge(
        charge_id=str(intent["id"]),
        # requires_payment_method / requires_confirmation: this attempt took no money.
        status=_CHARGE_STATUS.get(str(intent.get("status")), "failed"),
        amount=int(intent.get("amount") or 0),
        currency=str(intent.get("currency") or "").upper(),
        idempotency_key=metadata.get(IDEMPOTENCY_METADATA_KEY),
        action_url=_redirect_url(intent),
        failure_code=error.get("code"),
        decline_code=error.get("decline_code"),
        metadata=metadata,
    )


_OBJECT_ID = re.compile(r"^[A-Za-z0-9_]{1,255}$")


def _path_id(value: str, prefix: str) -> str:
    """An id that goes into a URL path. Tokens come from the browser: one like
    `pm_x/../../customers/cus_y` must never steer a request signed with our secret key to
    another endpoint."""
    if not value.startswith(prefix) or not _OBJECT_ID.match(value):
        raise InvalidCardRequest(f"Not a valid {prefix}… id.", code="invalid_gateway_id")
    return value


def _search_literal(value: str) -> str:
    """A value quoted for Stripe's search query language."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class StripeGateway:
    """PaymentGateway over Stripe's API. One instance per process; `aclose()` at shutdown."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = STRIPE_API_BASE,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
        max_connections: int = 20,
        api_version: str = STRIPE_API_VERSION,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=timeout or default_timeout(),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={
                "Authorization": f"Bearer {api_key}",
                "Stripe-Version": api_version,
                "User-Agent": "autorenew-stripe-adapter",
            },
        )

    # --- HTTP -------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        headers: dict[str, str] = {}
        content: str | None = None
        query: str | None = None
        if method == "POST":
            if not idempotency_key:
                raise ValueError("every POST to the gateway needs an idempotency key")
            headers["Idempotency-Key"] = idempotency_key
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            content = encode_form(params or {})
        elif params:
            query = encode_form(params)
        url = f"{path}?{query}" if query else path
        started = time.perf_counter()
        try:
            response = await self._client.request(method, url, content=content, headers=headers)
        except httpx.TransportError as exc:
            log.warning(
                "gateway request failed",
                extra={"method": method, "path": path, "error": type(exc).__name__},
            )
            raise error_from_transport(exc) from exc
        # Bodies are never logged: they may carry card data (tokenize) or customer details.
        log.info(
            "gateway request",
            extra={
                "method": method,
                "path": path,
                "status": response.status_code,
                "stripe_request_id": response.headers.get("request-id"),
                "replayed": response.headers.get("idempotent-replayed") == "true",
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
        if response.is_success:
            try:
                body = response.json()
            except ValueError as exc:
                raise GatewayError("The gateway answered with something that is not JSON.") from exc
            if not isinstance(body, dict):
                raise GatewayError("The gateway answered with an unexpected document.")
            return body
        raise error_from_response(response)

    # --- The port ---------------------------------------------------------------------

    async def ensure_customer(self, *, customer_ref: str, existing_id: str | None) -> str:
        if existing_id:
            return existing_id
        # A key derived from our customer id: two registrations racing for the same customer
        # get one Stripe customer (for the 24 hours Stripe keeps keys).
        customer = await self._request(
            "POST",
            "/v1/customers",
            params={"metadata": {"autorenew_customer_id": customer_ref}},
            idempotency_key=f"autorenew-customer-{customer_ref}",
        )
        return str(customer["id"])

    async def set_up_card(
        self,
        *,
        gateway_customer_id: str,
        payment_method_token: str,
        return_url: str,
        idempotency_key: str,
    ) -> CardSetup:
        # Attaching first ties the card to the customer (Stripe checks the card here, so a
        # dead card fails early); the SetupIntent then asks the issuer for off-session use
        # and may need 3-D Secure. Each step has its own key derived from the caller's, so a
        # retried registration replays both steps instead of redoing them.
        attached = await self._request(
            "POST",
            f"/v1/payment_methods/{_path_id(payment_method_token, 'pm_')}/attach",
            params={"customer": gateway_customer_id},
            idempotency_key=f"{idempotency_key}-attach",
        )
        intent = await self._request(
            "POST",
            "/v1/setup_intents",
            params={
                "customer": gateway_customer_id,
                "payment_method": attached["id"],
                "payment_method_types": ["card"],
                "usage": "off_session",
                "confirm": True,
                "return_url": return_url,
                "expand": ["payment_method"],
            },
            idempotency_key=f"{idempotency_key}-setup",
        )
        return setup_from_stripe(intent)

    async def refresh_setup(self, setup_id: str) -> CardSetup:
        intent = await self._request(
            "GET",
            f"/v1/setup_intents/{_path_id(setup_id, 'seti_')}",
            params={"expand": ["payment_method"]},
        )
        return setup_from_stripe(intent)

    async def charge_off_session(
        self,
        *,
        gateway_customer_id: str,
        gateway_payment_method_id: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> Charge:
        if amount <= 0:
            raise InvalidCardRequest("A charge needs a positive amount.", code="invalid_amount")
        intent = await self._request(
            "POST",
            "/v1/payment_intents",
            params={
                "amount": amount,
                # Stripe wants lower-case ISO codes; we keep upper case everywhere else.
                "currency": currency.lower(),
                "customer": gateway_customer_id,
                "payment_method": gateway_payment_method_id,
                # Without explicit types, confirm=true on recent API versions would want a
                # return_url for redirect-based methods; off-session cards never redirect.
                "payment_method_types": ["card"],
                "confirm": True,
                "off_session": True,
                "metadata": {**metadata, IDEMPOTENCY_METADATA_KEY: idempotency_key},
            },
            # The caller's key unchanged: a repeat is the same request, so Stripe replays the
            # first answer (success or decline) instead of charging again.
            idempotency_key=idempotency_key,
        )
        return charge_from_stripe(intent)

    async def find_charge(self, idempotency_key: str) -> Charge | None:
        """The PaymentIntent whose metadata carries this key, through Stripe's search.

        Stripe documents search as eventually consistent (normally under a minute behind,
        longer during incidents), so None here means "not found yet", not proof that no
        charge exists. The engine reconciles primarily by re-sending the charge with the same
        Idempotency-Key, which is strongly consistent; this is the cross-check for attempts
        older than Stripe's 24-hour key retention, when a re-send would charge anew.
        """
        result = await self._request(
            "GET",
            "/v1/payment_intents/search",
            params={
                "query": f"metadata['{IDEMPOTENCY_METADATA_KEY}']:"
                + _search_literal(idempotency_key),
                "limit": 10,
            },
        )
        intents = [item for item in result.get("data") or [] if isinstance(item, dict)]
        if not intents:
            return None
        intents.sort(key=lambda item: _CHARGE_PRIORITY.get(str(item.get("status")), 9))
        return charge_from_stripe(intents[0])

    async def tokenize_card(
        self, *, number: str, exp_month: int, exp_year: int, cvc: str | None
    ) -> str:
        # Only for AUTORENEW_ACCEPT_RAW_CARD_DATA. The key is random on purpose: one derived
        # from the card data would carry it into Stripe's request logs and our own.
        payment_method = await self._request(
            "POST",
            "/v1/payment_methods",
            params={
                "type": "card",
                "card": {
                    "number": number,
                    "exp_month": exp_month,
                    "exp_year": exp_year,
                    "cvc": cvc,
                },
            },
            idempotency_key=f"autorenew-tokenize-{secrets.token_hex(16)}",
        )
        return str(payment_method["id"])

    async def aclose(self) -> None:
        await self._client.aclose()
