"""Warn before a card stops a renewal: a card that will have expired by its service's next
charge date is announced once per expiry date (`payment_method.expiring`), early enough for
the customer to add another card. A card the card updater moved to a new date is warned
about again when that one comes near. Readiness says the same to the customer area on every
read."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.database import transaction
from app.core.scheduler import JobContext
from app.core.settings import Settings
from app.events.models import Event
from app.payment_methods import events
from app.payment_methods.models import PaymentMethod
from app.services.lead_time import longest_lead_days, next_charge_at
from app.services.methods import facts
from app.services.models import Service

# How far ahead to look: two months of charge dates is time enough to get a new card.
HORIZON = timedelta(days=60)


async def _already_announced(session: AsyncSession, method: PaymentMethod) -> bool:
    """Whether the card's present expiry date was announced (the event's data has it)."""
    query = select(Event.data).where(
        Event.type == "payment_method.expiring", Event.resource_id == method.id
    )
    expiry = {"exp_month": method.card_exp_month, "exp_year": method.card_exp_year}
    for data in (await session.execute(query)).scalars():
        card = data.get("card") or {}
        if {key: card.get(key) for key in expiry} == expiry:
            return True
    return False


async def announce_expiring_cards(
    session: AsyncSession, *, now: datetime, settings: Settings
) -> int:
    """Announce each validated card that expires before the next charge of a service it
    renews, once per card. Returns how many were announced."""
    longest_lead = longest_lead_days(settings, sepa=False)
    rows = await session.execute(
        select(Service, PaymentMethod)
        .join(PaymentMethod, PaymentMethod.id == Service.payment_method_id)
        .where(
            Service.status == "active",
            Service.auto_renew.is_(True),
            Service.expires_at <= now + HORIZON + timedelta(days=longest_lead),
            PaymentMethod.type == "card",
            PaymentMethod.status == "validated",
        )
        .order_by(PaymentMethod.id)
    )
    announced: set[str] = set()
    for service, method in rows.all():
        if method.id in announced:
            continue
        valid_until = facts(method).valid_until
        charge_at = next_charge_at(
            settings, expires_at=service.expires_at, kind=service.kind, method_type="card"
        )
        if valid_until is None or valid_until > charge_at:
            continue
        if await _already_announced(session, method):
            continue
        await events.announce(session, "expiring", method, now)
        announced.add(method.id)
    return len(announced)


async def announce_expiring_cards_job(context: JobContext) -> int:
    """The periodic job (app/jobs.py): its own transaction."""
    async with transaction(context.sessionmaker) as session:
        return await announce_expiring_cards(
            session, now=context.clock.now(), settings=context.settings
        )
