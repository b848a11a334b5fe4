"""The payment-gateway port: the few things autorenew needs from a card gateway.

Adapters (`stripe`, which also talks to the built-in sandbox) translate the provider's
objects and errors into these types, so the rest of the service never sees a provider's
vocabulary. Outcomes the caller must branch on are values; failures are exceptions:

    GatewayError                 anything the gateway refused or could not do
    ├── CardDeclined             the issuer said no (`hard` = retrying will not help)
    ├── AuthenticationRequired   the customer must authenticate (3-D Secure) first
    ├── InvalidCardRequest       our request named something unusable (bad token, …)
    │   └── PaymentMethodNotFound  no payment method with that id at the gateway
    ├── RateLimited              slow down; `retry_after` seconds when the gateway said
    ├── GatewayUnavailable       the gateway will not work for us at all (our API key is
    │                            rejected): it did nothing, and no other call will fare
    │                            better until an operator acts
    └── OutcomeUnknown           timeout, 5xx, a garbled answer, a key conflict: the
                                 charge may or may not have happened; reconcile with the
                                 idempotency key (`look_up`: by lookup, not by re-sending)

Only CardDeclined, AuthenticationRequired, InvalidCardRequest and RateLimited say that a
request took no money; anything else leaves the question open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol


@dataclass(frozen=True)
class CardDetails:
    """What we may keep about a card: never the number, never the CVC."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int
    funding: str | None = None
    country: str | None = None
    fingerprint: str | None = None


@dataclass(frozen=True)
class CardSetup:
    """A card being made chargeable off-session (a Stripe SetupIntent)."""

    setup_id: str
    status: Literal["succeeded", "requires_action", "processing", "failed"]
    gateway_customer_id: str
    gateway_payment_method_id: str
    card: CardDetails
    # Where the customer completes 3-D Secure while status is requires_action.
    action_url: str | None = None
    failure_code: str | None = None
    decline_code: str | None = None
    failure_message: str | None = None


ChargeStatus = Literal["succeeded", "processing", "requires_action", "failed", "canceled"]


@dataclass(frozen=True)
class StoredPaymentMethod:
    """A payment method as the gateway keeps it (a Stripe PaymentMethod): its type, the
    gateway customer it is attached to (None: attached to nobody, so not reusable), and for
    a card what may be kept about it."""

    gateway_payment_method_id: str
    type: str
    gateway_customer_id: str | None
    card: CardDetails | None


@dataclass(frozen=True)
class Charge:
    """A charge, off- or on-session (a Stripe PaymentIntent), as it stands.

    `failed` took no money and can be confirmed again (with the customer, or with another
    card); `canceled` never will be; `requires_action` waits for the customer at
    `action_url` (3-D Secure); `processing` is on its way and must be asked for again.
    `failure_code` / `decline_code` / `failure_message` describe the last failed try.
    """

    charge_id: str
    status: ChargeStatus
    amount: int
    currency: str
    idempotency_key: str | None = None
    action_url: str | None = None
    failure_code: str | None = None
    decline_code: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    failure_message: str | None = None
    # The card the charge was (last) tried with.
    gateway_payment_method_id: str | None = None


class GatewayError(Exception):
    def __init__(self, message: str, *, code: str = "gateway_error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class CardDeclined(GatewayError):
    def __init__(
        self,
        message: str,
        *,
        code: str = "card_declined",
        decline_code: str | None = None,
        hard: bool = False,
        charge_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.decline_code = decline_code
        self.hard = hard
        self.charge_id = charge_id


class AuthenticationRequired(GatewayError):
    def __init__(
        self, message: str, *, charge_id: str | None = None, action_url: str | None = None
    ) -> None:
        super().__init__(message, code="authentication_required")
        self.charge_id = charge_id
        self.action_url = action_url


class InvalidCardRequest(GatewayError):
    pass


class PaymentMethodNotFound(InvalidCardRequest):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="resource_missing")


class RateLimited(GatewayError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, code="rate_limited")
        self.retry_after = retry_after


class GatewayUnavailable(GatewayError):
    """The gateway refused to act for us at all (401/403: a rotated, revoked or restricted
    API key). Nothing was done with the request; the caller stops sending more."""

    def __init__(self, message: str, *, code: str = "gateway_unavailable") -> None:
        super().__init__(message, code=code)


class OutcomeUnknown(GatewayError):
    """The request may or may not have acted. `look_up`: sending it again under the same
    idempotency key cannot tell more (the gateway refuses the key, or replays a stored
    error and says retrying is pointless), so find the charge by its key instead."""

    def __init__(
        self, message: str, *, code: str = "gateway_outcome_unknown", look_up: bool = False
    ) -> None:
        super().__init__(message, code=code)
        self.look_up = look_up


class PaymentGateway(Protocol):
    async def ensure_customer(self, *, customer_ref: str, existing_id: str | None) -> str:
        """The gateway customer for our customer id (created when `existing_id` is None)."""
        ...

    async def set_up_card(
        self,
        *,
        gateway_customer_id: str,
        payment_method_token: str,
        return_url: str,
        idempotency_key: str,
    ) -> CardSetup:
        """Attach the tokenized card and verify it for off-session use (may need 3-D
        Secure: status requires_action with `action_url`). Raises CardDeclined."""
        ...

    async def refresh_setup(self, setup_id: str) -> CardSetup:
        """The setup's state after the customer's 3-D Secure step."""
        ...

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
        """Charge a saved card with the customer absent. The same idempotency key always
        means the same charge: a repeat never charges twice."""
        ...

    async def find_charge(self, idempotency_key: str) -> Charge | None:
        """The charge made with this idempotency key, or None if none was found (a lookup
        may lag behind the gateway's writes: None is proof only after a while)."""
        ...

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
        """Charge a saved card with the customer present ("pay now"): the issuer may ask
        for 3-D Secure, answered as status requires_action with `action_url`, after which
        the customer comes back to `return_url`. Raises CardDeclined."""
        ...

    async def confirm_on_session(
        self,
        charge_id: str,
        *,
        return_url: str,
        idempotency_key: str,
        gateway_payment_method_id: str | None = None,
    ) -> Charge:
        """Confirm an existing charge with the customer present, e.g. one an off-session
        attempt left waiting for authentication, optionally with another card: no new
        charge is made, so the earlier attempt can never be paid twice."""
        ...

    async def get_charge(self, charge_id: str) -> Charge:
        """The charge as it stands now (after the customer's 3-D Secure step)."""
        ...

    async def get_payment_method(self, gateway_payment_method_id: str) -> StoredPaymentMethod:
        """A payment method already stored at the gateway (read only: nothing changes
        there). Raises PaymentMethodNotFound when there is none with that id."""
        ...

    async def tokenize_card(
        self, *, number: str, exp_month: int, exp_year: int, cvc: str | None
    ) -> str:
        """Only for AUTORENEW_ACCEPT_RAW_CARD_DATA: turn card data into a gateway token
        without keeping any of it."""
        ...

    async def aclose(self) -> None: ...
