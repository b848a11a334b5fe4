"""All SQL of imports: what is already here, found a chunk of lines at a time."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.payment_methods.models import Mandate, PaymentMethod, PaymentMethodStatus


@dataclass(frozen=True)
class Existing:
    """A method already here that a line may name again."""

    payment_method_id: str
    customer_id: str
    iban_fingerprint: str | None = None


async def mandates_by_reference(
    session: AsyncSession, references: Collection[str]
) -> dict[str, Existing]:
    """By upper-cased reference: banks compare references regardless of case, and so does
    the unique index on them."""
    if not references:
        return {}
    wanted = {reference.upper() for reference in references}
    rows = await session.execute(
        select(
            func.upper(Mandate.reference),
            PaymentMethod.id,
            PaymentMethod.customer_id,
            PaymentMethod.iban_fingerprint,
        )
        .join(PaymentMethod, PaymentMethod.id == Mandate.payment_method_id)
        .where(func.upper(Mandate.reference).in_(wanted))
    )
    return {
        str(reference): Existing(method_id, customer_id, fingerprint)
        for reference, method_id, customer_id, fingerprint in rows.all()
    }


async def methods_by_gateway_id(
    session: AsyncSession, gateway_ids: Collection[str]
) -> dict[str, Existing]:
    if not gateway_ids:
        return {}
    rows = await session.execute(
        select(
            PaymentMethod.gateway_payment_method_id, PaymentMethod.id, PaymentMethod.customer_id
        ).where(PaymentMethod.gateway_payment_method_id.in_(set(gateway_ids)))
    )
    return {
        str(gateway_id): Existing(method_id, customer_id)
        for gateway_id, method_id, customer_id in rows.all()
    }


async def live_accounts(
    session: AsyncSession, pairs: Collection[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """(customer, IBAN fingerprint) → the live method already registered for that account
    (the unique index allows one per customer)."""
    if not pairs:
        return {}
    rows = await session.execute(
        select(PaymentMethod.customer_id, PaymentMethod.iban_fingerprint, PaymentMethod.id).where(
            tuple_(PaymentMethod.customer_id, PaymentMethod.iban_fingerprint).in_(set(pairs)),
            PaymentMethod.status != PaymentMethodStatus.REVOKED,
        )
    )
    return {(str(c), str(f)): str(i) for c, f, i in rows.all()}


_LIVE_CARD = (PaymentMethodStatus.VALIDATED, PaymentMethodStatus.REQUIRES_ACTION)


async def live_cards(
    session: AsyncSession, pairs: Collection[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """(customer, card fingerprint) → the live card already registered."""
    if not pairs:
        return {}
    rows = await session.execute(
        select(PaymentMethod.customer_id, PaymentMethod.card_fingerprint, PaymentMethod.id).where(
            PaymentMethod.type == "card",
            tuple_(PaymentMethod.customer_id, PaymentMethod.card_fingerprint).in_(set(pairs)),
            PaymentMethod.status.in_(_LIVE_CARD),
        )
    )
    return {(str(c), str(f)): str(i) for c, f, i in rows.all()}
