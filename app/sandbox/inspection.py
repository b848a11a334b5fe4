"""The sandbox-only ledger view (`/sandbox/_ledger/…`) that tests and benchmarks read."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.sandbox.models import Customer, PaymentIntent, PaymentMethod, SetupIntent
from app.sandbox.objects import payment_intent_json


async def list_charges(
    session: AsyncSession, status: str | None, limit: int
) -> list[dict[str, Any]]:
    query = select(PaymentIntent).order_by(PaymentIntent.created, PaymentIntent.id).limit(limit)
    if status:
        query = query.where(PaymentIntent.status == status)
    return [
        {**payment_intent_json(intent), "idempotency_key": intent.idempotency_key}
        for intent in (await session.scalars(query)).all()
    ]


async def summary(session: AsyncSession) -> dict[str, Any]:
    counts: dict[str, Any] = {}
    for name, model in (
        ("customers", Customer),
        ("payment_methods", PaymentMethod),
        ("setup_intents", SetupIntent),
        ("payment_intents", PaymentIntent),
    ):
        counts[name] = await session.scalar(select(func.count()).select_from(model))
    by_status = await session.execute(
        select(
            PaymentIntent.status, func.count(), func.coalesce(func.sum(PaymentIntent.amount), 0)
        ).group_by(PaymentIntent.status)
    )
    counts["charges_by_status"] = {
        status: {"count": count, "amount": int(total)} for status, count, total in by_status
    }
    return counts
