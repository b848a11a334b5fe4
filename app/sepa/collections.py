"""The SEPA side of a renewal: fix the collection and pre-notify it; settle or release it.

The renewal engine plans a renewal for every due service but charges cards only; a SEPA
renewal stays `scheduled` until `run_cycle` (a scheduled job, and the end of every sweep)
gives it a collection:

    prenotify  the collection date is the earliest TARGET2 business day that respects the
               notice (the consumer notice, at least SEPA's pre-notification period) and the
               bank's submission lead, before the service expires; when that no longer fits,
               the last day that does with SEPA's own period (a short notice, and it says
               so). A new collection of a renewal already announced (a retry, before expiry
               + grace like card dunning) and one the customer's own act started need only
               SEPA's period (app/services/lead_time.py). The amount is the service's price
               now, and it is what the file will collect. `renewal.upcoming` carries amount,
               date, mandate reference and creditor identifier: the renewal's one notice and
               the collection's pre-notification. The renewal's `next_attempt_at` is cleared
               while the collection is open, so nothing collects it twice (nor charges it by
               card if the customer switches methods meanwhile).
    release    a pending collection whose submission deadline passed without a batch is
               canceled and its renewal scheduled again (a new date needs a new notice).
    settle     a submitted collection without a return `sepa_settlement_business_days`
               after its date is settled; a batch whose collections all are, too.

A mandate unused for 36 months has lapsed: its method is marked `failed`
(`failure_code=mandate_lapsed`, event `payment_method.failed`) and the renewal waits for the
customer to accept a new mandate or pick another method.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from weakref import WeakKeyDictionary

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import Clock
from app.core.database import transaction
from app.core.ids import new_id
from app.core.scheduler import JobContext
from app.core.settings import Settings
from app.core.target2 import add_business_days, submission_deadline
from app.events.payloads import SepaCollectionDetails
from app.events.service import emit_all
from app.payment_methods import events as method_events
from app.payment_methods.models import Mandate, PaymentMethod
from app.renewals import metrics
from app.renewals.models import Renewal, RenewalAttempt
from app.renewals.notify import Before, emit_transition, upcoming_event
from app.renewals.reasons import describe
from app.sepa import repository
from app.sepa.models import SepaCollection
from app.sepa.sequence import SequenceType, is_mandate_lapsed, sequence_type
from app.services.lead_time import NoticeKind, midnight, sepa_collection
from app.services.methods import SEPA_CURRENCIES, facts
from app.services.models import Service

log = logging.getLogger("autorenew.sepa")

PAGE = 200
# SQLite takes no row locks: two passes in one process would plan the same collection.
_cycle_locks: WeakKeyDictionary[async_sessionmaker[AsyncSession], asyncio.Lock] = (
    WeakKeyDictionary()
)


@dataclass
class CycleSummary:
    prenotified: int = 0
    waiting: int = 0  # the method cannot be used yet; looked at again later
    failed: int = 0
    canceled: int = 0
    released: int = 0
    settled: int = 0


async def run_cycle(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, settings: Settings
) -> CycleSummary:
    """One pass: pre-notify due SEPA renewals, release missed collections, settle.

    Passes of one process (the job and the end of a sweep) take turns; replicas sharing a
    PostgreSQL database skip each other's locked rows instead.
    """
    lock = _cycle_locks.setdefault(sessionmaker, asyncio.Lock())
    async with lock:
        return await _run_cycle(sessionmaker, clock, settings)


async def _run_cycle(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, settings: Settings
) -> CycleSummary:
    summary = CycleSummary()
    await _release_missed(sessionmaker, clock, summary)
    while True:
        async with transaction(sessionmaker) as session:
            now = clock.now()
            due = await repository.renewals_to_prenotify(session, now=now, limit=PAGE)
            for renewal, service in due:
                await prenotify(session, renewal, service, settings, now, summary)
        if len(due) < PAGE:
            break
    await _settle(sessionmaker, clock, settings, summary)
    if any(vars(summary).values()):
        log.info("sepa cycle", extra=vars(summary))
    for outcome in ("failed", "canceled"):
        if counted := getattr(summary, outcome):
            metrics.RENEWAL_OUTCOMES.labels(outcome).inc(counted)
    return summary


async def sepa_collections_job(context: JobContext) -> CycleSummary:
    return await run_cycle(context.sessionmaker, context.clock, context.settings)


def _stop_reason(service: Service, renewal: Renewal, method: PaymentMethod | None) -> str | None:
    if service.status != "active":
        return "service_cancelled"
    if not service.auto_renew:
        return "auto_renew_off"
    if service.expires_at != renewal.period_start:
        return "service_already_renewed"
    if method is None or method.status == "revoked":
        return "payment_method_revoked"
    return None


def _usable_mandate(method: PaymentMethod) -> Mandate | None:
    mandate = method.mandate
    if method.status != "validated" or mandate is None or mandate.status != "active":
        return None
    return mandate if mandate.signed_at is not None else None


def finish_renewal(renewal: Renewal, status: str, now: datetime, code: str | None = None) -> None:
    renewal.status = status
    renewal.failure_code = code
    renewal.failure_reason = describe(code) if code else None
    renewal.next_attempt_at = None
    renewal.updated_at = now
    renewal.finished_at = now


async def prenotify(
    session: AsyncSession,
    renewal: Renewal,
    service: Service,
    settings: Settings,
    now: datetime,
    summary: CycleSummary,
    *,
    customer_act: bool = False,
) -> SepaCollection | None:
    """Give `renewal` its next collection and announce it, or say why it cannot have one.
    `customer_act`: the customer's own act (choosing the method, turning auto-renew on)
    started the renewal and is its notice; SEPA's pre-notification still applies."""
    before = Before.of(renewal, service)
    method = await repository.method_with_mandate(session, service.payment_method_id or "")
    stop = _stop_reason(service, renewal, method)
    if stop is None and service.price_currency not in SEPA_CURRENCIES:
        stop = "currency_not_supported_by_method"
    if stop is not None:
        finish_renewal(renewal, "canceled", now, stop)
        summary.canceled += 1
        await emit_transition(session, renewal, service, before, now)
        return None
    assert method is not None
    # A retry may run into the grace period, as card dunning does; a first attempt may not.
    grace = timedelta(days=settings.renewal_grace_days if renewal.failed_charge_count else 0)
    intended: NoticeKind = (
        "customer_act" if customer_act else "retry" if renewal.attempt_count else "full"
    )
    fixed = sepa_collection(
        settings,
        expires_at=service.expires_at + grace,
        kind=service.kind,
        today=now.date(),
        notice=intended,
    )
    if fixed is None:
        finish_renewal(renewal, "failed", now, "no_collection_date")
        summary.failed += 1
        await emit_transition(session, renewal, service, before, now)
        return None
    day, notice = fixed
    mandate = _usable_mandate(method)
    if mandate is None:
        # The customer can still fix it (or pick another method): look again tomorrow.
        _wait(renewal, now, "payment_method_unusable")
        summary.waiting += 1
        return None
    assert mandate.signed_at is not None
    last = await repository.last_presented_on(session, mandate.reference)
    # An imported mandate's earlier collections were presented by the previous panel.
    earlier = mandate.last_collected_before_import_on
    if earlier is not None and (last is None or earlier > last):
        last = earlier
    if is_mandate_lapsed(mandate.signed_at.date(), last, day):
        method.status, method.failure_code, method.updated_at = "failed", "mandate_lapsed", now
        await method_events.announce(session, "failed", method, now)
        _wait(renewal, now, "mandate_lapsed")
        summary.waiting += 1
        return None

    collection = _new_collection(renewal, service, method, mandate, settings, day, now)
    session.add(collection)
    session.add(_attempt_for(collection, renewal))
    await session.flush()
    summary.prenotified += 1
    renewal.notified_at = now
    details = SepaCollectionDetails(
        collection_date=collection.collection_date,
        mandate_reference=collection.mandate_reference,
        creditor_identifier=collection.creditor_id,
        sequence_type="RCUR" if collection.sequence_type == "RCUR" else "FRST",
        end_to_end_id=collection.end_to_end_id,
    )
    notice_event = upcoming_event(
        renewal,
        service,
        facts(method),
        notice=notice,
        charge_at=midnight(day),
        settings=settings,
        sepa_debit=details,
    )
    await emit_all(session, [notice_event], now=now)
    return collection


def _wait(renewal: Renewal, now: datetime, code: str) -> None:
    renewal.failure_code = code
    renewal.next_attempt_at = now + timedelta(days=1)
    renewal.updated_at = now


def _new_collection(
    renewal: Renewal,
    service: Service,
    method: PaymentMethod,
    mandate: Mandate,
    settings: Settings,
    day: date,
    now: datetime,
) -> SepaCollection:
    # Price changes reach renewals not collected yet; what is pre-notified is collected.
    renewal.amount, renewal.currency = service.price_amount, service.price_currency
    renewal.payment_method_id = method.id
    renewal.attempt_count += 1
    renewal.next_attempt_at = None
    renewal.due_at = midnight(day)
    renewal.updated_at = now
    used = mandate.sequence_type == SequenceType.RECURRING.value
    sequence = sequence_type(mandate_used=used, first_as_recurring=settings.sepa_first_as_recurring)
    return SepaCollection(
        id=new_id("col"),
        renewal_id=renewal.id,
        attempt_number=renewal.attempt_count,
        service_id=service.id,
        customer_id=renewal.customer_id,
        payment_method_id=method.id,
        mandate_reference=mandate.reference,
        creditor_id=mandate.creditor_id,
        sequence_type=sequence.value,
        amount=renewal.amount,
        currency=renewal.currency,
        collection_date=day,
        submission_deadline=submission_deadline(day, settings.sepa_submission_lead_business_days),
        # Renewal ids carry `_`, which the SEPA character set lacks: `-` instead, and the
        # attempt number, so every collection has its own reference and maps back.
        end_to_end_id=f"{renewal.id.replace('_', '-')}-{renewal.attempt_count}",
        status="pending",
        batch_id=None,
        prenotified_at=now,
        created_at=now,
        updated_at=now,
    )


def _attempt_for(collection: SepaCollection, renewal: Renewal) -> RenewalAttempt:
    # The renewal's history shows each collection as an attempt, like a card charge.
    return RenewalAttempt(
        id=new_id("att"),
        renewal_id=renewal.id,
        number=collection.attempt_number,
        idempotency_key=repository.attempt_key(collection),
        payment_method_id=collection.payment_method_id,
        amount=collection.amount,
        currency=collection.currency,
        status="processing",
        gateway_charge_id=collection.end_to_end_id,
        started_at=collection.created_at,
    )


async def close_attempt(
    session: AsyncSession,
    collection: SepaCollection,
    status: str,
    now: datetime,
    code: str | None = None,
    reason_code: str | None = None,
) -> None:
    attempt = await repository.attempt_of(session, collection)
    if attempt is not None:
        attempt.status, attempt.failure_code, attempt.finished_at = status, code, now
        attempt.decline_code = reason_code  # the bank's ISO reason code, as given


async def cancel_collection(
    session: AsyncSession, collection: SepaCollection, reason: str, now: datetime
) -> None:
    """Take back a collection that never went out; its renewal is looked at again now."""
    collection.status, collection.cancel_reason, collection.updated_at = "canceled", reason, now
    await close_attempt(session, collection, "not_sent", now, reason)
    renewal, _service = await repository.lock_renewal_and_service(session, collection.renewal_id)
    if renewal.status == "scheduled":
        renewal.next_attempt_at = now
        renewal.updated_at = now


async def _release_missed(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, summary: CycleSummary
) -> None:
    async with transaction(sessionmaker) as session:
        now = clock.now()
        for collection in await repository.missed(session, today=now.date(), limit=PAGE):
            log.warning(
                "sepa collection missed its submission deadline",
                extra={"collection_id": collection.id, "renewal_id": collection.renewal_id},
            )
            await cancel_collection(session, collection, "submission_deadline_missed", now)
            summary.released += 1


async def _settle(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: Clock,
    settings: Settings,
    summary: CycleSummary,
) -> None:
    async with transaction(sessionmaker) as session:
        now = clock.now()
        collected_by = add_business_days(now.date(), -settings.sepa_settlement_business_days)
        settled = await repository.submitted_collected_by(
            session, collected_by=collected_by, limit=PAGE * 5
        )
        for collection in settled:
            collection.status, collection.settled_at, collection.updated_at = "settled", now, now
        summary.settled += len(settled)
        await session.flush()
        for batch in await repository.batches_to_settle(session, collected_by=collected_by):
            batch.status, batch.settled_at = "settled", now
