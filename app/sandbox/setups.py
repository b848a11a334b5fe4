"""SetupIntents on the ledger: save a card for later (off-session) payments, through the
3-D Secure page when the card needs it.

    create (confirm=false)         requires_payment_method | requires_confirmation
    create (confirm=true) / confirm → succeeded | requires_action (3-D Secure page) |
                                      402 and requires_payment_method (declined)
    the page: complete → succeeded; fail → requires_payment_method
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.ids import new_id
from app.sandbox import cards, events
from app.sandbox.context import Context, new_challenge_token, new_client_secret
from app.sandbox.errors import card_error, error_dict, invalid_request, no_such, unexpected_state
from app.sandbox.methods import (
    Outcome,
    attach_decline,
    get_customer,
    get_payment_method,
    refuse_detached,
)
from app.sandbox.models import PaymentMethod, SetupIntent
from app.sandbox.objects import payment_method_json, setup_intent_json
from app.sandbox.params import expands, flag, metadata, text

CONFIRMABLE = ("requires_payment_method", "requires_confirmation")


def _json(ctx: Context, intent: SetupIntent, method: PaymentMethod | None, expand: bool) -> Any:
    return setup_intent_json(
        intent,
        method=method,
        expand=expand,
        challenge_url=ctx.challenge_url(intent.id, intent.challenge_token),
    )


async def create_setup_intent(
    session: AsyncSession, ctx: Context, params: dict[str, Any]
) -> Outcome:
    customer_id = text(params, "customer")
    if customer_id:
        await get_customer(session, customer_id)
    usage = text(params, "usage") or "off_session"
    if usage not in ("off_session", "on_session"):
        raise invalid_request(f"Invalid usage: {usage}", param="usage")
    method_id = text(params, "payment_method")
    method = await get_payment_method(session, ctx, method_id) if method_id else None
    intent_id = new_id("seti", 24)
    intent = SetupIntent(
        id=intent_id,
        client_secret=new_client_secret(intent_id),
        customer_id=customer_id,
        payment_method_id=method.id if method else None,
        status="requires_confirmation" if method else "requires_payment_method",
        usage=usage,
        description=text(params, "description"),
        return_url=None,
        challenge_token=None,
        last_error=None,
        meta=metadata(params),
        created=ctx.now,
    )
    if flag(params, "confirm"):
        if method is None:
            raise invalid_request(
                "You cannot confirm this SetupIntent because it's missing a payment method.",
                param="payment_method",
            )
        _check_owner(method, customer_id)
        session.add(intent)
        return _confirm(session, ctx, intent, method, params)
    if method is not None:
        _check_owner(method, customer_id)
    session.add(intent)
    return 200, _json(ctx, intent, method, expands(params, "payment_method"))


def _check_owner(method: PaymentMethod, customer_id: str | None) -> None:
    refuse_detached(method)
    if method.customer_id not in (None, customer_id):
        raise invalid_request(
            "The payment method belongs to another customer.", param="payment_method"
        )


async def confirm_setup_intent(
    session: AsyncSession, ctx: Context, intent_id: str, params: dict[str, Any]
) -> Outcome:
    intent = await get_setup_intent(session, intent_id)
    if intent.status not in CONFIRMABLE:
        raise unexpected_state(
            f"You cannot confirm this SetupIntent because it has a status of {intent.status}.",
            "setup_intent",
        )
    method_id = text(params, "payment_method") or intent.payment_method_id
    if method_id is None:
        raise invalid_request(
            "You cannot confirm this SetupIntent because it's missing a payment method.",
            param="payment_method",
        )
    method = await get_payment_method(session, ctx, method_id)
    _check_owner(method, intent.customer_id)
    intent.payment_method_id = method.id
    return _confirm(session, ctx, intent, method, params)


def _confirm(
    session: AsyncSession,
    ctx: Context,
    intent: SetupIntent,
    method: PaymentMethod,
    params: dict[str, Any],
) -> Outcome:
    expand = expands(params, "payment_method")
    behaviour, _ = cards.parse_behaviour(method.behaviour)
    return_url = text(params, "return_url") or intent.return_url
    needs_auth = behaviour.startswith("auth_")
    if needs_auth and not return_url:
        raise invalid_request("This card needs 3-D Secure: give a return_url.", param="return_url")
    intent.return_url = return_url
    intent.last_error = None
    decline = attach_decline(method, ctx.now)
    if decline is not None:
        intent.status = "requires_payment_method"
        intent.last_error = error_dict(decline, payment_method=payment_method_json(method))
        body = _json(ctx, intent, method, expand)
        events.emit(session, ctx, "setup_intent.setup_failed", _json(ctx, intent, None, False))
        return 402, card_error(decline, setup_intent=body).document()
    if needs_auth:
        intent.status = "requires_action"
        intent.challenge_token = new_challenge_token()
    else:
        complete_setup(session, ctx, intent, method)
    return 200, _json(ctx, intent, method, expand)


def complete_setup(
    session: AsyncSession, ctx: Context, intent: SetupIntent, method: PaymentMethod
) -> None:
    intent.status = "succeeded"
    intent.challenge_token = None
    if intent.usage == "off_session":
        method.set_up_off_session = True
    if intent.customer_id and method.customer_id is None:
        method.customer_id = intent.customer_id
        events.emit(session, ctx, "payment_method.attached", payment_method_json(method))
    events.emit(session, ctx, "setup_intent.succeeded", _json(ctx, intent, None, False))


def fail_setup_authentication(session: AsyncSession, ctx: Context, intent: SetupIntent) -> None:
    intent.status = "requires_payment_method"
    intent.challenge_token = None
    intent.last_error = {
        "type": "invalid_request_error",
        "code": "setup_intent_authentication_failure",
        "message": "We are unable to authenticate your payment method. Please choose a "
        "different payment method and try again.",
    }
    events.emit(session, ctx, "setup_intent.setup_failed", _json(ctx, intent, None, False))


async def get_setup_intent(session: AsyncSession, intent_id: str) -> SetupIntent:
    intent = await session.get(SetupIntent, intent_id)
    if intent is None:
        raise no_such("setup_intent", intent_id, "intent")
    return intent


async def retrieve_setup_intent(
    session: AsyncSession, ctx: Context, intent_id: str, expand: bool
) -> dict[str, Any]:
    intent = await get_setup_intent(session, intent_id)
    method = (
        await session.get(PaymentMethod, intent.payment_method_id)
        if intent.payment_method_id
        else None
    )
    result: dict[str, Any] = _json(ctx, intent, method, expand)
    return result
