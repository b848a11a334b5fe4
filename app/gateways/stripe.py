"""The `stripe` adapter: the payment-gateway port over Stripe's v1 API, through Stripe's SDK.

Requests go through the official `stripe` package's async client (its form encoding, its
typed errors), pinned to one API version, over one pooled `httpx.AsyncClient` of ours
(app/gateways/stripe_http.py says why not the SDK's own). The built-in sandbox speaks the
same subset of the API, so the same adapter talks to both; tests and the in-process sandbox
swap the httpx client's *transport*, never a code path.

Every POST carries the caller's `Idempotency-Key`. The adapter never retries by itself
(the SDK is built with `max_network_retries=0`): an answer that does not prove what happened
becomes `OutcomeUnknown`, and the caller (the renewal engine) reconciles by re-sending the
same request with the same key — Stripe answers a repeat with the stored first response for
24 hours — or, where a repeat cannot tell (`look_up`), by `find_charge`. See
app/gateways/stripe_errors.py for which answers are final.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable
from typing import TypeVar

import httpx
import stripe

from app.gateways import metrics
from app.gateways.port import (
    CardSetup,
    Charge,
    InvalidCardRequest,
    PaymentMethodNotFound,
    StoredPaymentMethod,
)
from app.gateways.stripe_errors import error_from_stripe, error_kind
from app.gateways.stripe_http import HttpxTransport
from app.gateways.stripe_objects import (
    CHARGE_PRIORITY,
    IDEMPOTENCY_METADATA_KEY,
    charge_from_stripe,
    setup_from_stripe,
    stored_payment_method_from_stripe,
)

STRIPE_API_BASE = "https://api.stripe.com"
# Pinned so neither an SDK upgrade nor a change of the account's default version changes
# the shapes we parse (the sandbox speaks this version too).
STRIPE_API_VERSION = "2025-03-31.basil"

T = TypeVar("T")


def default_timeout(connect: float = 5.0, read: float = 30.0) -> httpx.Timeout:
    return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)


_OBJECT_ID = re.compile(r"^[A-Za-z0-9_]{1,255}$")


def _path_id(value: str, prefix: str) -> str:
    """An id that goes into a URL path. Tokens come from the browser: one like
    `pm_x/../../customers/cus_y` must never steer a request signed with our secret key to
    another endpoint (the SDK escapes ids too; this refuses them before anything is sent)."""
    if not value.startswith(prefix) or not _OBJECT_ID.match(value):
        raise InvalidCardRequest(f"Not a valid {prefix}… id.", code="invalid_gateway_id")
    return value


def _search_literal(value: str) -> str:
    """A value quoted for Stripe's search query language."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _positive(amount: int) -> int:
    if amount <= 0:
        raise InvalidCardRequest("A charge needs a positive amount.", code="invalid_amount")
    return amount


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
        base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            timeout=timeout or default_timeout(),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )
        self._stripe = stripe.StripeClient(
            api_key,
            stripe_version=api_version,
            base_addresses={"api": base_url},
            max_network_retries=0,
            http_client=HttpxTransport(self._client),
        )
        self._v1 = self._stripe.v1

    async def _call(self, request: Awaitable[T]) -> T:
        """The SDK's answer, or its error as the port's exception."""
        try:
            return await request
        except stripe.StripeError as exc:
            error = error_from_stripe(exc)
            if (kind := error_kind(exc, error)) is not None:
                metrics.GATEWAY_ERRORS.labels(kind).inc()
            raise error from exc

    # --- The port ---------------------------------------------------------------------

    async def ensure_customer(self, *, customer_ref: str, existing_id: str | None) -> str:
        if existing_id:
            return existing_id
        # A key derived from our customer id: two registrations racing for the same customer
        # get one Stripe customer (for the 24 hours Stripe keeps keys).
        customer = await self._call(
            self._v1.customers.create_async(
                params={"metadata": {"autorenew_customer_id": customer_ref}},
                options={"idempotency_key": f"autorenew-customer-{customer_ref}"},
            )
        )
        return str(customer.id)

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
        attached = await self._call(
            self._v1.payment_methods.attach_async(
                _path_id(payment_method_token, "pm_"),
                params={"customer": gateway_customer_id},
                options={"idempotency_key": f"{idempotency_key}-attach"},
            )
        )
        intent = await self._call(
            self._v1.setup_intents.create_async(
                params={
                    "customer": gateway_customer_id,
                    "payment_method": attached.id,
                    "payment_method_types": ["card"],
                    "usage": "off_session",
                    "confirm": True,
                    "return_url": return_url,
                    "expand": ["payment_method"],
                },
                options={"idempotency_key": f"{idempotency_key}-setup"},
            )
        )
        return setup_from_stripe(intent)

    async def refresh_setup(self, setup_id: str) -> CardSetup:
        intent = await self._call(
            self._v1.setup_intents.retrieve_async(
                _path_id(setup_id, "seti_"), params={"expand": ["payment_method"]}
            )
        )
        return setup_from_stripe(intent)

    async def get_payment_method(self, gateway_payment_method_id: str) -> StoredPaymentMethod:
        # GET /v1/payment_methods/{id}: a read, so no idempotency key and nothing changes at
        # Stripe (an import's dry run calls it too). A malformed id is "not found" as well:
        # it came from a file, and no payment method can have it.
        try:
            found = await self._call(
                self._v1.payment_methods.retrieve_async(_path_id(gateway_payment_method_id, "pm_"))
            )
        except InvalidCardRequest as exc:
            if exc.code in ("resource_missing", "invalid_gateway_id"):
                raise PaymentMethodNotFound(exc.message) from exc
            raise
        return stored_payment_method_from_stripe(found)

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
        intent = await self._call(
            self._v1.payment_intents.create_async(
                params={
                    "amount": _positive(amount),
                    # Stripe wants lower-case ISO codes; we keep upper case everywhere else.
                    "currency": currency.lower(),
                    "customer": gateway_customer_id,
                    "payment_method": gateway_payment_method_id,
                    # Without explicit types, confirm=true on recent API versions would want
                    # a return_url for redirect-based methods; off-session cards never redirect.
                    "payment_method_types": ["card"],
                    "confirm": True,
                    "off_session": True,
                    "metadata": {**metadata, IDEMPOTENCY_METADATA_KEY: idempotency_key},
                },
                # The caller's key unchanged: a repeat is the same request, so Stripe replays
                # the first answer (success or decline) instead of charging again.
                options={"idempotency_key": idempotency_key},
            )
        )
        return charge_from_stripe(intent)

    async def charge_on_session(
        self,
        *,
        gateway_customer_id: str,
        gateway_payment_method_id: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        return_url: str,
        metadata: dict[str, str],
    ) -> Charge:
        # No off_session: the customer is here, so the issuer may ask for 3-D Secure, which
        # Stripe answers with requires_action and a redirect that ends at return_url.
        intent = await self._call(
            self._v1.payment_intents.create_async(
                params={
                    "amount": _positive(amount),
                    "currency": currency.lower(),
                    "customer": gateway_customer_id,
                    "payment_method": gateway_payment_method_id,
                    "payment_method_types": ["card"],
                    "confirm": True,
                    "return_url": return_url,
                    "metadata": {**metadata, IDEMPOTENCY_METADATA_KEY: idempotency_key},
                },
                options={"idempotency_key": idempotency_key},
            )
        )
        return charge_from_stripe(intent)

    async def confirm_on_session(
        self,
        charge_id: str,
        *,
        return_url: str,
        idempotency_key: str,
        gateway_payment_method_id: str | None = None,
    ) -> Charge:
        # The same PaymentIntent, confirmed again with the customer present: whatever the
        # earlier off-session try left (requires_payment_method after authentication_required)
        # is paid at most once, by this intent.
        params: stripe.PaymentIntentService.ConfirmParams = {"return_url": return_url}
        if gateway_payment_method_id is not None:
            params["payment_method"] = gateway_payment_method_id
        intent = await self._call(
            self._v1.payment_intents.confirm_async(
                _path_id(charge_id, "pi_"),
                params=params,
                options={"idempotency_key": idempotency_key},
            )
        )
        return charge_from_stripe(intent)

    async def get_charge(self, charge_id: str) -> Charge:
        intent = await self._call(
            self._v1.payment_intents.retrieve_async(_path_id(charge_id, "pi_"))
        )
        return charge_from_stripe(intent)

    async def find_charge(self, idempotency_key: str) -> Charge | None:
        """The PaymentIntent whose metadata carries this key, through Stripe's search.

        Stripe documents search as eventually consistent (normally under a minute behind,
        longer during incidents), so None here means "not found yet", not proof that no
        charge exists: the engine takes it as proof only once the attempt is older than the
        idempotency window. It reconciles primarily by re-sending the charge with the same
        Idempotency-Key, which is strongly consistent, and looks up where a re-send cannot
        tell (the key refused, a stored error replayed, the key's 24 hours over).
        """
        result = await self._call(
            self._v1.payment_intents.search_async(
                params={
                    "query": f"metadata['{IDEMPOTENCY_METADATA_KEY}']:"
                    + _search_literal(idempotency_key),
                    "limit": 10,
                }
            )
        )
        intents = list(result.data)
        if not intents:
            return None
        intents.sort(key=lambda item: CHARGE_PRIORITY.get(str(item.get("status")), 9))
        return charge_from_stripe(intents[0])

    async def tokenize_card(
        self, *, number: str, exp_month: int, exp_year: int, cvc: str | None
    ) -> str:
        # Only for AUTORENEW_ACCEPT_RAW_CARD_DATA. The key is random on purpose: one derived
        # from the card data would carry it into Stripe's request logs and our own.
        card: stripe.PaymentMethodService.CreateParamsCard = {
            "number": number,
            "exp_month": exp_month,
            "exp_year": exp_year,
        }
        if cvc is not None:
            card["cvc"] = cvc
        payment_method = await self._call(
            self._v1.payment_methods.create_async(
                params={"type": "card", "card": card},
                options={"idempotency_key": f"autorenew-tokenize-{secrets.token_hex(16)}"},
            )
        )
        return str(payment_method.id)

    async def aclose(self) -> None:
        await self._client.aclose()
