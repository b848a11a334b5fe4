"""What will be charged in the next days, per day and currency: for finance, and for the
operator who wants to know tomorrow's load before it happens."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.payment_methods.models import PaymentMethod
from app.renewals.models import Renewal
from app.renewals.schemas import ForecastDay
from app.services.lead_time import longest_lead_days, next_charge_at
from app.services.models import Service


async def forecast(
    session: AsyncSession, *, now: datetime, days: int, settings: Settings
) -> list[ForecastDay]:
    """Open renewals by their next attempt, plus services that will come due in the window
    (by the same lead-time rule the planner uses). A service already planned counts once."""
    until = now + timedelta(days=days)
    totals: dict[tuple[date, str], list[int]] = defaultdict(lambda: [0, 0])

    def add(moment: datetime, currency: str, amount: int) -> None:
        bucket = totals[(max(moment, now).date(), currency)]
        bucket[0] += 1
        bucket[1] += amount

    open_renewals = await session.execute(
        select(Renewal.service_id, Renewal.next_attempt_at, Renewal.amount, Renewal.currency).where(
            Renewal.status == "scheduled", Renewal.next_attempt_at < until
        )
    )
    planned = set()
    for service_id, at, amount, currency in open_renewals.all():
        planned.add(service_id)
        add(at, currency, amount)

    upcoming = await session.execute(
        select(Service, PaymentMethod.type)
        .join(PaymentMethod, PaymentMethod.id == Service.payment_method_id)
        .where(
            Service.status == "active",
            Service.auto_renew.is_(True),
            Service.expires_at < until + timedelta(days=longest_lead_days(settings)),
        )
    )
    for service, method_type in upcoming.all():
        if service.id in planned:
            continue
        at = next_charge_at(
            settings, expires_at=service.expires_at, kind=service.kind, method_type=method_type
        )
        if at < until:
            add(at, service.price_currency, service.price_amount)

    return [
        ForecastDay(date=day, currency=currency, renewals=count, amount=amount)
        for (day, currency), (count, amount) in sorted(totals.items())
    ]
