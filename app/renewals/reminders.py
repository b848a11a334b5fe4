"""Expiry reminders (`service.expiring`), at offsets per kind of service.

Registrars owe domain holders a reminder about a month and a week before expiry and one
shortly after (ICANN's Expired Registration Recovery Policy); the offsets are settings
(`expiry_notice_days_by_kind`, days before expiry, negative after). Each offset is sent
once per period: `expiry_reminded_days` holds the last one sent for the current expiry,
which a new expiry clears (app/services/schedule.py). When several are due at once (a
domain registered a week before expiry) only the latest goes out. A service whose renewal
succeeded has a new expiry, so it gets no reminder of the old one. Each reminder says
whether a renewal is scheduled (when, how much) or why not, by the same rules as the
service's readiness.

Part of every renewal run (app/runs): reads only services whose next reminder is due,
along ix_services_expiry_reminder.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.database import transaction
from app.core.settings import Settings
from app.events.payloads import EventMoney, ServiceExpiringData
from app.events.service import NewEvent, emit_all
from app.renewals import repository
from app.renewals.picture import picture
from app.services import repository as services
from app.services import schedule
from app.services.methods import load_methods
from app.services.models import Service

PAGE = 500


def reminder_step(
    expires_at: datetime, offsets: Sequence[int], reminded_days: int | None, now: datetime
) -> tuple[int | None, datetime | None]:
    """(the offset to send now, if any; when to look again, if ever). `offsets` run from the
    earliest reminder to the latest; those at or after `reminded_days` were sent already."""
    unsent = [d for d in offsets if reminded_days is None or d < reminded_days]
    due = [d for d in unsent if expires_at - timedelta(days=d) <= now]
    ahead = [d for d in unsent if expires_at - timedelta(days=d) > now]
    send = min(due) if due else None
    return send, (expires_at - timedelta(days=max(ahead)) if ahead else None)


async def send_expiry_reminders(
    sessionmaker: async_sessionmaker[AsyncSession], now: datetime, settings: Settings
) -> int:
    """Send the reminders that are due; returns how many were sent."""
    sent = 0
    async with transaction(sessionmaker) as session:
        await schedule.follow_settings(session, settings, now)
    while True:
        async with transaction(sessionmaker) as session:
            page = await services.due_for_reminder(session, now=now, limit=PAGE)
            due: list[tuple[Service, int]] = []
            for service in page:
                offsets = settings.expiry_notice_days_by_kind.get(service.kind, [])
                if service.status != "active" or not offsets:
                    service.expiry_reminder_at = None
                    continue
                send, service.expiry_reminder_at = reminder_step(
                    service.expires_at, offsets, service.expiry_reminded_days, now
                )
                if send is not None:
                    service.expiry_reminded_days = send
                    due.append((service, send))
            sent += await _remind(session, due, now, settings)
        if len(page) < PAGE:
            return sent


async def _remind(
    session: AsyncSession, due: list[tuple[Service, int]], now: datetime, settings: Settings
) -> int:
    if not due:
        return 0
    methods = await load_methods(session, {s.payment_method_id or "" for s, _ in due})
    current = await repository.current_for(session, [service for service, _ in due])
    events = []
    for service, offset in due:
        method = methods.get(service.payment_method_id or "")
        seen = picture(service, method, current.get(service.id), settings, now)
        scheduled = seen.next_charge is not None and seen.readiness in ("ok", "retrying")
        when = (
            f"It renews automatically on {seen.next_charge.at.date()}."
            if scheduled and seen.next_charge
            else f"It will not renew by itself: {seen.message}"
        )
        verb = "expired" if service.expires_at <= now else "expires"
        events.append(
            NewEvent(
                type="service.expiring",
                resource_id=service.id,
                customer_id=service.customer_id,
                resource_type="service",
                data=ServiceExpiringData(
                    service_id=service.id,
                    customer_id=service.customer_id,
                    kind=service.kind,
                    name=service.name,
                    expires_at=service.expires_at,
                    days_before_expiry=offset,
                    renewal_scheduled=scheduled,
                    renewal_at=seen.next_charge.at if scheduled and seen.next_charge else None,
                    amount=EventMoney(amount=service.price_amount, currency=service.price_currency),
                    renewal_readiness=seen.readiness,
                    message=f"Your {service.kind} {service.name} {verb} on "
                    f"{service.expires_at.date()}. {when}",
                ),
            )
        )
    await emit_all(session, events, now=now)
    return len(events)
