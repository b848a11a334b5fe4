"""Rows for tests, built through the same code paths the API uses where one exists."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.ids import new_id
from app.core.money import Money
from app.payment_methods.models import PaymentMethod
from app.services import registry
from app.services.models import Service
from app.services.schemas import ServiceUpsert

ADMIN = registry.Actor("provisioning", "admin")


async def card_method(
    session: AsyncSession,
    customer_id: str,
    *,
    now: datetime,
    status: str = "validated",
    gateway_pm: str | None = None,
    exp: tuple[int, int] = (12, 2030),
    is_default: bool = False,
) -> PaymentMethod:
    method = PaymentMethod(
        id=new_id("pm"),
        customer_id=customer_id,
        type="card",
        status=status,
        is_default=is_default,
        created_at=now,
        updated_at=now,
        gateway_customer_id=f"gcus_{customer_id}",
        gateway_payment_method_id=gateway_pm or new_id("gpm"),
        card_brand="visa",
        card_last4="4242",
        card_exp_month=exp[0],
        card_exp_year=exp[1],
    )
    session.add(method)
    await session.flush()
    return method


async def sepa_method(
    session: AsyncSession, customer_id: str, *, now: datetime, status: str = "validated"
) -> PaymentMethod:
    method = PaymentMethod(
        id=new_id("pm"),
        customer_id=customer_id,
        type="sepa_debit",
        status=status,
        is_default=False,
        created_at=now,
        updated_at=now,
        iban_masked="ES91 **** **** **** **** 1332",
        iban_last4="1332",
        iban_country="ES",
    )
    session.add(method)
    await session.flush()
    return method


async def service(
    session: AsyncSession,
    customer_id: str,
    *,
    now: datetime,
    service_id: str | None = None,
    expires_in: timedelta = timedelta(days=30),
    kind: str = "hosting",
    amount: int = 1299,
    currency: str = "EUR",
    period_months: int = 12,
    method: PaymentMethod | None = None,
    auto_renew: bool = True,
) -> Service:
    row, _ = await registry.upsert_service(
        session,
        service_id or new_id("svc"),
        ServiceUpsert(
            customer_id=customer_id,
            kind=kind,
            name=f"{kind} for {customer_id}",
            expires_at=now + expires_in,
            period_months=period_months,
            price=Money(amount=amount, currency=currency),
            auto_renew=auto_renew,
        ),
        actor=ADMIN,
        now=now,
    )
    if method is not None:
        row.payment_method_id, row.payment_method_type = method.id, method.type
    await session.flush()
    return row
