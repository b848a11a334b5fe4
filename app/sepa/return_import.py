"""Import the bank's R-transactions and undo what each one undoes.

A file is parsed whole first (`returns.parse_return_file`): a malformed one is refused with
422 naming the line or element, and nothing is written. Then, in the request's transaction:

- the same file (by SHA-256) imported again answers with the first import and changes
  nothing; the same R-transaction (end-to-end id, reason, date) in another file is recorded
  once and applied once;
- each record is matched to its collection by end-to-end id; an unknown id is kept as
  `unmatched` for the operators, a collection no longer in a state a return can change
  (canceled, already returned) as `ignored`;
- a pain.002 rejection of a whole file or block is expanded to its collections.

What a return does (by `return_records.classify`):

    every class   the collection is `returned`; if its renewal had been counted as collected,
                  the service extension is reversed (`service.renewal_reversed`), provided
                  the expiry is still the one the renewal granted
    retry         (AM04, MS03, …) a failed charge for dunning: the renewal is `scheduled`
                  again for the next retry day, where a new collection is pre-notified if a
                  date still fits before expiry (+ grace); else it fails
    method_unusable (AC01, AC04, AC06, MD01, MD07, MS02, …) the renewal fails; the method
                  becomes `failed` with `failure_code=sepa_return_<code>` and its mandate is
                  revoked: the customer must register the account again (accepting a new
                  mandate) or choose another method. `failed` rather than `revoked` keeps
                  the reason visible to the customer, who removes the method themselves.
    refund        (MD06) the renewal is `refunded` (`renewal.refunded`), by the rule a card
                  refund follows too (app/renewals/reversal.py)
    other         the renewal fails with the code; no automatic retry (our side to look at)

A pain.002 reject of a FRST collection means the mandate was never used: unless another
collection under it reached the debtor's bank, the next one is FRST again.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict
from app.core.ids import new_id
from app.core.settings import Settings
from app.payment_methods import events as method_events
from app.payment_methods.models import MandateStatus
from app.renewals import metrics, reversal
from app.renewals.dunning import after_soft_failure
from app.renewals.notify import Before, emit_transition
from app.renewals.reasons import describe
from app.sepa import repository
from app.sepa.collections import close_attempt, finish_renewal
from app.sepa.models import SepaCollection, SepaReturn, SepaReturnFile
from app.sepa.return_records import BatchRejection, ReturnAction, ReturnRecord, classify
from app.sepa.returns import parse_return_file
from app.sepa.sequence import SequenceType

log = logging.getLogger("autorenew.sepa")

# A pain.002 rejection of a whole file may leave out the reason: ISO's "see narrative".
NO_REASON = "NARR"


@dataclass(frozen=True)
class ImportResult:
    file: SepaReturnFile
    returns: list[SepaReturn]
    replayed: bool


async def import_returns(
    session: AsyncSession, data: bytes, *, settings: Settings, now: datetime
) -> ImportResult:
    digest = hashlib.sha256(data).hexdigest()
    existing = await repository.return_file_by_hash(session, digest)
    if existing is not None:
        return ImportResult(existing, await repository.returns_of_file(session, existing.id), True)
    report = parse_return_file(data)
    records = list(report.records)
    for rejection in report.rejections:
        records.extend(await _expand(session, rejection))

    file = SepaReturnFile(
        id=new_id("sret"),
        sha256=digest,
        format=report.format,
        size_bytes=len(data),
        records=len(records),
        applied=0,
        duplicates=0,
        unmatched=0,
        created_at=now,
    )
    session.add(file)
    try:
        await session.flush()
    except IntegrityError as error:
        raise Conflict(
            "This file is being imported by another request.", code="return_file_in_progress"
        ) from error

    ids = [record.end_to_end_id for record in records]
    collections = await repository.collections_by_e2e(session, ids)
    known = await repository.known_returns(session, ids)
    rows: list[SepaReturn] = []
    for record in records:
        key = (record.end_to_end_id, record.reason_code, record.date)
        if key in known:
            file.duplicates += 1
            continue
        known.add(key)
        collection = collections.get(record.end_to_end_id)
        if collection is None:
            outcome = "unmatched"
            file.unmatched += 1
        else:
            outcome = await apply_return(session, collection, record, settings=settings, now=now)
            file.applied += outcome == "applied"
        rows.append(_row(file, collection, record, outcome, now))
    session.add_all(rows)
    await session.flush()
    return ImportResult(file, rows, False)


def _row(
    file: SepaReturnFile,
    collection: SepaCollection | None,
    record: ReturnRecord,
    outcome: str,
    now: datetime,
) -> SepaReturn:
    return SepaReturn(
        id=new_id("rtn"),
        file_id=file.id,
        collection_id=collection.id if collection else None,
        end_to_end_id=record.end_to_end_id,
        reason_code=record.reason_code,
        action=record.action.value,
        outcome=outcome,
        amount=record.amount_cents,
        currency=record.currency,
        return_date=record.date,
        source=record.source,
        created_at=now,
    )


async def _expand(session: AsyncSession, rejection: BatchRejection) -> list[ReturnRecord]:
    """One record per collection of a rejected file or payment-information block."""
    batch = await repository.batch_by_message_id(session, rejection.original_message_id)
    if batch is None:
        log.warning(
            "pain.002 rejects an unknown file", extra={"message_id": rejection.original_message_id}
        )
        return []
    collections = await repository.of_batch(session, batch.id)
    if rejection.original_payment_info_id:
        # Blocks are numbered `<message id>-<n>` in sequence-type order (FRST before RCUR);
        # a batch has one collection date, so block n is the n-th sequence type present.
        types = sorted({c.sequence_type for c in collections})
        suffix = rejection.original_payment_info_id.rpartition("-")[2]
        index = int(suffix) - 1 if suffix.isdigit() else -1
        wanted = types[index] if 0 <= index < len(types) else None
        collections = [c for c in collections if c.sequence_type == wanted]
    return [
        ReturnRecord(
            end_to_end_id=c.end_to_end_id,
            reason_code=rejection.reason_code or NO_REASON,
            amount_cents=c.amount,
            currency=c.currency,
            date=rejection.date,
            source="pain.002",
            original_message_id=rejection.original_message_id,
        )
        for c in collections
    ]


AMOUNT_MISMATCH = "amount_mismatch"


def matches(record: ReturnRecord, collection: SepaCollection) -> bool:
    """The return is of the collection's amount and currency. A pain.002 reject may leave
    the original amount out (it is optional there): nothing to compare, it matches."""
    if record.amount_cents is None and record.currency is None:
        return True
    return (record.amount_cents, record.currency) == (collection.amount, collection.currency)


async def apply_return(
    session: AsyncSession,
    collection: SepaCollection,
    record: ReturnRecord,
    *,
    settings: Settings,
    now: datetime,
) -> str:
    """Undo a collection; answers the outcome (`applied`, `ignored` or `amount_mismatch`)."""
    if collection.status not in ("batched", "submitted", "settled"):
        return "ignored"
    if not matches(record, collection):
        # A return of 0.01 against a 12.99 collection is not this collection's return (a
        # mistyped id, a forged file): it undoes nothing, and the operators see why.
        log.warning(
            "SEPA return does not match its collection",
            extra={
                "end_to_end_id": record.end_to_end_id,
                "return_amount": record.amount_cents,
                "return_currency": record.currency,
                "collection_amount": collection.amount,
                "collection_currency": collection.currency,
            },
        )
        return AMOUNT_MISMATCH
    code = record.reason_code
    collection.status, collection.return_reason_code = "returned", code
    collection.returned_at = collection.updated_at = now
    failure = f"sepa_return_{code.lower()}"
    await close_attempt(session, collection, "failed", now, failure, reason_code=code)
    renewal, service = await repository.lock_renewal_and_service(session, collection.renewal_id)
    before = Before.of(renewal, service)
    action = classify(code)
    if action is ReturnAction.REFUND:
        await reversal.refund(
            session, renewal, service, reason=f"sepa_return:{code}", code=failure, now=now
        )
    else:
        await reversal.reverse_extension(
            session, renewal, service, reason=f"sepa_return:{code}", now=now
        )
    if record.source == "pain.002" and collection.sequence_type == SequenceType.FIRST.value:
        await _first_again(session, collection)

    if action is ReturnAction.RETRY:
        renewal.failed_charge_count += 1
        decision = after_soft_failure(
            failed_charges=renewal.failed_charge_count,
            now=now,
            schedule_days=settings.dunning_schedule_days,
            service_expires_at=service.expires_at,
            grace_days=settings.renewal_grace_days,
        )
        if decision.retry_at is None:
            finish_renewal(renewal, "failed", now, failure)
            renewal.failure_reason = describe(failure, decision.reason)
            metrics.RENEWAL_OUTCOMES.labels("failed").inc()
        else:
            renewal.status, renewal.failure_code = "scheduled", failure
            renewal.failure_reason = describe(failure)
            renewal.next_attempt_at, renewal.finished_at = decision.retry_at, None
            renewal.updated_at = now
            metrics.RENEWAL_OUTCOMES.labels("retry_scheduled").inc()
    elif action is ReturnAction.REFUND:
        return "applied"  # refunded above, with its events
    else:
        finish_renewal(renewal, "failed", now, failure)
        metrics.RENEWAL_OUTCOMES.labels("failed").inc()
        if action is ReturnAction.METHOD_UNUSABLE:
            await _method_unusable(session, collection, failure, now)
    await emit_transition(session, renewal, service, before, now)
    return "applied"


async def _method_unusable(
    session: AsyncSession, collection: SepaCollection, failure: str, now: datetime
) -> None:
    method = await repository.method_with_mandate(session, collection.payment_method_id)
    if method is None or method.status in ("failed", "revoked"):
        return
    method.status, method.failure_code, method.updated_at = "failed", failure, now
    if method.mandate is not None and method.mandate.status != MandateStatus.REVOKED:
        method.mandate.status, method.mandate.revoked_at = MandateStatus.REVOKED, now
    await method_events.announce(session, "failed", method, now)


async def _first_again(session: AsyncSession, collection: SepaCollection) -> None:
    if await repository.mandate_used_elsewhere(
        session, collection.mandate_reference, collection.id
    ):
        return
    method = await repository.method_with_mandate(session, collection.payment_method_id)
    if method is not None and method.mandate is not None:
        method.mandate.sequence_type = SequenceType.FIRST.value
