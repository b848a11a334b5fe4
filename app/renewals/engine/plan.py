"""Plan: services whose charge date has come get the renewal of their next period.

The first stage of a sweep. Insert-if-absent on (service, period_start): planning may run
on several replicas at once and repeat itself, and the unique key decides who wins. One
period at a time: a service's next renewal is planned once its current one has moved the
expiry on. Pages walk the partial index ix_services_renewal_due in (expiry, id) order.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.database import transaction
from app.core.ids import new_id
from app.core.settings import Settings
from app.payment_methods.models import PaymentMethod
from app.renewals import repository
from app.services.lead_time import charge_date_reached, longest_lead_days, next_charge_at
from app.services.models import Service
from app.services.periods import add_months

PLANNING_PAGE = 500


async def plan(
    sessionmaker: async_sessionmaker[AsyncSession], now: datetime, settings: Settings
) -> int:
    """Create the next period's renewal for every service whose charge date has come;
    returns how many were created."""
    horizon = now + timedelta(days=longest_lead_days(settings))
    due = charge_date_reached(
        settings,
        now,
        expires_at=Service.expires_at,
        kind=Service.kind,
        method_type=PaymentMethod.type,
    )
    planned, after = 0, None
    while True:
        async with transaction(sessionmaker) as session:
            candidates = await repository.planning_candidates(
                session,
                due=due,
                horizon=horizon,
                lapsed_before=now - timedelta(days=settings.renewal_grace_days),
                limit=PLANNING_PAGE,
                after=after,
            )
            rows = [
                new_renewal(service, method_type, now, settings)
                for service, method_type in candidates
            ]
            planned += await repository.insert_if_absent(session, rows)
        if len(candidates) < PLANNING_PAGE:
            return planned
        last = candidates[-1][0]
        after = (last.expires_at, last.id)


def new_renewal(
    service: Service, method_type: str | None, now: datetime, settings: Settings
) -> dict[str, object]:
    """The row of the renewal for the period that starts at the service's expiry."""
    due_at = next_charge_at(
        settings, expires_at=service.expires_at, kind=service.kind, method_type=method_type
    )
    return {
        "id": new_id("ren"),
        "service_id": service.id,
        "customer_id": service.customer_id,
        "period_start": service.expires_at,
        "period_end": add_months(
            service.expires_at, service.period_months, anchor_day=service.expiry_anchor_day
        ),
        "amount": service.price_amount,
        "currency": service.price_currency,
        "payment_method_id": service.payment_method_id,
        "status": "scheduled",
        "due_at": due_at,
        # Charged now, not at due_at: a service planned late (downtime) is already due.
        "next_attempt_at": now,
        "attempt_count": 0,
        "failed_charge_count": 0,
        "created_at": now,
        "updated_at": now,
    }
