"""The facts about a payment method that decide whether it can renew a service.

Services read payment methods only through here, so the renewal rules (currency, expiry,
status) are written once and the payment-methods package stays free to change its tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ARRAY, Row, String, any_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.reads import Reads, ReadStatement
from app.payment_methods.models import PaymentMethod

# SEPA direct debits are denominated in euro only (SEPA Core rulebook).
SEPA_CURRENCIES = frozenset({"EUR"})


@dataclass(frozen=True)
class MethodFacts:
    id: str
    type: str
    status: str
    display: str
    # A card works until the end of its expiry month; None for methods that do not expire.
    valid_until: datetime | None

    def supports_currency(self, currency: str) -> bool:
        return self.type != "sepa_debit" or currency in SEPA_CURRENCIES


def card_valid_until(exp_month: int, exp_year: int) -> datetime:
    """The first instant after the card's expiry month (cards expire at the month's end)."""
    if exp_month == 12:
        return datetime(exp_year + 1, 1, 1, tzinfo=UTC)
    return datetime(exp_year, exp_month + 1, 1, tzinfo=UTC)


def facts(method: PaymentMethod | Row[Any]) -> MethodFacts:
    if method.type == "card":
        valid_until = (
            card_valid_until(method.card_exp_month, method.card_exp_year)
            if method.card_exp_month and method.card_exp_year
            else None
        )
        brand = (method.card_brand or "card").upper()
        return MethodFacts(
            id=method.id,
            type=method.type,
            status=method.status,
            display=f"{brand} •••• {method.card_last4 or '????'}",
            valid_until=valid_until,
        )
    return MethodFacts(
        id=method.id,
        type=method.type,
        status=method.status,
        display=method.iban_masked or f"IBAN •••• {method.iban_last4 or '????'}",
        valid_until=None,
    )


async def load_method(
    session: AsyncSession, *, customer_id: str, method_id: str
) -> MethodFacts | None:
    query = select(PaymentMethod).where(
        PaymentMethod.id == method_id, PaymentMethod.customer_id == customer_id
    )
    method = (await session.execute(query)).scalar_one_or_none()
    return facts(method) if method else None


async def method_type(session: AsyncSession, method_id: str | None) -> str | None:
    """The type of a method, for `Service.payment_method_type` (from the session's identity
    map when the method was loaded already, as it is when it was just checked)."""
    if method_id is None:
        return None
    method = await session.get(PaymentMethod, method_id)
    return method.type if method is not None else None


async def load_methods(session: AsyncSession, ids: Iterable[str]) -> dict[str, MethodFacts]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = await session.execute(select(PaymentMethod).where(PaymentMethod.id.in_(wanted)))
    return {method.id: facts(method) for method in rows.scalars()}


# What `facts` reads, for reads that build no models (built once; the ids bound per call).
_FACT_COLUMNS = select(
    PaymentMethod.id,
    PaymentMethod.type,
    PaymentMethod.status,
    PaymentMethod.card_brand,
    PaymentMethod.card_last4,
    PaymentMethod.card_exp_month,
    PaymentMethod.card_exp_year,
    PaymentMethod.iban_masked,
    PaymentMethod.iban_last4,
)
_FACTS = ReadStatement.of(
    _FACT_COLUMNS.where(PaymentMethod.id.in_(bindparam("ids", expanding=True))),
    # PostgreSQL: one array parameter, one prepared statement for any count.
    postgresql=_FACT_COLUMNS.where(PaymentMethod.id == any_(bindparam("ids", type_=ARRAY(String)))),
)


async def read_methods(reads: Reads, ids: Iterable[str]) -> dict[str, MethodFacts]:
    """`load_methods` for read-only routes: the columns `facts` needs, no models (which
    in a unit of work would show its own unflushed changes; a read has none)."""
    wanted = set(ids)
    if not wanted:
        return {}
    return {row.id: facts(row) for row in await reads.rows(_FACTS, {"ids": list(wanted)})}


async def default_method(session: AsyncSession, *, customer_id: str) -> MethodFacts | None:
    query = select(PaymentMethod).where(
        PaymentMethod.customer_id == customer_id,
        PaymentMethod.is_default.is_(True),
        PaymentMethod.status == "validated",
    )
    method = (await session.execute(query)).scalars().first()
    return facts(method) if method else None
