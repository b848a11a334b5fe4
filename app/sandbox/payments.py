"""PaymentIntents on the ledger: off-session charges (renewals) and on-session payments that
go through the 3-D Secure page.

    create (confirm=false)                   requires_payment_method | requires_confirmation
    confirm, off_session                     → succeeded, or 402 and requires_payment_method
                                               (declined, or authentication_required)
    confirm, on-session, card needs 3-D Secure → requires_action (next_action.redirect_to_url)
        the page: complete → charged: succeeded, or requires_payment_method if declined
                  fail     → requires_payment_method (payment_intent_authentication_failure)
    confirm, on-session, other cards         → as off-session
    confirm again while requires_action      → starts over: the old 3-D Secure page is void

Every attempt that reaches the card makes a charge (`charges.make_charge`), failed or not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.ids import new_id
from app.sandbox import cards, events
from app.sandbox.charges import make_charge, open_dispute
from app.sandbox.context import Context, new_challenge_token, new_client_secret
from app.sandbox.errors import card_error, error_dict, invalid_request, no_such, unexpected_state
from app.sandbox.methods import (
    Outcome,
    expired,
    get_customer,
    get_payment_method,
    refuse_detached,
)
from app.sandbox.models import PaymentIntent, PaymentIntentMetadata, PaymentMethod
from app.sandbox.objects import payment_intent_json, payment_method_json
from app.sandbox.params import expands, flag, integer, metadata, off_session, text

CONFIRMABLE = ("requires_payment_method", "requires_confirmation")
_DECLINED_ON_CHARGE = ("decline_on_attach", "decline_on_charge", "auth_then_decline", "blocked")


def charge_decline(method: PaymentMethod, now: datetime) -> cards.Decline | None:
    """What the issuer (or Radar) answers to a charge on this card, authentication aside."""
    behaviour, decline = cards.parse_behaviour(method.behaviour)
    if expired(method, now):
        return cards.EXPIRED
    if behaviour in _DECLINED_ON_CHARGE:
        return decline or cards.GENERIC
    return None


def _json(
    ctx: Context, intent: PaymentIntent, method: PaymentMethod | None = None, expand: bool = False
) -> dict[str, Any]:
    return payment_intent_json(
        intent,
        method=method,
        expand=expand,
        challenge_url=ctx.challenge_url(intent.id, intent.challenge_token),
    )


def _amount_and_currency(params: dict[str, Any]) -> tuple[int, str]:
    amount = integer(params, "amount", required=True) or 0
    if not 1 <= amount <= 99_999_999:
        raise invalid_request(
            "Invalid positive integer", param="amount", code="parameter_invalid_integer"
        )
    currency = (text(params, "currency", required=True) or "").lower()
    if len(currency) != 3 or not currency.isalpha():
        raise invalid_request(f"Invalid currency: {currency}.", param="currency")
    return amount, currency


def _check_owner(method: PaymentMethod, customer_id: str | None) -> None:
    refuse_detached(method)
    if method.customer_id is not None and method.customer_id != customer_id:
        raise invalid_request(
            "The provided PaymentMethod belongs to a different Customer.", param="payment_method"
        )


async def create_payment_intent(
    session: AsyncSession, ctx: Context, params: dict[str, Any]
) -> Outcome:
    amount, currency = _amount_and_currency(params)
    customer_id = text(params, "customer")
    if customer_id:
        await get_customer(session, customer_id)
    confirm = bool(flag(params, "confirm"))
    if off_session(params) and not confirm:
        raise invalid_request(
            "off_session can only be used with confirm=true.", param="off_session"
        )
    future_usage = text(params, "setup_future_usage")
    if future_usage not in (None, "on_session", "off_session"):
        raise invalid_request(
            f"Invalid setup_future_usage: {future_usage}", param="setup_future_usage"
        )
    method_id = text(params, "payment_method")
    method = await get_payment_method(session, ctx, method_id) if method_id else None
    if method is not None:
        _check_owner(method, customer_id)
    meta = metadata(params)
    intent_id = new_id("pi", 24)
    intent = PaymentIntent(
        id=intent_id,
        client_secret=new_client_secret(intent_id),
        customer_id=customer_id,
        payment_method_id=method.id if method else None,
        amount=amount,
        currency=currency,
        status="requires_confirmation" if method else "requires_payment_method",
        description=text(params, "description"),
        setup_future_usage=future_usage,
        idempotency_key=ctx.idempotency_key,
        return_url=None,
        challenge_token=None,
        last_error=None,
        latest_charge=None,
        meta=meta,
        created=ctx.now,
    )
    session.add(intent)
    session.add_all(
        PaymentIntentMetadata(payment_intent_id=intent.id, key=key, value=value)
        for key, value in meta.items()
    )
    if confirm:
        return await _confirm(session, ctx, intent, method, params)
    return 200, _json(ctx, intent, method, expands(params, "payment_method"))


async def confirm_payment_intent(
    session: AsyncSession, ctx: Context, intent_id: str, params: dict[str, Any]
) -> Outcome:
    intent = await get_payment_intent(session, intent_id)
    # Confirming again while 3-D Secure waits starts over (another card, a new page): the
    # old page's token dies with it, so only one page can ever pay.
    if intent.status not in (*CONFIRMABLE, "requires_action"):
        raise unexpected_state(
            f"You cannot confirm this PaymentIntent because it has a status of {intent.status}.",
            "payment_intent",
        )
    method_id = text(params, "payment_method") or intent.payment_method_id
    method = await get_payment_method(session, ctx, method_id) if method_id else None
    if method is not None:
        _check_owner(method, intent.customer_id)
    return await _confirm(session, ctx, intent, method, params)


async def _confirm(
    session: AsyncSession,
    ctx: Context,
    intent: PaymentIntent,
    method: PaymentMethod | None,
    params: dict[str, Any],
) -> Outcome:
    if method is None:
        raise invalid_request(
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
            param="payment_method",
        )
    intent.payment_method_id = method.id
    intent.last_error = None
    intent.challenge_token = None
    behaviour, _ = cards.parse_behaviour(method.behaviour)
    expand = expands(params, "payment_method")
    off = off_session(params)
    if cards.needs_authentication(behaviour, on_session=not off, set_up=method.set_up_off_session):
        if off:
            return await _settle(session, ctx, intent, method, cards.AUTHENTICATION, expand)
        return_url = text(params, "return_url") or intent.return_url
        if not return_url:
            raise invalid_request(
                "This card needs 3-D Secure: give a return_url.", param="return_url"
            )
        intent.return_url = return_url
        intent.status = "requires_action"
        intent.challenge_token = new_challenge_token()
        return 200, _json(ctx, intent, method, expand)
    return await _settle(session, ctx, intent, method, charge_decline(method, ctx.now), expand)


async def _settle(
    session: AsyncSession,
    ctx: Context,
    intent: PaymentIntent,
    method: PaymentMethod,
    decline: cards.Decline | None,
    expand: bool = False,
    *,
    authenticated: bool = False,
) -> Outcome:
    """Charge the card: the attempt's charge, the intent's new status, the events."""
    charge = await make_charge(session, ctx, intent, method, decline, authenticated=authenticated)
    if decline is None:
        intent.status = "succeeded"
        if intent.setup_future_usage == "off_session":
            method.set_up_off_session = True
        events.emit(session, ctx, "payment_intent.succeeded", _json(ctx, intent))
        if cards.parse_behaviour(method.behaviour)[0] == "dispute_after_charge":
            await open_dispute(session, ctx, charge, "fraudulent")
        return 200, _json(ctx, intent, method, expand)
    intent.status = "requires_payment_method"
    method_body = payment_method_json(method)
    intent.last_error = error_dict(decline, charge=charge.id, payment_method=method_body)
    events.emit(session, ctx, "payment_intent.payment_failed", _json(ctx, intent))
    return 402, card_error(
        decline,
        charge=charge.id,
        payment_intent=_json(ctx, intent, method, expand),
        payment_method=method_body,
    ).document()


async def finish_authentication(
    session: AsyncSession, ctx: Context, intent: PaymentIntent, *, passed: bool
) -> bool:
    """The customer answered the 3-D Secure page: charge the card, or record the failed
    authentication. True when the payment succeeded."""
    intent.challenge_token = None
    method = await session.get_one(PaymentMethod, intent.payment_method_id)
    if not passed:
        intent.status = "requires_payment_method"
        intent.last_error = {
            "type": "invalid_request_error",
            "code": "payment_intent_authentication_failure",
            "message": "The provided PaymentMethod has failed authentication. You can provide "
            "payment_method_data or a new PaymentMethod to attempt to fulfill this "
            "PaymentIntent again.",
            "payment_method": payment_method_json(method),
        }
        events.emit(session, ctx, "payment_intent.payment_failed", _json(ctx, intent))
        return False
    decline = charge_decline(method, ctx.now)
    await _settle(session, ctx, intent, method, decline, authenticated=True)
    return decline is None


async def get_payment_intent(session: AsyncSession, intent_id: str) -> PaymentIntent:
    intent = await session.get(PaymentIntent, intent_id)
    if intent is None:
        raise no_such("payment_intent", intent_id, "intent")
    return intent


async def retrieve_payment_intent(
    session: AsyncSession, ctx: Context, intent_id: str, expand: bool
) -> dict[str, Any]:
    intent = await get_payment_intent(session, intent_id)
    method = (
        await session.get(PaymentMethod, intent.payment_method_id)
        if expand and intent.payment_method_id
        else None
    )
    return _json(ctx, intent, method, expand)


async def search_payment_intents(
    session: AsyncSession, ctx: Context, clauses: list[tuple[str, str | None, str]], limit: int
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
    return [_json(ctx, intent) for intent in (await session.scalars(query)).all()]
