"""pain.008 batches: gather a date's collections into a file, then mark it sent.

create   the pending collections of one collection date become one file for the
         creditor's account, built and validated against the XSD by `pain008`, stored
         with its totals. Before that each collection is checked once more: a service
         cancelled, renewed by other means or moved to another method, a method no
         longer usable, a mandate of another creditor → the collection is canceled and
         its renewal looked at again (nothing is collected that was not due).
submit   an admin says the file went to the bank. Each renewal now counts as
         collected: `succeeded`, the service extended one period (only if its expiry
         still is the period's start: never twice for one payment), the mandate
         FRST → RCUR, events `renewal.succeeded` and `service.renewed`. A later return
         undoes it (see `return_import`).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.crypto import FieldCipher, Sealed
from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.ids import new_id
from app.core.settings import Settings
from app.core.target2 import submission_deadline
from app.events.payloads import EventMoney, SepaBatchCreatedData
from app.events.service import emit
from app.payment_methods.iban import mask
from app.payment_methods.models import PaymentMethod
from app.payment_methods.sepa import reveal_iban
from app.renewals import metrics
from app.renewals.models import Renewal
from app.renewals.notify import Before, emit_transition
from app.sepa import pain008, repository
from app.sepa.collections import cancel_collection, close_attempt, finish_renewal
from app.sepa.models import SepaBatch, SepaCollection
from app.sepa.sequence import SequenceType
from app.services import schedule
from app.services.models import Service


def creditor_of(settings: Settings) -> pain008.Creditor:
    return pain008.Creditor(
        name=settings.sepa_creditor_name,
        iban=settings.sepa_creditor_iban,
        bic=settings.sepa_creditor_bic,
        creditor_id=settings.sepa_creditor_id,
    )


def _not_found() -> NotFound:
    return NotFound("No such SEPA batch.", code="sepa_batch_not_found")


async def get(session: AsyncSession, batch_id: str) -> SepaBatch:
    batch = await repository.get_batch(session, batch_id)
    if batch is None:
        raise _not_found()
    return batch


def file_of(batch: SepaBatch, cipher: FieldCipher) -> bytes:
    """The pain.008 file in clear, for the bank only. Never log it."""
    sealed = Sealed(batch.content_key_id, batch.content)
    return cipher.open(sealed, associated_data=batch.id.encode()).encode("utf-8")


def _why_not(
    collection: SepaCollection,
    renewal: Renewal,
    service: Service,
    method: PaymentMethod | None,
    settings: Settings,
) -> str | None:
    """Why a pending collection must not go into the file after all, or None."""
    if renewal.status != "scheduled":
        return "renewal_not_scheduled"
    if service.status != "active" or not service.auto_renew:
        return "service_not_renewing"
    if service.expires_at != renewal.period_start:
        return "service_already_renewed"
    if service.payment_method_id != collection.payment_method_id or method is None:
        return "payment_method_changed"
    mandate = method.mandate
    if method.status != "validated" or mandate is None or mandate.status != "active":
        return "payment_method_unusable"
    if mandate.reference != collection.mandate_reference:
        return "mandate_changed"
    if mandate.creditor_id != settings.sepa_creditor_id:
        return "creditor_changed"
    return None


async def create_batch(
    session: AsyncSession,
    *,
    collection_date: date,
    schema: pain008.Pain008Schema,
    settings: Settings,
    cipher: FieldCipher,
    now: datetime,
) -> tuple[SepaBatch, list[SepaCollection]]:
    """One validated pain.008 file for the collections due on `collection_date`."""
    deadline = submission_deadline(collection_date, settings.sepa_submission_lead_business_days)
    if now.date() > deadline:
        raise Unprocessable(
            f"The file for {collection_date.isoformat()} had to reach the bank by "
            f"{deadline.isoformat()}.",
            code="submission_deadline_passed",
        )
    included: list[SepaCollection] = []
    items: list[pain008.Collection] = []
    for collection in await repository.pending_for_date(session, collection_date):
        renewal, service = await repository.lock_renewal_and_service(session, collection.renewal_id)
        method = await repository.method_with_mandate(session, collection.payment_method_id)
        reason = _why_not(collection, renewal, service, method, settings)
        if reason is not None:
            # Kept only if a file is made: a refused request changes nothing; the release
            # job cancels what is left once the deadline passes.
            await cancel_collection(session, collection, reason, now)
            continue
        assert method is not None and method.mandate is not None
        assert method.mandate.signed_at is not None
        if method.mandate.sequence_type == SequenceType.RECURRING.value:
            # Another collection under this mandate went out since this one was planned.
            collection.sequence_type = SequenceType.RECURRING.value
        included.append(collection)
        items.append(
            pain008.Collection(
                end_to_end_id=collection.end_to_end_id,
                amount_cents=collection.amount,
                currency=collection.currency,
                debtor_name=method.account_holder_name or method.mandate.debtor_name,
                debtor_iban=reveal_iban(method, cipher),
                debtor_bic=method.bic,
                mandate_reference=collection.mandate_reference,
                mandate_signed_on=method.mandate.signed_at.date(),
                sequence_type=SequenceType(collection.sequence_type),
                collection_date=collection.collection_date,
                remittance_text=(
                    f"Renewal {service.name} until {renewal.period_end.date().isoformat()}"
                ),
            )
        )
    if not items:
        raise Unprocessable(
            f"No collections are due on {collection_date.isoformat()}.", code="no_collections_due"
        )
    creditor = creditor_of(settings)
    built = pain008.build_pain008(creditor, items, created_at=now, schema=schema)
    batch_id = new_id("sepab")
    sealed = cipher.seal(built.content.decode("utf-8"), associated_data=batch_id.encode())
    batch = SepaBatch(
        id=batch_id,
        creditor_id=creditor.creditor_id,
        creditor_name=settings.sepa_creditor_name,
        creditor_iban_masked=mask(creditor.iban),
        collection_date=collection_date,
        schema=schema.value,
        message_id=built.message_id,
        number_of_transactions=built.number_of_transactions,
        control_sum=built.control_sum_cents,
        currency="EUR",
        content=sealed.data,
        content_key_id=sealed.key_id,
        sha256=hashlib.sha256(built.content).hexdigest(),
        status="created",
        created_at=now,
    )
    session.add(batch)
    await session.flush()
    for collection in included:
        collection.status, collection.batch_id, collection.updated_at = "batched", batch.id, now
    await emit(
        session,
        type="sepa.batch.created",
        resource_id=batch.id,
        customer_id=None,
        data=SepaBatchCreatedData(
            id=batch.id,
            collection_date=collection_date,
            count=batch.number_of_transactions,
            total=EventMoney(amount=batch.control_sum, currency=batch.currency),
            creditor_identifier=batch.creditor_id,
        ),
        now=now,
    )
    return batch, included


async def submit_batch(
    session: AsyncSession, batch_id: str, *, now: datetime
) -> tuple[SepaBatch, list[SepaCollection]]:
    """Record that the file went to the bank: its renewals count as collected."""
    batch = await repository.get_batch(session, batch_id, for_update=True)
    if batch is None:
        raise _not_found()
    if batch.status != "created":
        raise Conflict(f"The batch is already {batch.status}.", code="sepa_batch_already_submitted")
    batch.status, batch.submitted_at = "submitted", now
    collections = await repository.of_batch(session, batch.id)
    for collection in collections:
        if collection.status != "batched":  # rejected by the bank before this was recorded
            continue
        collection.status, collection.submitted_at, collection.updated_at = "submitted", now, now
        await close_attempt(session, collection, "succeeded", now)
        await _collected(session, collection, now)
    return batch, collections


async def _collected(session: AsyncSession, collection: SepaCollection, now: datetime) -> None:
    renewal, service = await repository.lock_renewal_and_service(session, collection.renewal_id)
    before = Before.of(renewal, service)
    if renewal.status != "succeeded":
        finish_renewal(renewal, "succeeded", now)
        metrics.RENEWAL_OUTCOMES.labels("succeeded").inc()
        if service.expires_at == renewal.period_start:
            service.expires_at = renewal.period_end
            service.updated_at = now
            schedule.expiry_changed(service, now)
    method = await repository.method_with_mandate(session, collection.payment_method_id)
    mandate = method.mandate if method is not None else None
    if mandate is not None and mandate.sequence_type == SequenceType.FIRST.value:
        mandate.sequence_type = SequenceType.RECURRING.value
    await emit_transition(session, renewal, service, before, now)
