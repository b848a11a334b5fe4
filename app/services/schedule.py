"""When the renewal jobs must look at each service again.

Three jobs walk the services, each along an index of its own and only as far as now:

    planning   `renewal_notice_at`: the next renewal is planned and announced then
               (app/renewals/engine/plan.py); null once it is, or while the service does
               not renew
    reminders  `expiry_reminder_at`: the next expiry reminder (app/renewals/reminders.py);
               `expiry_reminded_days` is the offset of the last one sent this period
    lapse      `lapsed_at`: when `service.lapsed` went out for the current expiry
               (app/renewals/lapse.py reads services past expiry + grace without one)

The exact times depend on the settings (leads, notice, reminder offsets) and on the
payment method's type, so the places that change a service do not work them out: they mark
the service to be looked at now, and the job stores the exact time when it gets there.
When those settings change, `follow_settings` brings every stored time forward to a bound
no service can beat under the new settings, and the jobs work the times out again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.services import repository
from app.services.lead_time import plan_lead_days
from app.services.models import Service
from app.services.state import ServiceState


def renewal_changed(service: Service, now: datetime) -> None:
    """The method, auto-renew, the kind or the status changed: planning looks again."""
    service.renewal_notice_at = now


def kind_or_status_changed(service: Service, now: datetime) -> None:
    """Another lead and other reminders may apply: both jobs look again."""
    service.renewal_notice_at = now
    service.expiry_reminder_at = now


def expiry_changed(service: ServiceState, now: datetime) -> None:
    """A new expiry: a new period to plan, to remind of and, perhaps, to announce as lapsed."""
    service.renewal_notice_at = now
    service.expiry_reminder_at = now
    service.expiry_reminded_days = None
    service.lapsed_at = None


def longest_plan_lead_days(settings: Settings) -> int:
    """The earliest, in days before expiry, that any service is planned."""
    kinds: list[str | None] = [None, *settings.renewal_lead_days_by_kind]
    return max(
        plan_lead_days(settings, kind=kind, method_type=method)
        for kind in kinds
        for method in ("card", "sepa_debit")
    )


def _fingerprint(*values: object) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


async def _bring_plans_forward(session: AsyncSession, settings: Settings, now: datetime) -> None:
    await repository.bring_notice_forward(session, days=longest_plan_lead_days(settings))


async def _bring_reminders_forward(
    session: AsyncSession, settings: Settings, now: datetime
) -> None:
    offsets = [d for days in settings.expiry_notice_days_by_kind.values() for d in days]
    if offsets:
        await repository.bring_reminders_forward(session, days=max(offsets), now=now)


async def follow_settings(session: AsyncSession, settings: Settings, now: datetime) -> None:
    """Bring the stored times forward if the settings they were computed with changed.

    The first run after the migration only records the settings: the migration stored
    times that cannot be late."""
    followed: list[tuple[str, str, Callable[[AsyncSession, Settings, datetime], Awaitable[None]]]]
    followed = [
        (
            "renewal_notice",
            _fingerprint(
                settings.renewal_lead_days,
                settings.renewal_lead_days_sepa,
                settings.renewal_lead_days_by_kind,
                settings.renewal_notice_days,
            ),
            _bring_plans_forward,
        ),
        (
            "expiry_reminders",
            _fingerprint(settings.expiry_notice_days_by_kind),
            _bring_reminders_forward,
        ),
    ]
    for name, fingerprint, bring_forward in followed:
        applied = await repository.applied_settings(session, name, fingerprint, now=now)
        if applied.fingerprint != fingerprint:
            await bring_forward(session, settings, now)
            applied.fingerprint, applied.applied_at = fingerprint, now
