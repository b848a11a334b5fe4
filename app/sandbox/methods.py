"""Customers and payment methods on the ledger: create, attach, detach, update, and the card
updater (a test trigger: the network gave the card a new expiry or number).

Operations run inside the idempotency layer's transaction (`idempotency.py`). They return
`(status, body)` for outcomes Stripe would store and replay (successes *and* card errors),
and raise `StripeError` for requests refused before acting, which Stripe does not store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.ids import new_id
from app.sandbox import cards, events
from app.sandbox.context import Context
from app.sandbox.errors import StripeError, card_error, invalid_request, missing, no_such
from app.sandbox.models import Customer, PaymentMethod
from app.sandbox.objects import customer_json, payment_method_json
from app.sandbox.params import integer, metadata, text

Outcome = tuple[int, dict[str, Any]]


def expired(method: PaymentMethod, now: datetime) -> bool:
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
    ctx: Context,
    number: str,
    exp_month: int,
    exp_year: int,
    cvc: str | None,
    billing_name: str | None = None,
    meta: dict[str, str] | None = None,
) -> PaymentMethod:
    card = cards.card_for(number)
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
        behaviour=cards.behaviour_of(card, cvc_given=cvc is not None),
        cvc_check=cards.cvc_check(card, cvc),
        set_up_off_session=False,
        detached=False,
        billing_name=billing_name,
        meta=meta or {},
        created=ctx.now,
    )


def _expiry(card: dict[str, Any], now: datetime) -> tuple[int, int]:
    exp_month = integer(card, "exp_month", required=True, param="card[exp_month]") or 0
    exp_year = integer(card, "exp_year", required=True, param="card[exp_year]") or 0
    if not 1 <= exp_month <= 12:
        raise _card_field_error(
            "invalid_expiry_month", "Your card's expiration month is invalid.", "card[exp_month]"
        )
    if exp_year < 100:
        exp_year += 2000
    if exp_year < now.year or (exp_year == now.year and exp_month < now.month):
        raise _card_field_error(
            "invalid_expiry_year", "Your card's expiration year is invalid.", "card[exp_year]"
        )
    return exp_month, exp_year


def _billing_name(params: dict[str, Any]) -> str | None:
    details = params.get("billing_details")
    if details is None:
        return None
    if not isinstance(details, dict):
        raise invalid_request("Invalid billing_details.", param="billing_details")
    return text(details, "name", param="billing_details[name]")


async def create_payment_method(
    session: AsyncSession, ctx: Context, params: dict[str, Any]
) -> Outcome:
    if text(params, "type", required=True) != "card":
        raise invalid_request("The sandbox only knows type=card.", param="type")
    card = params.get("card")
    if not isinstance(card, dict):
        raise missing("card")
    number = (text(card, "number", required=True, param="card[number]") or "").replace(" ", "")
    cvc = text(card, "cvc")
    if not cards.luhn_valid(number):
        raise _card_field_error(
            "incorrect_number", "Your card number is incorrect.", "card[number]"
        )
    exp_month, exp_year = _expiry(card, ctx.now)
    if cvc is not None and not (cvc.isdigit() and len(cvc) in (3, 4)):
        raise _card_field_error("invalid_cvc", "Your card's security code is invalid.", "card[cvc]")
    method = _new_payment_method(
        ctx, number, exp_month, exp_year, cvc, _billing_name(params), metadata(params)
    )
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


def refuse_detached(method: PaymentMethod) -> None:
    if method.detached:
        raise invalid_request(
            "The provided PaymentMethod was previously used or detached from a Customer, "
            "and may not be used again.",
            param="payment_method",
        )


def attach_decline(method: PaymentMethod, now: datetime) -> cards.Decline | None:
    """Why the issuer refuses to keep this card on file, or None."""
    behaviour, decline = cards.parse_behaviour(method.behaviour)
    if expired(method, now):
        return cards.EXPIRED
    return decline if behaviour == "decline_on_attach" else None


async def attach_payment_method(
    session: AsyncSession, ctx: Context, method_id: str, params: dict[str, Any]
) -> Outcome:
    customer_id = text(params, "customer", required=True) or ""
    await get_customer(session, customer_id)
    method = await get_payment_method(session, ctx, method_id)
    refuse_detached(method)
    if method.customer_id not in (None, customer_id):
        raise invalid_request(
            "The payment method you provided has already been attached to a customer.",
            param="payment_method",
        )
    decline = attach_decline(method, ctx.now)
    if decline is not None:
        return 402, card_error(decline, payment_method=payment_method_json(method)).document()
    if method.customer_id is None:
        method.customer_id = customer_id
        events.emit(session, ctx, "payment_method.attached", payment_method_json(method))
    return 200, payment_method_json(method)


async def detach_payment_method(
    session: AsyncSession, ctx: Context, method_id: str, _params: dict[str, Any]
) -> Outcome:
    method = await get_payment_method(session, ctx, method_id)
    if method.customer_id is None:
        raise invalid_request(
            "The payment method you provided is not attached to a customer so detachment is "
            "impossible.",
            param="payment_method",
        )
    previous = method.customer_id
    method.customer_id = None
    method.detached = True
    body = payment_method_json(method)
    events.emit(session, ctx, "payment_method.detached", body, {"customer": previous})
    return 200, body


def _card_snapshot(method: PaymentMethod) -> dict[str, Any]:
    return {"exp_month": method.exp_month, "exp_year": method.exp_year, "last4": method.last4}


def _changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in before.items() if after.get(key) != value}


async def update_payment_method(
    session: AsyncSession, ctx: Context, method_id: str, params: dict[str, Any]
) -> Outcome:
    """POST /v1/payment_methods/{id}: expiry, billing name and metadata (as Stripe allows)."""
    method = await get_payment_method(session, ctx, method_id)
    refuse_detached(method)
    previous: dict[str, Any] = {}
    card = params.get("card")
    if card is not None:
        if not isinstance(card, dict) or set(card) - {"exp_month", "exp_year"}:
            raise invalid_request("Only card[exp_month] and card[exp_year] change.", param="card")
        before = _card_snapshot(method)
        method.exp_month = integer(card, "exp_month", param="card[exp_month]") or method.exp_month
        method.exp_year = integer(card, "exp_year", param="card[exp_year]") or method.exp_year
        _expiry({"exp_month": str(method.exp_month), "exp_year": str(method.exp_year)}, ctx.now)
        if changed := _changed(before, _card_snapshot(method)):
            previous["card"] = changed
    if "billing_details" in params:
        name = _billing_name(params)
        if name != method.billing_name:
            previous["billing_details"] = {"name": method.billing_name}
            method.billing_name = name
    if "metadata" in params:
        raw = params["metadata"]
        merged = {**(method.meta or {}), **metadata(params)}
        if isinstance(raw, dict):
            # Stripe: an empty value removes that key.
            merged = {key: value for key, value in merged.items() if raw.get(key) != ""}
        if merged != (method.meta or {}):
            previous["metadata"] = method.meta or {}
            method.meta = merged
    body = payment_method_json(method)
    if previous:
        events.emit(session, ctx, "payment_method.updated", body, previous)
    return 200, body


async def run_card_updater(
    session: AsyncSession, ctx: Context, method_id: str, params: dict[str, Any]
) -> Outcome:
    """Test trigger: the card network reissued the card (new expiry, maybe a new number), as
    Stripe's card account updater reports it (`payment_method.automatically_updated`).
    Without parameters the card gets the same month four years on."""
    method = await get_payment_method(session, ctx, method_id)
    refuse_detached(method)
    before = _card_snapshot(method)
    exp_month = integer(params, "exp_month") or method.exp_month
    exp_year = integer(params, "exp_year") or method.exp_year + 4
    exp_month, exp_year = _expiry({"exp_month": str(exp_month), "exp_year": str(exp_year)}, ctx.now)
    last4 = text(params, "last4") or method.last4
    if not (last4.isdigit() and len(last4) == 4):
        raise invalid_request("last4 is four digits.", param="last4")
    method.exp_month, method.exp_year, method.last4 = exp_month, exp_year, last4
    changed = _changed(before, _card_snapshot(method))
    if not changed:
        raise invalid_request("Nothing would change.", param="exp_year")
    body = payment_method_json(method)
    events.emit(session, ctx, "payment_method.automatically_updated", body, {"card": changed})
    return 200, body
