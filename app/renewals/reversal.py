"""Paid renewals taken back: the one rule for a card refund and a SEPA return or refund.

    reverse_extension   the period a paid renewal granted is taken off the service again
                        (`service.renewal_reversed`), if the expiry is still the one that
                        renewal granted
    refund              the money went back (a refunded card charge, a SEPA MD06 refund):
                        the extension is reversed and the renewal ends `refunded`
                        (`renewal.refunded`)

Callers lock the renewal and its service first. Nothing here talks to a gateway or a bank:
the money has already moved when these run.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.events.service import emit
from app.renewals.engine.outcomes import finish
from app.renewals.models import Renewal
from app.renewals.notify import renewal_data
from app.services import schedule
from app.services.models import Service
from app.services.registry import announce_reversal

log = logging.getLogger("autorenew.renewals")


async def reverse_extension(
    session: AsyncSession, renewal: Renewal, service: Service, *, reason: str, now: datetime
) -> None:
    """Undo the extension of a `succeeded` renewal. An expiry moved since (provisioning, a
    later renewal) is left alone and logged: undoing the period would undo that change."""
    if renewal.status != "succeeded":
        return
    if service.expires_at != renewal.period_end:
        log.warning(
            "renewal taken back, but the service expiry moved since; not reversed",
            extra={"renewal_id": renewal.id, "service_id": service.id, "reason": reason},
        )
        return
    service.expires_at, service.updated_at = renewal.period_start, now
    schedule.expiry_changed(service, now)
    await announce_reversal(
        session,
        service,
        renewal_id=renewal.id,
        reason=reason,
        expires_at=renewal.period_start,
        reversed_expires_at=renewal.period_end,
        now=now,
    )


async def refund(
    session: AsyncSession,
    renewal: Renewal,
    service: Service,
    *,
    reason: str,
    code: str,
    now: datetime,
) -> None:
    """The renewal's money went back to the customer. `reason` goes with the reversal
    (`card_refund`, `sepa_return:MD06`); `code` is the renewal's stable failure code."""
    await reverse_extension(session, renewal, service, reason=reason, now=now)
    finish(renewal, "refunded", now, code=code)
    await emit(
        session,
        type="renewal.refunded",
        resource_id=renewal.id,
        customer_id=renewal.customer_id,
        data=renewal_data(renewal),
        now=now,
    )
