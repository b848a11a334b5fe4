"""What admins send and see of SEPA batches, collections and imported returns."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from app.core.clock import CalendarDay
from app.core.money import Money
from app.sepa.models import SepaBatch, SepaCollection, SepaReturn, SepaReturnFile
from app.sepa.pain008 import DEFAULT_SCHEMA, Pain008Schema


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection_date: CalendarDay = Field(
        description="The requested collection date (a TARGET2 day)."
    )
    schema_: Pain008Schema = Field(
        default=DEFAULT_SCHEMA,
        alias="schema",
        description="pain.008.001.08 (EPC since November 2023) or pain.008.001.02.",
    )


class CollectionOut(BaseModel):
    id: str
    renewal_id: str
    service_id: str
    customer_id: str
    payment_method_id: str
    mandate_reference: str
    creditor_identifier: str
    sequence_type: str
    amount: Money
    collection_date: date
    submission_deadline: date
    end_to_end_id: str
    status: str = Field(description="pending → batched → submitted → settled | returned; canceled")
    batch_id: str | None
    return_reason_code: str | None
    cancel_reason: str | None
    prenotified_at: datetime
    submitted_at: datetime | None
    settled_at: datetime | None
    returned_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: SepaCollection) -> CollectionOut:
        return cls(
            id=row.id,
            renewal_id=row.renewal_id,
            service_id=row.service_id,
            customer_id=row.customer_id,
            payment_method_id=row.payment_method_id,
            mandate_reference=row.mandate_reference,
            creditor_identifier=row.creditor_id,
            sequence_type=row.sequence_type,
            amount=Money(amount=row.amount, currency=row.currency),
            collection_date=row.collection_date,
            submission_deadline=row.submission_deadline,
            end_to_end_id=row.end_to_end_id,
            status=row.status,
            batch_id=row.batch_id,
            return_reason_code=row.return_reason_code,
            cancel_reason=row.cancel_reason,
            prenotified_at=row.prenotified_at,
            submitted_at=row.submitted_at,
            settled_at=row.settled_at,
            returned_at=row.returned_at,
            created_at=row.created_at,
        )


class BatchOut(BaseModel):
    id: str
    status: str = Field(description="created → submitted → settled")
    creditor_identifier: str
    creditor_name: str
    creditor_iban: str = Field(description="Masked.")
    collection_date: date
    schema_: str = Field(alias="schema")
    message_id: str
    number_of_transactions: int
    control_sum: Money
    sha256: str = Field(description="Of the file as stored and served.")
    file_url: str
    created_at: datetime
    submitted_at: datetime | None
    settled_at: datetime | None
    collections: list[CollectionOut] | None = Field(
        default=None, description="In the answers about one batch."
    )

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    @classmethod
    def of(cls, row: SepaBatch, collections: list[SepaCollection] | None = None) -> BatchOut:
        return cls(
            id=row.id,
            status=row.status,
            creditor_identifier=row.creditor_id,
            creditor_name=row.creditor_name,
            creditor_iban=row.creditor_iban_masked,
            collection_date=row.collection_date,
            schema_=row.schema,
            message_id=row.message_id,
            number_of_transactions=row.number_of_transactions,
            control_sum=Money(amount=row.control_sum, currency=row.currency),
            sha256=row.sha256,
            file_url=f"/v1/admin/sepa/batches/{row.id}/file",
            created_at=row.created_at,
            submitted_at=row.submitted_at,
            settled_at=row.settled_at,
            collections=None if collections is None else [CollectionOut.of(c) for c in collections],
        )


class ReturnOut(BaseModel):
    end_to_end_id: str
    reason_code: str
    action: str = Field(description="retry | method_unusable | refund | other")
    outcome: str = Field(
        description="applied | ignored | unmatched | amount_mismatch (the return's amount or "
        "currency is not the collection's: nothing was undone)"
    )
    collection_id: str | None
    amount: int | None = Field(description="Minor units, when the report gives it.")
    currency: str | None
    return_date: date
    source: str

    @classmethod
    def of(cls, row: SepaReturn) -> ReturnOut:
        return cls(
            end_to_end_id=row.end_to_end_id,
            reason_code=row.reason_code,
            action=row.action,
            outcome=row.outcome,
            collection_id=row.collection_id,
            amount=row.amount,
            currency=row.currency,
            return_date=row.return_date,
            source=row.source,
        )


class ReturnFileOut(BaseModel):
    id: str
    format: str
    sha256: str
    size_bytes: int
    records: int
    applied: int
    duplicates: int = Field(description="Records already imported from another file.")
    unmatched: int
    replayed: bool = Field(description="This very file was imported before: nothing changed.")
    created_at: datetime
    returns: list[ReturnOut] | None = None

    @classmethod
    def of(
        cls, row: SepaReturnFile, returns: list[SepaReturn] | None = None, *, replayed: bool = False
    ) -> ReturnFileOut:
        return cls(
            id=row.id,
            format=row.format,
            sha256=row.sha256,
            size_bytes=row.size_bytes,
            records=row.records,
            applied=row.applied,
            duplicates=row.duplicates,
            unmatched=row.unmatched,
            replayed=replayed,
            created_at=row.created_at,
            returns=None if returns is None else [ReturnOut.of(r) for r in returns],
        )
