"""Card methods: registration through the gateway, 3-D Secure, expiry.

The client tokenizes the card at the gateway (the SPA uses the gateway's own fields), so a
card reaches us as a gateway payment-method id. We set it up for off-session use on the
caller's gateway customer and keep only what may be kept: gateway ids, brand, last 4,
expiry, funding, country and the gateway's fingerprint. Never the number or the CVC.

    register  token → gateway customer → set up → validated | requires_action (3-D Secure)
              declined → 402 card_declined, nothing kept
    refresh   after the customer's 3-D Secure step → validated | failed | still waiting
    expire    cards past their expiry month → expired (a periodic job)
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from stdnum import luhn

from app.core.database import transaction
from app.core.errors import (
    AppError,
    Conflict,
    PaymentRequired,
    ServiceUnavailable,
    TooManyRequests,
    Unprocessable,
)
from app.core.ids import new_id
from app.core.scheduler import JobContext
from app.gateways.port import (
    AuthenticationRequired,
    CardDeclined,
    CardDetails,
    CardSetup,
    GatewayError,
    InvalidCardRequest,
    OutcomeUnknown,
    PaymentGateway,
    RateLimited,
)
from app.payment_methods import events, repository
from app.payment_methods.declines import GENERIC_DECLINE, told_to_customer
from app.payment_methods.models import PaymentMethod, PaymentMethodStatus, PaymentMethodType
from app.payment_methods.schemas import CardIn
from app.services.methods import card_valid_until

# Gateway codes that mean the card itself is past its date (Stripe: expired_card at attach
# or set-up; invalid_expiry_* when tokenizing).
_EXPIRED_CODES = frozenset({"expired_card", "invalid_expiry_year", "invalid_expiry_month"})
_NUMBER_CODES = frozenset({"incorrect_number", "invalid_number"})
_CVC_CODES = frozenset({"invalid_cvc"})
log = logging.getLogger("autorenew.cards")


def _declined(precise: str | None) -> PaymentRequired:
    code = precise or GENERIC_DECLINE
    told = told_to_customer(code)
    log.warning("card declined at registration", extra={"decline_code": code})
    return PaymentRequired(
        "The card was declined.", code="card_declined", extra={"decline_code": told}
    )


@dataclass(frozen=True)
class CardRegistration:
    """What registering a card needs besides the body."""

    gateway: PaymentGateway
    return_url: str
    accept_raw_card_data: bool
    # The caller's Idempotency-Key, when given: the gateway's set-up key derives from it.
    request_key: str | None = None


@dataclass(frozen=True)
class MethodOutcome:
    """A method just registered or validated (of either type), and, for a card waiting
    for 3-D Secure, where the customer completes it (the gateway's URL is not stored)."""

    method: PaymentMethod
    action_url: str | None = None


def card_expired(exp_month: int, exp_year: int, now: datetime) -> bool:
    """Past the end of its expiry month (a card works until that month ends)."""
    return card_valid_until(exp_month, exp_year) <= now


def _card_expired() -> Unprocessable:
    return Unprocessable("The card has expired.", code="card_expired")


def gateway_problem(exc: GatewayError) -> AppError:
    """The answer for a gateway failure during registration or validation."""
    if isinstance(exc, CardDeclined):
        if exc.code in _EXPIRED_CODES or exc.decline_code in _EXPIRED_CODES:
            return _card_expired()
        if exc.code in _NUMBER_CODES:
            return Unprocessable("The card number is not valid.", code="invalid_card_number")
        if exc.code in _CVC_CODES:
            return Unprocessable("The card's security code is not valid.", code="invalid_cvc")
        return _declined(exc.decline_code or exc.code)
    if isinstance(exc, AuthenticationRequired):
        return PaymentRequired(
            "The card was declined: the issuer asks for authentication.",
            code="card_declined",
            extra={"decline_code": "authentication_required"},
        )
    if isinstance(exc, InvalidCardRequest):
        return Unprocessable(
            "The card token is unknown, already used or not a card.", code="invalid_card_token"
        )
    if isinstance(exc, RateLimited):
        headers = {}
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        return TooManyRequests(
            "The card gateway asks us to slow down; retry shortly.",
            code="gateway_rate_limited",
            headers=headers,
        )
    if isinstance(exc, OutcomeUnknown):
        return ServiceUnavailable(
            "The card gateway did not answer; nothing was saved. Retry with the same "
            "Idempotency-Key.",
            code="gateway_unavailable",
            headers={"Retry-After": "5"},
        )
    # Our own configuration or a bug (bad API key, reused key): nothing the caller can fix.
    return ServiceUnavailable("The card gateway refused our request.", code="gateway_error")


async def _token_for(card: CardIn, registration: CardRegistration, now: datetime) -> str:
    """The gateway token of the card in the body; raw card data only when allowed, checked
    (Luhn, expiry) before it leaves, and never kept."""
    if not card.carries_card_data:
        if card.token is None:
            raise Unprocessable(
                "Send the gateway's token for the card: {'card': {'token': 'pm_…'}}.",
                code="card_token_required",
            )
        return card.token
    if not registration.accept_raw_card_data:
        raise Unprocessable(
            "This service does not accept card numbers or security codes; tokenize the card "
            "at the gateway and send its token.",
            code="raw_card_data_not_accepted",
        )
    if card.token is not None:
        raise Unprocessable(
            "Send either a token or the card data, not both.", code="ambiguous_card"
        )
    number = _digits(card.number)
    if card.number is None or card.exp_month is None or card.exp_year is None:
        raise Unprocessable(
            "Card data needs number, exp_month and exp_year.", code="card_data_incomplete"
        )
    if not luhn.is_valid(number) or not 12 <= len(number) <= 19:
        raise Unprocessable("The card number is not valid.", code="invalid_card_number")
    if card_expired(card.exp_month, card.exp_year, now):
        raise _card_expired()
    cvc = card.cvc.get_secret_value() if card.cvc is not None else None
    try:
        return await registration.gateway.tokenize_card(
            number=number, exp_month=card.exp_month, exp_year=card.exp_year, cvc=cvc
        )
    except GatewayError as exc:
        raise gateway_problem(exc) from None  # `from None`: no card data in a chained trace


def _digits(number: SecretStr | None) -> str:
    if number is None:
        return ""
    return number.get_secret_value().replace(" ", "").replace("-", "")


def _setup_key(customer_id: str, request_key: str | None, token: str) -> str:
    """The gateway idempotency key for a set-up. From the caller's Idempotency-Key, so a
    retried registration replays the first set-up instead of making a second; the token is
    part of it, so a retry corrected to another card is a new set-up, not a key conflict."""
    seed = f"{customer_id}\n{request_key or new_id('req')}\n{token}"
    return "autorenew-card-setup-" + hashlib.sha256(seed.encode()).hexdigest()[:40]


def _keep_card(method: PaymentMethod, setup: CardSetup) -> None:
    method.gateway_customer_id = setup.gateway_customer_id or method.gateway_customer_id
    method.gateway_payment_method_id = setup.gateway_payment_method_id
    method.gateway_setup_id = setup.setup_id
    keep_card_details(method, setup.card)


def keep_card_details(method: PaymentMethod, card: CardDetails) -> None:
    """What may be kept about a card, as the gateway describes it (never the number)."""
    method.card_brand = card.brand
    method.card_last4 = card.last4[-4:] or None
    method.card_exp_month = card.exp_month or None
    method.card_exp_year = card.exp_year or None
    method.card_funding = card.funding
    method.card_country = card.country
    method.card_fingerprint = card.fingerprint


async def register(
    session: AsyncSession,
    *,
    customer_id: str,
    card: CardIn,
    registration: CardRegistration,
    now: datetime,
) -> MethodOutcome:
    gateway = registration.gateway
    token = await _token_for(card, registration, now)
    existing_customer = await repository.gateway_customer_of(session, customer_id)
    try:
        gateway_customer = await gateway.ensure_customer(
            customer_ref=customer_id, existing_id=existing_customer
        )
        setup = await gateway.set_up_card(
            gateway_customer_id=gateway_customer,
            payment_method_token=token,
            return_url=registration.return_url,
            idempotency_key=_setup_key(customer_id, registration.request_key, token),
        )
    except GatewayError as exc:
        raise gateway_problem(exc) from None
    if setup.status == "failed":
        # Declined without an error object (a set-up that ended in requires_payment_method).
        raise _declined(setup.decline_code or setup.failure_code)
    if setup.card.exp_year and card_expired(setup.card.exp_month, setup.card.exp_year, now):
        raise _card_expired()
    if setup.card.fingerprint:
        duplicate = await repository.find_live_card(session, customer_id, setup.card.fingerprint)
        if duplicate is not None:
            raise Conflict(
                "This card is already registered.",
                code="duplicate_payment_method",
                extra={"payment_method_id": duplicate.id},
            )
    validated = setup.status == "succeeded"
    method = PaymentMethod(
        id=new_id("pm"),
        customer_id=customer_id,
        type=PaymentMethodType.CARD,
        status=PaymentMethodStatus.VALIDATED if validated else PaymentMethodStatus.REQUIRES_ACTION,
        is_default=False,
        created_at=now,
        updated_at=now,
        validated_at=now if validated else None,
    )
    _keep_card(method, setup)
    method.gateway_customer_id = method.gateway_customer_id or gateway_customer
    session.add(method)
    try:
        await session.flush()
    except IntegrityError as exc:
        # A concurrent registration of the same card won the unique index after our check.
        raise Conflict(
            "This card was just registered by another request.",
            code="duplicate_payment_method",
        ) from exc
    await events.announce(session, "created", method, now)
    if validated:
        await events.announce(session, "validated", method, now)
    return MethodOutcome(method, None if validated else setup.action_url)


async def refresh(
    session: AsyncSession, method: PaymentMethod, gateway: PaymentGateway, now: datetime
) -> MethodOutcome:
    """The card's state after the customer's 3-D Secure step (`method` locked)."""
    if method.status != PaymentMethodStatus.REQUIRES_ACTION or not method.gateway_setup_id:
        raise Conflict(
            f"The payment method is {method.status}, not waiting for validation.",
            code="payment_method_not_pending",
            extra={"payment_method_status": method.status},
        )
    try:
        setup = await gateway.refresh_setup(method.gateway_setup_id)
    except GatewayError as exc:
        raise gateway_problem(exc) from None
    if setup.status in ("requires_action", "processing"):
        return MethodOutcome(method, setup.action_url)
    _keep_card(method, setup)
    method.updated_at = now
    if setup.status == "succeeded":
        method.status = PaymentMethodStatus.VALIDATED
        method.validated_at = now
        method.failure_code = None
    else:
        method.status = PaymentMethodStatus.FAILED
        method.failure_code = setup.decline_code or setup.failure_code or "card_setup_failed"
    await session.flush()
    kind = "validated" if setup.status == "succeeded" else "failed"
    await events.announce(session, kind, method, now)
    return MethodOutcome(method)


async def expire_cards(session: AsyncSession, now: datetime, *, limit: int = 500) -> int:
    """Mark live cards past their expiry month as expired; each change is announced.
    They stay assigned to their services, whose readiness then says what to fix."""
    methods = await repository.cards_past_expiry(
        session, year=now.year, month=now.month, limit=limit
    )
    for method in methods:
        method.status = PaymentMethodStatus.EXPIRED
        method.updated_at = now
    await session.flush()
    for method in methods:
        await events.announce(session, "expired", method, now)
    return len(methods)


async def expire_cards_job(context: JobContext) -> int:
    """The periodic job (app/jobs.py): its own transaction, committed when done."""
    async with transaction(context.sessionmaker) as session:
        return await expire_cards(session, context.clock.now())
