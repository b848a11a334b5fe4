"""Where the optional payment-method fallback (app/renewals/fallback.py) hooks into a sweep.

Off by default (`AUTORENEW_RENEWAL_FALLBACK_ENABLED`). Two moments:
- at claim, before a charge: a method that can no longer pay is replaced at once;
- after claim or settle: a renewal that has just failed for good is charged again, now,
  with the customer's next method; it stays failed only when no method is left.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.rows import PlainRow
from app.core.settings import Settings
from app.payment_methods.models import PaymentMethod
from app.renewals import fallback
from app.renewals.engine.job import chargeable
from app.renewals.engine.outcomes import reschedule
from app.renewals.engine.summary import SweepSummary
from app.renewals.notify import Before
from app.renewals.reasons import and_finally
from app.renewals.state import RenewalState
from app.services.models import Service
from app.services.state import ServiceState


async def replace_unusable(
    session: AsyncSession,
    renewal: RenewalState,
    service: ServiceState,
    method: PaymentMethod | None,
    now: datetime,
    tally: SweepSummary,
    settings: Settings,
) -> PaymentMethod | None:
    """The method to charge: a replacement for an unusable one (expired card, failed
    verification) when the fallback is on and finds one, else the method as it is (an
    unusable method then waits like a soft decline, see claim.start_attempt)."""
    if not settings.renewal_fallback_enabled or method is None or chargeable(method):
        return method
    replacement = await fallback.switch_to_next_method(
        session,
        renewal,
        service.id,
        failed_method_id=method.id,
        failure="payment_method_unusable",
        settings=settings,
        now=now,
    )
    await _follow_the_lock(session, service)
    if replacement is None:
        return method
    tally.count("payment_method_switched")
    return replacement


async def or_fail(
    session: AsyncSession,
    renewal: RenewalState,
    service: ServiceState,
    before: Before,
    now: datetime,
    tally: SweepSummary,
    settings: Settings,
) -> None:
    """A renewal that has just failed is charged again with the next method, if any."""
    if not settings.renewal_fallback_enabled:
        return
    if renewal.status != "failed" or before.status == "failed":
        return
    method = await fallback.switch_to_next_method(
        session,
        renewal,
        service.id,
        # The method of the attempt that failed (set when the attempt was started).
        failed_method_id=renewal.payment_method_id,
        failure=renewal.failure_code or "failed",
        settings=settings,
        now=now,
    )
    await _follow_the_lock(session, service)
    if method is None:
        renewal.failure_reason = and_finally(renewal.failure_reason, "fallback_exhausted")
        tally.count("failed")
        return
    # A new method starts its own dunning; the grace rule in after_soft_failure still
    # bounds it, and the switch itself was only allowed within the grace.
    renewal.failed_charge_count = 0
    renewal.failure_reason, renewal.finished_at = None, None
    reschedule(renewal, now, now)
    tally.count("payment_method_switched")


async def _follow_the_lock(session: AsyncSession, service: ServiceState) -> None:
    """The fallback locked the service and read it again as a mapped instance, and may have
    switched its method: the sweep's plain row of it (app/renewals/rows.py) takes what it
    holds, so the rules that follow judge the service as it is now, not as the claim read
    it before the lock. A mapped instance is that instance already."""
    if isinstance(service, PlainRow):
        locked = await session.get(Service, service.id)  # in the session already: no query
        if locked is not None:
            service.reread(locked)
