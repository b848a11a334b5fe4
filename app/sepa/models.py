"""SEPA collections, the pain.008 batches that carry them, and the bank's returns.

SepaCollection   one direct debit of one renewal attempt, pre-notified to the customer
                 pending → batched → submitted → settled | returned  (or canceled)
SepaBatch        one pain.008 file: the collections of one date and creditor account
                 created → submitted → settled
SepaReturnFile   a bank report imported once (its SHA-256 makes a re-import a no-op)
SepaReturn       one R-transaction read from such a file, and what it did
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base, UTCDateTime

COLLECTION_STATUSES = ("pending", "batched", "submitted", "settled", "returned", "canceled")
# Still on its way to the debtor's bank: the renewal waits for it.
OPEN_COLLECTION_STATUSES = ("pending", "batched", "submitted")
BATCH_STATUSES = ("created", "submitted", "settled")


def _known(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class SepaCollection(Base):
    __tablename__ = "sepa_collections"
    __table_args__ = (
        # One collection per renewal attempt: two replicas pre-notifying at once collide here.
        UniqueConstraint("renewal_id", "attempt_number"),
        # The bank reports returns by it; it must identify exactly one collection.
        UniqueConstraint("end_to_end_id"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(_known("status", COLLECTION_STATUSES), name="status_known"),
        CheckConstraint("sequence_type IN ('FRST', 'RCUR')", name="sequence_type_known"),
        Index("ix_sepa_collections_due", "status", "collection_date"),
        Index("ix_sepa_collections_created", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    renewal_id: Mapped[str] = mapped_column(ForeignKey("renewals.id"), index=True)
    attempt_number: Mapped[int]
    service_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    payment_method_id: Mapped[str] = mapped_column(ForeignKey("payment_methods.id"), index=True)
    mandate_reference: Mapped[str] = mapped_column(String(35), index=True)
    creditor_id: Mapped[str] = mapped_column(String(35))
    sequence_type: Mapped[str] = mapped_column(String(4))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    collection_date: Mapped[date] = mapped_column(Date)
    submission_deadline: Mapped[date] = mapped_column(Date)
    end_to_end_id: Mapped[str] = mapped_column(String(35))
    status: Mapped[str] = mapped_column(String(16))
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("sepa_batches.id"), index=True)
    return_reason_code: Mapped[str | None] = mapped_column(String(35), default=None)
    cancel_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    prenotified_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class SepaBatch(Base):
    __tablename__ = "sepa_batches"
    __table_args__ = (
        # The bank refuses a repeated message id (EPC: unique per creditor for 15 days at least).
        UniqueConstraint("message_id"),
        CheckConstraint(_known("status", BATCH_STATUSES), name="status_known"),
        Index("ix_sepa_batches_created", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    creditor_id: Mapped[str] = mapped_column(String(35))
    creditor_name: Mapped[str] = mapped_column(String(70))
    # The creditor's own account, masked like any IBAN we show.
    creditor_iban_masked: Mapped[str] = mapped_column(String(64))
    collection_date: Mapped[date] = mapped_column(Date, index=True)
    schema: Mapped[str] = mapped_column(String(20))
    message_id: Mapped[str] = mapped_column(String(35))
    number_of_transactions: Mapped[int]
    control_sum: Mapped[int]  # cents
    currency: Mapped[str] = mapped_column(String(3))
    # The file names every debtor's IBAN: sealed like the IBANs themselves (AES-GCM, the
    # batch id as associated data); `sha256` is of the clear file as served.
    content: Mapped[bytes] = mapped_column(LargeBinary)
    content_key_id: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class SepaReturnFile(Base):
    __tablename__ = "sepa_return_files"
    __table_args__ = (
        UniqueConstraint("sha256"),
        Index("ix_sepa_return_files_created", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int]
    records: Mapped[int]
    applied: Mapped[int]
    duplicates: Mapped[int]
    unmatched: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SepaReturn(Base):
    __tablename__ = "sepa_returns"
    __table_args__ = (
        # The same R-transaction reported twice (in two files) is applied once.
        UniqueConstraint("end_to_end_id", "reason_code", "return_date"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    file_id: Mapped[str] = mapped_column(ForeignKey("sepa_return_files.id"), index=True)
    collection_id: Mapped[str | None] = mapped_column(ForeignKey("sepa_collections.id"), index=True)
    end_to_end_id: Mapped[str] = mapped_column(String(35))
    reason_code: Mapped[str] = mapped_column(String(35))  # ISO (4) or the bank's own (Prtry)
    action: Mapped[str] = mapped_column(String(20))  # retry | method_unusable | refund | other
    # applied | ignored (the collection was not in a state the return can change) | unmatched
    # | amount_mismatch (not the collection's amount or currency: nothing undone)
    outcome: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    return_date: Mapped[date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
