"""Charges, refunds and disputes on the ledger.

A PaymentIntent's confirmation makes one charge (succeeded or failed, as at Stripe); a
refund (`POST /v1/refunds`) gives money back on a succeeded charge (`charge.refunded`); a
dispute (the test trigger, or a 0259 card after every charge) opens a chargeback on it
(`charge.dispute.created`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.ids import new_id
from app.sandbox import cards, events
from app.sandbox.charge_objects import charge_json, dispute_json, outcome_json, refund_json
from app.sandbox.context import Context
from app.sandbox.errors import invalid_request, missing, no_such
from app.sandbox.methods import Outcome
from app.sandbox.models import Charge, Dispute, PaymentIntent, PaymentMethod, Refund
from app.sandbox.objects import unix
from app.sandbox.params import integer, metadata, text

DISPUTE_REASONS = frozenset(
    {
        "fraudulent",
        "product_not_received",
        "product_unacceptable",
        "duplicate",
        "subscription_canceled",
        "credit_not_processed",
        "general",
    }
)
# Card networks give the merchant about three weeks to answer a chargeback.
EVIDENCE_DAYS = 21


async def make_charge(
    session: AsyncSession,
    ctx: Context,
    intent: PaymentIntent,
    method: PaymentMethod,
    decline: cards.Decline | None,
    *,
    authenticated: bool,
) -> Charge:
    # Rows reach the database in an order the foreign keys accept only when flushed in steps
    # (the models declare no relationships that would order them).
    await session.flush()
    charge = Charge(
        id=new_id("ch", 24),
        payment_intent_id=intent.id,
        customer_id=intent.customer_id,
        payment_method_id=method.id,
        amount=intent.amount,
        amount_refunded=0,
        currency=intent.currency,
        status="failed" if decline else "succeeded",
        failure_code=decline.code if decline else None,
        failure_message=decline.message if decline else None,
        outcome=outcome_json(decline),
        disputed=False,
        authenticated=authenticated,
        description=intent.description,
        meta=dict(intent.meta or {}),
        created=ctx.now,
    )
    session.add(charge)
    intent.latest_charge = charge.id
    await session.flush()
    return charge


async def _refunds(session: AsyncSession, charge_id: str) -> list[Refund]:
    query = select(Refund).where(Refund.charge_id == charge_id).order_by(Refund.created.desc())
    return list((await session.scalars(query)).all())


async def charge_body(session: AsyncSession, charge: Charge) -> dict[str, Any]:
    method = await session.get_one(PaymentMethod, charge.payment_method_id)
    return charge_json(charge, method, await _refunds(session, charge.id))


async def get_charge(session: AsyncSession, charge_id: str, param: str = "charge") -> Charge:
    charge = await session.get(Charge, charge_id)
    if charge is None:
        raise no_such("charge", charge_id, param)
    return charge


async def retrieve_charge(session: AsyncSession, charge_id: str) -> dict[str, Any]:
    return await charge_body(session, await get_charge(session, charge_id, "id"))


async def _charge_to_refund(session: AsyncSession, params: dict[str, Any]) -> Charge:
    charge_id = text(params, "charge")
    intent_id = text(params, "payment_intent")
    if charge_id:
        return await get_charge(session, charge_id)
    if not intent_id:
        raise missing("charge")
    intent = await session.get(PaymentIntent, intent_id)
    if intent is None:
        raise no_such("payment_intent", intent_id, "payment_intent")
    if intent.latest_charge is None:
        raise invalid_request(
            "This PaymentIntent does not have a successful charge to refund.",
            param="payment_intent",
        )
    return await get_charge(session, intent.latest_charge, "payment_intent")


async def create_refund(session: AsyncSession, ctx: Context, params: dict[str, Any]) -> Outcome:
    charge = await _charge_to_refund(session, params)
    if charge.status != "succeeded":
        raise invalid_request(
            f"Charge {charge.id} has not succeeded; there is nothing to refund.", param="charge"
        )
    remaining = charge.amount - charge.amount_refunded
    amount = integer(params, "amount")
    if amount is None:
        amount = remaining
    if remaining <= 0:
        raise invalid_request(
            f"Charge {charge.id} has already been refunded.", code="charge_already_refunded"
        )
    if not 1 <= amount <= remaining:
        raise invalid_request(
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining}).",
            param="amount",
        )
    reason = text(params, "reason")
    if reason not in (None, "duplicate", "fraudulent", "requested_by_customer"):
        raise invalid_request(f"Invalid reason: {reason}", param="reason")
    refund = Refund(
        id=new_id("re", 24),
        charge_id=charge.id,
        payment_intent_id=charge.payment_intent_id,
        amount=amount,
        currency=charge.currency,
        reason=reason,
        status="succeeded",
        meta=metadata(params),
        created=ctx.now,
    )
    session.add(refund)
    before = {"amount_refunded": charge.amount_refunded, "refunded": False}
    charge.amount_refunded += amount
    await session.flush()
    body = await charge_body(session, charge)
    previous = {key: value for key, value in before.items() if body[key] != value}
    events.emit(session, ctx, "charge.refunded", body, previous)
    return 200, refund_json(refund)


async def open_dispute(
    session: AsyncSession, ctx: Context, charge: Charge, reason: str, amount: int | None = None
) -> Dispute:
    if charge.status != "succeeded":
        raise invalid_request(f"Charge {charge.id} has not succeeded.", param="charge")
    if charge.disputed:
        raise invalid_request(f"Charge {charge.id} is already disputed.", param="charge")
    if reason not in DISPUTE_REASONS:
        raise invalid_request(f"Invalid reason: {reason}", param="reason")
    amount = charge.amount - charge.amount_refunded if amount is None else amount
    if not 1 <= amount <= charge.amount:
        raise invalid_request("The disputed amount must be within the charge.", param="amount")
    dispute = Dispute(
        id=new_id("dp", 24),
        charge_id=charge.id,
        payment_intent_id=charge.payment_intent_id,
        amount=amount,
        currency=charge.currency,
        reason=reason,
        status="needs_response",
        created=ctx.now,
    )
    session.add(dispute)
    charge.disputed = True
    await session.flush()
    method = await session.get_one(PaymentMethod, charge.payment_method_id)
    due_by = unix(ctx.now + timedelta(days=EVIDENCE_DAYS))
    events.emit(session, ctx, "charge.dispute.created", dispute_json(dispute, method, due_by))
    return dispute


async def dispute_charge(
    session: AsyncSession, ctx: Context, charge_id: str, params: dict[str, Any]
) -> Outcome:
    """Test trigger: the cardholder's bank opens a chargeback."""
    charge = await get_charge(session, charge_id, "id")
    dispute = await open_dispute(
        session, ctx, charge, text(params, "reason") or "fraudulent", integer(params, "amount")
    )
    method = await session.get_one(PaymentMethod, charge.payment_method_id)
    return 200, dispute_json(dispute, method, unix(ctx.now + timedelta(days=EVIDENCE_DAYS)))
