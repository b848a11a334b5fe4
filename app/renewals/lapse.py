"""`service.lapsed`: a service that expired and will not be renewed says so, once.

Past its expiry plus `renewal_grace_days`, an active service whose current period was not
paid will not be renewed any more (no method, auto-renew off, the renewal failed, or no
sweep ran in time): provisioning must learn it to suspend the service, and the customer to
get it back. Announced once per expiry (`lapsed_at`; a new expiry clears it), never while a
charge of the period is still at the gateway.

Part of every renewal run (app/runs): reads only active, unannounced services past their
grace, along ix_services_lapse.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.database import transaction
from app.core.settings import Settings
from app.events.payloads import ServiceLapsedData
from app.events.service import NewEvent, emit_all
from app.renewals import repository
from app.renewals.models import Renewal
from app.renewals.reasons import describe
from app.services import repository as services
from app.services.models import Service

PAGE = 500


def lapse_reason(service: Service, renewal: Renewal | None) -> str:
    """Why the service was not renewed, as a stable code."""
    if renewal is not None and renewal.status in ("failed", "refunded", "canceled"):
        code = renewal.failure_code or renewal.status
        return "not_renewed_in_time" if code == "service_lapsed" else code
    if renewal is not None and renewal.status == "requires_action":
        return "authentication_required"
    # In the order readiness says them: choosing a method turns auto-renew on too.
    if service.payment_method_id is None:
        return "no_payment_method"
    if not service.auto_renew:
        return "auto_renew_off"
    return "not_renewed_in_time"


_NOT_IN_TIME = "No renewal could be charged before the grace period ended."


async def announce_lapsed(
    sessionmaker: async_sessionmaker[AsyncSession], now: datetime, settings: Settings
) -> int:
    """Announce every service that lapsed since the last run; returns how many."""
    expired_before = now - timedelta(days=settings.renewal_grace_days)
    announced, after = 0, None
    while True:
        async with transaction(sessionmaker) as session:
            page = await services.past_grace_unannounced(
                session, expired_before=expired_before, after=after, limit=PAGE
            )
            current = await repository.current_for(session, page)
            events = []
            for service in page:
                renewal = current.get(service.id)
                if renewal is not None and renewal.status == "processing":
                    continue  # its answer decides; looked at again next run
                service.lapsed_at = now
                reason = lapse_reason(service, renewal)
                why = _NOT_IN_TIME if reason == "not_renewed_in_time" else describe(reason)
                events.append(
                    NewEvent(
                        type="service.lapsed",
                        resource_id=service.id,
                        customer_id=service.customer_id,
                        resource_type="service",
                        data=ServiceLapsedData(
                            service_id=service.id,
                            customer_id=service.customer_id,
                            kind=service.kind,
                            name=service.name,
                            expired_at=service.expires_at,
                            reason=reason,
                            message=f"Your {service.kind} {service.name} expired on "
                            f"{service.expires_at.date()} and was not renewed. {why}",
                        ),
                    )
                )
            await emit_all(session, events, now=now)
            announced += len(events)
        if len(page) < PAGE:
            return announced
        after = (page[-1].expires_at, page[-1].id)
