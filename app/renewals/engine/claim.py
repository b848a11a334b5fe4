"""Claim: due renewals are locked in a small batch, each gets its charge job; then commit.

Runs after plan, before charge. Renewals whose lease ran out come first (an answer is owed
for them, see reconcile.py), then scheduled ones by due time (SKIP LOCKED on PostgreSQL, so
replicas claim disjoint batches). A new attempt is written `processing` with a deterministic
idempotency key and a lease, and the transaction commits *before* any money moves: a crash
after the commit leaves an attempt on record that reconcile can settle by its key.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.bulk import insert_rows, write_rows
from app.core.database import transaction
from app.core.settings import Settings
from app.events.service import NewEvent, record_all
from app.payment_methods.models import PaymentMethod
from app.renewals import repository, rows
from app.renewals.engine import fall_back, reconcile
from app.renewals.engine.job import ChargeJob, chargeable, prepare_attempt
from app.renewals.engine.outcomes import finish, reschedule, soft_failure
from app.renewals.engine.summary import SweepSummary
from app.renewals.models import RenewalAttempt
from app.renewals.notify import Before, transition_events, upcoming_event
from app.renewals.state import RenewalState
from app.services.lead_time import card_charge
from app.services.methods import facts
from app.services.state import ServiceState


async def claim_batch(
    sessionmaker: async_sessionmaker[AsyncSession],
    now: datetime,
    *,
    worker: str,
    settings: Settings,
) -> tuple[list[ChargeJob], SweepSummary]:
    """The jobs of one claimed batch (empty: nothing is due), with the claim's tally, which
    the caller merges: the transaction has committed when this returns."""
    jobs: list[ChargeJob] = []
    tally = SweepSummary()
    async with transaction(sessionmaker) as session:
        renewals = await rows.claim_due(session, now=now, limit=settings.renewal_batch_size)
        if not renewals:
            return [], tally
        services = await rows.services_by_id(session, [r.service_id for r in renewals])
        method_ids = [s.payment_method_id for s in services.values() if s.payment_method_id]
        methods = await repository.methods_by_id(session, method_ids)
        events: list[NewEvent] = []
        attempts: list[dict[str, Any]] = []  # the new attempts' rows, inserted together
        for renewal in renewals:
            tally.claimed += 1
            service = services[renewal.service_id]
            if renewal.status == "processing":
                job = await reconcile.reclaim(
                    session, renewal, service, now, worker=worker, settings=settings
                )
            else:
                before = Before.of(renewal, service)
                method = methods.get(service.payment_method_id or "")
                notice = price_notice(renewal, service, method, now, settings)
                if notice is not None:
                    events.append(notice)
                    continue
                if stop_reason(renewal, service, method, now, settings) is None:
                    method = await fall_back.replace_unusable(
                        session, renewal, service, method, now, tally, settings
                    )
                job = start_attempt(
                    attempts, renewal, service, method, now, tally, worker=worker, settings=settings
                )
                await fall_back.or_fail(session, renewal, service, before, now, tally, settings)
                events += transition_events(renewal, service, before)
            if job is not None:
                jobs.append(job)
        # Rows in a few statements, then the events in one (app/core/bulk.py).
        await insert_rows(session, cast(Table, RenewalAttempt.__table__), attempts)
        await write_rows(session, [*renewals, *services.values()])
        await record_all(session, events, now=now)
    return jobs, tally


def stop_reason(
    renewal: RenewalState,
    service: ServiceState,
    method: PaymentMethod | None,
    now: datetime,
    settings: Settings,
) -> str | None:
    """Why this renewal must not be charged any more, if something changed mid-flight."""
    if service.status != "active":
        return "service_cancelled"
    if not service.auto_renew:
        return "auto_renew_off"
    if service.expires_at != renewal.period_start:
        return "service_already_renewed"
    if now >= service.expires_at + timedelta(days=settings.renewal_grace_days):
        # Found past its grace (the scheduler was down): charging now would bill for a
        # service that has already lapsed.
        return "service_lapsed"
    if method is None:
        return "no_payment_method"
    if method.status == "revoked":
        return "payment_method_revoked"
    return None


def price_notice(
    renewal: RenewalState,
    service: ServiceState,
    method: PaymentMethod | None,
    now: datetime,
    settings: Settings,
) -> NewEvent | None:
    """The customer was told another amount (provisioning changed the price since the
    notice): the new amount gets a notice of its own, and the charge waits for it, by the
    same rule as a late notice. None when the renewal may be charged as announced."""
    if renewal.notified_at is None or not settings.renewal_notice_days or method is None:
        return None
    if (renewal.amount, renewal.currency) == (service.price_amount, service.price_currency):
        return None
    if stop_reason(renewal, service, method, now, settings) is not None:
        return None  # it will not be charged at all: start_attempt says why
    renewal.amount, renewal.currency = service.price_amount, service.price_currency
    charge = card_charge(settings, expires_at=service.expires_at, kind=service.kind, now=now)
    renewal.due_at, renewal.notified_at = charge.at, now
    reschedule(renewal, charge.at, now)
    return upcoming_event(
        renewal,
        service,
        facts(method),
        notice=charge.notice,
        charge_at=charge.at,
        settings=settings,
    )


def start_attempt(
    attempts: list[dict[str, Any]],
    renewal: RenewalState,
    service: ServiceState,
    method: PaymentMethod | None,
    now: datetime,
    tally: SweepSummary,
    *,
    worker: str,
    settings: Settings,
) -> ChargeJob | None:
    """A new `processing` attempt (its row appended to `attempts`, for the caller to insert
    before it commits) and its job; None when the renewal is not to be charged."""
    reason = stop_reason(renewal, service, method, now, settings)
    if reason is not None:
        finish(renewal, "canceled", now, code=reason)
        tally.count("canceled")
        return None
    assert method is not None
    if not chargeable(method):
        # Expired card, failed verification…: the customer can still fix it, so this
        # waits like a soft decline instead of failing at once.
        soft_failure(renewal, service, now, tally, settings, code="payment_method_unusable")
        return None
    # Price changes apply to renewals not charged yet: charge the service's price now.
    renewal.amount, renewal.currency = service.price_amount, service.price_currency
    job, row = prepare_attempt(
        renewal, method, now, worker=worker, lease_seconds=settings.renewal_lease_seconds
    )
    attempts.append(row)
    return job
