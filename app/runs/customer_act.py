"""A renewal started by the customer's own act.

Choosing a payment method for a service, or turning its automatic renewal on, once the
service's notice time has passed (days before expiry) starts its renewal at once: the act,
answered with the charge date and amount, is the notice, and `renewal.upcoming` goes out at
that moment. A card keeps its usual charge date (the next sweep, if that date has passed);
a SEPA debit is collected on the first day SEPA's pre-notification allows, and when none is
left before expiry the renewal fails at once, so the answer already says so. A renewal of
the period that was canceled (auto-renew was off, no method) comes back, and so does one
that failed, once the customer has chosen another method for it. A SEPA collection not yet
in a file is taken back when the customer chooses another method.

Before the notice time nothing happens here: the sweep announces the renewal on time. The
routes call this after the rule that changed the service (app/services/service.py), in the
same transaction; it lives above renewals and SEPA, as the runs do.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.renewals import repository
from app.renewals.engine import plan
from app.renewals.models import Renewal
from app.sepa.collections import CycleSummary, cancel_collection, prenotify
from app.sepa.repository import open_collection_of
from app.services.lead_time import SEPA, notice_at
from app.services.methods import load_methods
from app.services.models import Service


def _restarts(renewal: Renewal | None, service: Service) -> bool:
    if renewal is None or renewal.status == "canceled":
        return True
    return renewal.status == "failed" and renewal.payment_method_id != service.payment_method_id


async def after_customer_act(
    session: AsyncSession, services: Sequence[Service], *, settings: Settings, now: datetime
) -> None:
    """Start the renewal of each of `services` whose notice time has passed."""
    methods = await load_methods(session, {s.payment_method_id or "" for s in services})
    for service in services:
        await _take_back_collection(session, service, now)
        method = methods.get(service.payment_method_id or "")
        if not plan.renews(service) or method is None or method.status != "validated":
            continue
        if now >= service.expires_at + timedelta(days=settings.renewal_grace_days):
            continue
        announce_at = notice_at(
            settings, expires_at=service.expires_at, kind=service.kind, method_type=method.type
        )
        if announce_at >= now:
            continue  # the sweep announces it on time
        renewal = await repository.current_of(session, service, for_update=True)
        if _restarts(renewal, service):
            renewal = await plan.start_by_customer(
                session, service, method.type, renewal, now, settings
            )
        if renewal is None or renewal.status != "scheduled" or method.type != SEPA:
            continue
        if await open_collection_of(session, renewal.id) is None:
            # A SEPA renewal without a collection (new, or planned for a card before the
            # switch): fix and pre-notify it now, so the answer tells its date.
            renewal.next_attempt_at = now
            await prenotify(
                session, renewal, service, settings, now, CycleSummary(), customer_act=True
            )


async def _take_back_collection(session: AsyncSession, service: Service, now: datetime) -> None:
    """A collection pre-notified under the mandate the customer just replaced, and not yet in
    a file for the bank, is taken back now: the renewal is open to the new method (a card
    charges it at the next sweep, or the customer pays now) instead of waiting for the day
    of the file. One already in a file is on its way; its answer decides."""
    renewal = await repository.current_of(session, service, for_update=True)
    if renewal is None:
        return
    collection = await open_collection_of(session, renewal.id)
    if (
        collection is not None
        and collection.status == "pending"
        and collection.payment_method_id != service.payment_method_id
    ):
        await cancel_collection(session, collection, "payment_method_changed", now)
