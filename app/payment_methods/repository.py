"""All SQL for payment methods and mandates.

Every customer-facing read starts from `owned_by(customer_id)`, so the ownership filter is
written once: another customer's method is simply not found.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.core.reads import Reads, ReadStatement
from app.payment_methods.models import Mandate, PaymentMethod, PaymentMethodStatus


def _methods() -> Select[tuple[PaymentMethod]]:
    # The mandate always comes along: SEPA responses show its reference, and lazy loads
    # are refused (they would be hidden queries in an async session).
    return select(PaymentMethod).options(selectinload(PaymentMethod.mandate))


def owned_by(customer_id: str, *, status: str | None = None) -> Select[tuple[PaymentMethod]]:
    query = _methods().where(PaymentMethod.customer_id == customer_id)
    if status is not None:
        query = query.where(PaymentMethod.status == status)
    return query


async def get_owned(
    session: AsyncSession, customer_id: str, method_id: str, *, for_update: bool = False
) -> PaymentMethod | None:
    query = owned_by(customer_id).where(PaymentMethod.id == method_id)
    if for_update:
        # Serialises concurrent validate/revoke/default calls on one method (PostgreSQL;
        # SQLite has a single writer anyway).
        query = query.with_for_update(of=PaymentMethod)
    return (await session.scalars(query)).first()


# A customer's read of one method, in one statement: the method's columns and its mandate's
# reference (built and compiled once; bound per call).
_OWNED_ROW = ReadStatement.of(
    select(PaymentMethod.__table__, Mandate.reference.label("mandate_reference"))
    .select_from(
        PaymentMethod.__table__.outerjoin(
            Mandate.__table__, Mandate.payment_method_id == PaymentMethod.id
        )
    )
    .where(
        PaymentMethod.customer_id == bindparam("customer_id"),
        PaymentMethod.id == bindparam("method_id"),
    )
)


async def owned_row(reads: Reads, customer_id: str, method_id: str) -> Any:
    """The method's columns plus `mandate_reference`, read by attribute, without building a
    model; None when the customer has no such method."""
    rows = await reads.rows(_OWNED_ROW, {"customer_id": customer_id, "method_id": method_id})
    return rows[0] if rows else None


async def find_live_by_fingerprint(
    session: AsyncSession, customer_id: str, fingerprints: Sequence[str]
) -> PaymentMethod | None:
    query = owned_by(customer_id).where(
        PaymentMethod.iban_fingerprint.in_(fingerprints),
        PaymentMethod.status != PaymentMethodStatus.REVOKED,
    )
    return (await session.scalars(query.limit(1))).first()


async def mandate_reference_taken(session: AsyncSession, reference: str) -> bool:
    taken = await session.scalar(
        select(exists().where(func.upper(Mandate.reference) == reference.upper()))
    )
    return bool(taken)


async def clear_default(session: AsyncSession, customer_id: str) -> None:
    await session.execute(
        update(PaymentMethod)
        .where(PaymentMethod.customer_id == customer_id, PaymentMethod.is_default.is_(True))
        .values(is_default=False)
        .execution_options(synchronize_session="fetch")
    )


async def ibans_sealed_with(
    session: AsyncSession, key_ids: Sequence[str], limit: int
) -> list[PaymentMethod]:
    """SEPA methods whose IBAN is sealed with one of `key_ids` (for key rotation)."""
    query = (
        select(PaymentMethod)
        .where(PaymentMethod.iban_key_id.in_(key_ids))
        .order_by(PaymentMethod.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.scalars(query)).all())


async def count_ibans_by_key(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(PaymentMethod.iban_key_id, func.count())
        .where(PaymentMethod.iban_key_id.is_not(None))
        .group_by(PaymentMethod.iban_key_id)
    )
    return {str(key_id): int(count) for key_id, count in rows.all()}


# Card methods that still count: a failed or expired card may be registered again (a
# renewed card keeps its number, so its fingerprint), a revoked one too.
_LIVE_CARD_STATUSES = (PaymentMethodStatus.VALIDATED, PaymentMethodStatus.REQUIRES_ACTION)


async def find_live_card(
    session: AsyncSession, customer_id: str, fingerprint: str
) -> PaymentMethod | None:
    query = owned_by(customer_id).where(
        PaymentMethod.type == "card",
        PaymentMethod.card_fingerprint == fingerprint,
        PaymentMethod.status.in_(_LIVE_CARD_STATUSES),
    )
    return (await session.scalars(query.order_by(PaymentMethod.created_at).limit(1))).first()


async def gateway_customer_of(session: AsyncSession, customer_id: str) -> str | None:
    """The gateway customer this customer's cards hang off (one per customer), if any."""
    query = (
        select(PaymentMethod.gateway_customer_id)
        .where(
            PaymentMethod.customer_id == customer_id,
            PaymentMethod.gateway_customer_id.is_not(None),
        )
        .order_by(PaymentMethod.created_at, PaymentMethod.id)
        .limit(1)
    )
    return await session.scalar(query)


async def cards_past_expiry(
    session: AsyncSession, *, year: int, month: int, limit: int
) -> list[PaymentMethod]:
    """Live cards whose expiry month ended before `year`-`month` (claimed: SKIP LOCKED)."""
    query = (
        _methods()
        .where(
            PaymentMethod.type == "card",
            PaymentMethod.status.in_(_LIVE_CARD_STATUSES),
            or_(
                PaymentMethod.card_exp_year < year,
                and_(PaymentMethod.card_exp_year == year, PaymentMethod.card_exp_month < month),
            ),
        )
        .order_by(PaymentMethod.id)
        .limit(limit)
        .with_for_update(of=PaymentMethod, skip_locked=True)
    )
    return list((await session.scalars(query)).all())


async def cards_with_gateway_id(
    session: AsyncSession, gateway_payment_method_id: str
) -> list[PaymentMethod]:
    """Every card row (of any status) that holds this gateway payment method, locked: the
    gateway's reports about it apply to each."""
    query = (
        _methods()
        .where(
            PaymentMethod.type == "card",
            PaymentMethod.gateway_payment_method_id == gateway_payment_method_id,
        )
        .order_by(PaymentMethod.created_at, PaymentMethod.id)
        .with_for_update(of=PaymentMethod)
    )
    return list((await session.scalars(query)).all())


async def card_with_setup_id(session: AsyncSession, setup_id: str) -> PaymentMethod | None:
    """The card being set up by this gateway set-up (3-D Secure), locked like a validate."""
    query = (
        _methods()
        .where(PaymentMethod.type == "card", PaymentMethod.gateway_setup_id == setup_id)
        .order_by(PaymentMethod.created_at.desc(), PaymentMethod.id)
        .limit(1)
        .with_for_update(of=PaymentMethod)
    )
    return (await session.scalars(query)).first()
