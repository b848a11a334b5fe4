"""Turns service rows into what the API shows: the method's summary, the next charge and
the readiness, all computed from the same facts the renewal engine uses."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.money import Money
from app.core.settings import Settings
from app.services.lead_time import lead_days, next_charge_at
from app.services.methods import MethodFacts, load_methods
from app.services.models import Service
from app.services.schemas import NextCharge, PaymentMethodSummary, ServiceOut
from app.services.service import renewal_readiness


def _out(service: Service, method: MethodFacts | None, settings: Settings) -> ServiceOut:
    method_type = method.type if method else None
    readiness = renewal_readiness(service, method, settings)
    next_charge = None
    if service.status == "active" and service.auto_renew:
        next_charge = NextCharge(
            at=next_charge_at(
                settings, expires_at=service.expires_at, kind=service.kind, method_type=method_type
            ),
            amount=Money(amount=service.price_amount, currency=service.price_currency),
            lead_days=lead_days(settings, kind=service.kind, method_type=method_type),
        )
    return ServiceOut(
        id=service.id,
        customer_id=service.customer_id,
        kind=service.kind,
        name=service.name,
        status=service.status,
        expires_at=service.expires_at,
        period_months=service.period_months,
        price=Money(amount=service.price_amount, currency=service.price_currency),
        auto_renew=service.auto_renew,
        payment_method=(
            PaymentMethodSummary(
                id=method.id,
                type=method.type,
                status=method.status,
                display=method.display,
                valid_until=method.valid_until,
            )
            if method
            else None
        ),
        next_charge=next_charge,
        renewal_readiness=readiness,
        created_at=service.created_at,
        updated_at=service.updated_at,
        cancelled_at=service.cancelled_at,
    )


async def many(
    session: AsyncSession, services: Sequence[Service], *, settings: Settings
) -> list[ServiceOut]:
    ids = {s.payment_method_id for s in services if s.payment_method_id is not None}
    methods = await load_methods(session, ids)
    return [
        _out(s, methods.get(s.payment_method_id) if s.payment_method_id else None, settings)
        for s in services
    ]


async def one(session: AsyncSession, service: Service, *, settings: Settings) -> ServiceOut:
    return (await many(session, [service], settings=settings))[0]
