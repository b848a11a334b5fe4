"""What each sandbox API call does to the ledger. All SQL of the sandbox lives here.

Operations run inside the idempotency layer's transaction (`idempotency.py`). They return
`(status, body)` for outcomes Stripe would store and replay (successes *and* card errors),
and raise `StripeError` for requests refused before acting (missing parameters, unknown
ids), which Stripe does not store.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.ids import new_id
from app.sandbox import cards
from app.sandbox.models import (
    Customer,
    PaymentIntent,
    PaymentIntentMetadata,
    PaymentMethod,
    SetupIntent,
)
from app.sandbox.objects import (
    StripeError,
    card_error,
    customer_json,
    error_dict,
    invalid_request,
    missing,
    no_such,
    payment_intent_json,
    payment_method_json,
    setup_intent_json,
)
from app.sandbox.params import flag, integer, metadata, text

Outcome = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class Context:
    now: datetime
    secret: str
    # Absolute URL of this sandbox as browsers see it (for the 3-D Secure page).
    public_url: str
    idempotency_key: str | None = None

    def challenge_url(self, intent: SetupIntent) -> str | None:
        if intent.challenge_token is None:
            return None
        return f"{self.public_url}/3ds/{intent.id}?token={intent.challenge_token}"


def _expired(method: PaymentMethod, now: datetime) -> bool:
    return (method.exp_year, method.exp_month) < (now.year, now.month)


# --- Customers --------------------------------------------------------------------------


async def create_customer(session: AsyncSession, ctx: Context, params: dict[str, Any]) -> Outcome:
    customer = Customer(
        id=new_id("cus", 14),
        email=text(params, "email"),
        name=text(params, "name"),
        description=text(params, "description"),
        meta=metadata(params),
        created=ctx.now,
    )
    session.add(customer)
    return 200, customer_json(customer)


async def get_customer(
    session: AsyncSession, customer_id: str, param: str = "customer"
) -> Customer:
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise no_such("customer", customer_id, param)
    return customer


# --- Payment methods --------------------------------------------------------------------


def _card_field_error(code: str, message: str, param: str) -> StripeError:
    return StripeError(402, "card_error", message, code=code, param=param)


def _new_payment_method(
    ctx: Context, number: str, exp_month: int, exp_year: int, cvc: str | None
) -> PaymentMethod:
    card = cards.card_for(number)
    cvc_check = None
    if cvc is not None:
        cvc_check = "fail" if card.decline is cards.INCORRECT_CVC else "pass"
    return PaymentMethod(
        id=new_id("pm", 24),
        customer_id=None,
        brand=card.brand,
        last4=number[-4:],
        exp_month=exp_month,
        exp_year=exp_year,
        funding=card.funding,
        country=card.country,
        fingerprint=cards.fingerprint(ctx.secret, number),
        behaviour=cards.behaviour_of(card),
        cvc_check=cvc_check,
        set_up_off_session=False,
        created=ctx.now,
    )


async def create_payment_method(
    session: AsyncSession, ctx: Context, params: dict[str, Any]
) -> Outcome:
    if text(params, "type", required=True) != "card":
        raise invalid_request("The sandbox only knows type=card.", param="type")
    card = params.get("card")
    if not isinstance(card, dict):
        raise missing("card")
    number = (text(card, "number", required=True, param="card[number]") or "").replace(" ", "")
    exp_month = integer(card, "exp_month", required=True, param="card[exp_month]") or 0
    exp_year = integer(card, "exp_year", required=True, param="card[exp_year]") or 0
    cvc = text(card, "cvc")
    if not cards.luhn_valid(number):
        raise _card_field_error(
            "incorrect_number", "Your card number is incorrect.", "card[number]"
        )
    if not 1 <= exp_month <= 12:
        raise _card_field_error(
            "invalid_expiry_month", "Your card's expiration month is invalid.", "card[exp_month]"
        )
    if exp_year < ctx.now.year or (exp_year == ctx.now.year and exp_month < ctx.now.month):
        raise _card_field_error(
            "invalid_expiry_year", "Your card's expiration year is invalid.", "card[exp_year]"
        )
    if cvc is not None and not (cvc.isdigit() and len(cvc) in (3, 4)):
        raise _card_field_error("invalid_cvc", "Your card's security code is invalid.", "card[cvc]")
    method = _new_payment_method(ctx, number, exp_month, exp_year, cvc)
    session.add(method)
    return 200, payment_method_json(method)


async def get_payment_method(
    session: AsyncSession, ctx: Context, method_id: str, param: str = "payment_method"
) -> PaymentMethod:
    """A stored method, or a fresh one for Stripe's test ids (`pm_card_visa`, …)."""
    test_number = cards.TEST_PAYMENT_METHODS.get(method_id)
    if test_number is not None:
        fresh = _new_payment_method(ctx, test_number, 12, ctx.now.year + 3, None)
        session.add(fresh)
        await session.flush()
        return fresh
    stored = await session.get(PaymentMethod, method_id)
    if stored is None:
        raise no_such("PaymentMethod", method_id, param)
    return stored


def _attach_decline(method: PaymentMethod, now: datetime) -> cards.Decline | None:
    behaviour, decline = cards.parse_behaviour(method.behaviour)
    if _expired(method, now):
        return cards.EXPIRED
    return decline if behaviour == "decline_on_attach" else None


async def attach_payment_method(
    session: AsyncSession, ctx: Context, method_id: str, params: dict[str, Any]
) -> Outcome:
    customer_id = text(params, "customer", required=True) or ""
    await get_customer(session, customer_id)
    method = await get_payment_method(session, ctx, method_id)
    if method.customer_id not in (None, customer_id):
        raise invalid_request(
            "The payment method you provided has already been attached to a customer.",
            param="payment_method",
        )
    decline = _attach_decline(method, ctx.now)
    if decline is not None:
        return 402, card_error(decline, payment_method=payment_method_json(method)).document()
    method.customer_id = customer_id
    return 200, payment_method_json(method)


# --- Setup intents ----------------------------------------------------------------------


async def create_setup_intent(
    session: AsyncSession, ctx: Context, params: dict[str, Any]
) -> Outcome:
    customer_id = text(params, "customer")
    if customer_id:
        await get_customer(session, customer_id)
    method = await get_payment_method(
        session, ctx, text(params, "payment_method", required=True) or ""
    )
    if not flag(params, "confirm"):
        raise invalid_request(
            "The sandbox only creates SetupIntents with confirm=true.", param="confirm"
        )
    usage = text(params, "usage") or "off_session"
    if usage not in ("off_session", "on_session"):
        raise invalid_request(f"Invalid usage: {usage}", param="usage")
    if method.customer_id not in (None, customer_id):
        raise invalid_request(
            "The payment method belongs to another customer.", param="payment_method"
        )
    behaviour, _ = cards.parse_behaviour(method.behaviour)
    needs_auth = behaviour.startswith("auth_")
    return_url = text(params, "return_url")
    if needs_auth and not return_url:
        raise invalid_request("This card needs 3-D Secure: give a return_url.", param="return_url")
    intent = SetupIntent(
        id=new_id("seti", 24),
        customer_id=customer_id,
        payment_method_id=method.id,
        status="succeeded",
        usage=usage,
        return_url=return_url,
        challenge_token=None,
        last_error=None,
        meta=metadata(params),
        created=ctx.now,
    )
    session.add(intent)
    decline = _attach_decline(method, ctx.now)
    expand = "payment_method" in (params.get("expand") or [])
    if decline is not None:
        intent.status = "requires_payment_method"
        intent.last_error = error_dict(decline)
        body = setup_intent_json(intent, method=method, expand=expand)
        return 402, card_error(decline, setup_intent=body).document()
    if needs_auth:
        intent.status = "requires_action"
        intent.challenge_token = secrets.token_urlsafe(24)
    else:
        complete_setup(intent, method)
    return 200, setup_intent_json(
        intent, method=method, expand=expand, challenge_url=ctx.challenge_url(intent)
    )


def complete_setup(intent: SetupIntent, method: PaymentMethod) -> None:
    intent.status = "succeeded"
    intent.challenge_token = None
    if intent.customer_id:
        method.customer_id = intent.customer_id
    if intent.usage == "off_session":
        method.set_up_off_session = True


def fail_setup_authentication(intent: SetupIntent) -> None:
    intent.status = "requires_payment_method"
    intent.challenge_token = None
    intent.last_error = {
        "type": "invalid_request_error",
        "code": "setup_intent_authentication_failure",
        "message": "We are unable to authenticate your payment method. Please choose a "
        "different payment method and try again.",
    }


async def get_setup_intent(session: AsyncSession, intent_id: str) -> SetupIntent:
    intent = await session.get(SetupIntent, intent_id)
    if intent is None:
        raise no_such("setup_intent", intent_id, "intent")
    return intent


async def retrieve_setup_intent(
    session: AsyncSession, ctx: Context, intent_id: str, expand: bool
) -> dict[str, Any]:
    intent = await get_setup_intent(session, intent_id)
    method = await session.get(PaymentMethod, intent.payment_method_id)
    return setup_intent_json(
        intent, method=method, expand=expand, challenge_url=ctx.challenge_url(intent)
    )


# --- Payment intents --------------------------------------------------------------------


def _charge_decline(method: PaymentMethod, now: datetime) -> cards.Decline | None:
    behaviour, decline = cards.parse_behaviour(method.behaviour)
    if _expired(method, now):
        return cards.EXPIRED
    if behaviour in ("decline_on_attach", "decline_on_charge", "auth_then_decline"):
        return decline or cards.GENERIC
    if behaviour == "auth_always" or (
        behaviour == "auth_unless_set_up" and not method.set_up_off_session
    ):
        return cards.AUTHENTICATION
    return None


async def create_payment_intent(
    session: AsyncSession, ctx: Context, params: dict[str, Any]
) -> Outcome:
    amount = integer(params, "amount", required=True) or 0
    if not 1 <= amount <= 99_999_999:
        raise invalid_request(
            "Invalid positive integer", param="amount", code="parameter_invalid_integer"
        )
    currency = (text(params, "currency", required=True) or "").lower()
    if len(currency) != 3 or not currency.isalpha():
        raise invalid_request(f"Invalid currency: {currency}.", param="currency")
    if not (flag(params, "confirm") and flag(params, "off_session")):
        raise invalid_request(
            "The sandbox only makes off-session charges (confirm=true, off_session=true).",
            param="off_session",
        )
    customer_id = text(params, "customer")
    if customer_id:
        await get_customer(session, customer_id)
    method = await get_payment_method(
        session, ctx, text(params, "payment_method", required=True) or ""
    )
    if method.customer_id is not None and method.customer_id != customer_id:
        raise invalid_request(
            "The provided PaymentMethod belongs to a different Customer.", param="payment_method"
        )
    meta = metadata(params)
    intent = PaymentIntent(
        id=new_id("pi", 24),
        customer_id=customer_id,
        payment_method_id=method.id,
        amount=amount,
        currency=currency,
        status="succeeded",
        idempotency_key=ctx.idempotency_key,
        last_error=None,
        latest_charge=new_id("ch", 24),
        meta=meta,
        created=ctx.now,
    )
    session.add(intent)
    session.add_all(
        PaymentIntentMetadata(payment_intent_id=intent.id, key=key, value=value)
        for key, value in meta.items()
    )
    decline = _charge_decline(method, ctx.now)
    if decline is None:
        return 200, payment_intent_json(intent)
    intent.status = "requires_payment_method"
    intent.last_error = error_dict(decline)
    return 402, card_error(
        decline,
        charge=intent.latest_charge,
        payment_intent=payment_intent_json(intent),
        payment_method=payment_method_json(method),
    ).document()


async def retrieve_payment_intent(
    session: AsyncSession, _ctx: Context, intent_id: str, expand: bool
) -> dict[str, Any]:
    intent = await session.get(PaymentIntent, intent_id)
    if intent is None:
        raise no_such("payment_intent", intent_id, "intent")
    method = await session.get(PaymentMethod, intent.payment_method_id) if expand else None
    return payment_intent_json(intent, method=method, expand=expand)


async def search_payment_intents(
    session: AsyncSession, clauses: list[tuple[str, str | None, str]], limit: int
) -> list[dict[str, Any]]:
    """Clauses from `search.parse_query`: (field, metadata key or None, value), ANDed."""
    query = select(PaymentIntent)
    for field, key, value in clauses:
        if field == "metadata":
            matching = select(PaymentIntentMetadata.payment_intent_id).where(
                PaymentIntentMetadata.key == key, PaymentIntentMetadata.value == value
            )
            query = query.where(PaymentIntent.id.in_(matching))
        elif field == "status":
            query = query.where(PaymentIntent.status == value)
        elif field == "customer":
            query = query.where(PaymentIntent.customer_id == value)
        elif field == "currency":
            query = query.where(PaymentIntent.currency == value.lower())
        elif field == "amount":
            query = query.where(PaymentIntent.amount == int(value))
    query = query.order_by(PaymentIntent.created.desc(), PaymentIntent.id).limit(limit)
    return [payment_intent_json(intent) for intent in (await session.scalars(query)).all()]
