"""sepa collections: pre-notified debits, pain.008 batches, imported returns; refunded renewals

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 19:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
RENEWAL_STATUSES = "'scheduled', 'processing', 'succeeded', 'failed', 'requires_action', 'canceled'"


def _renewal_statuses(statuses: str) -> None:
    # SQLite cannot alter a CHECK constraint in place: batch mode rebuilds the table.
    with op.batch_alter_table("renewals") as batch:
        batch.drop_constraint("ck_renewals_status_known", type_="check")
        batch.create_check_constraint("ck_renewals_status_known", f"status IN ({statuses})")


def upgrade() -> None:
    _renewal_statuses(RENEWAL_STATUSES + ", 'refunded'")

    op.create_table(
        "sepa_batches",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("creditor_id", sa.String(35), nullable=False),
        sa.Column("creditor_name", sa.String(70), nullable=False),
        sa.Column("creditor_iban_masked", sa.String(64), nullable=False),
        sa.Column("collection_date", sa.Date(), nullable=False),
        sa.Column("schema", sa.String(20), nullable=False),
        sa.Column("message_id", sa.String(35), nullable=False),
        sa.Column("number_of_transactions", sa.Integer(), nullable=False),
        sa.Column("control_sum", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("content_key_id", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("submitted_at", TIMESTAMP, nullable=True),
        sa.Column("settled_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint(
            "status IN ('created', 'submitted', 'settled')", name="ck_sepa_batches_status_known"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sepa_batches"),
        sa.UniqueConstraint("message_id", name="uq_sepa_batches_message_id"),
    )
    op.create_index("ix_sepa_batches_collection_date", "sepa_batches", ["collection_date"])
    op.create_index("ix_sepa_batches_created", "sepa_batches", ["created_at", "id"])

    op.create_table(
        "sepa_collections",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("renewal_id", sa.String(40), nullable=False),
        sa.Column("attempt_number", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("payment_method_id", sa.String(32), nullable=False),
        sa.Column("mandate_reference", sa.String(35), nullable=False),
        sa.Column("creditor_id", sa.String(35), nullable=False),
        sa.Column("sequence_type", sa.String(4), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("collection_date", sa.Date(), nullable=False),
        sa.Column("submission_deadline", sa.Date(), nullable=False),
        sa.Column("end_to_end_id", sa.String(35), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("batch_id", sa.String(40), nullable=True),
        sa.Column("return_reason_code", sa.String(4), nullable=True),
        sa.Column("cancel_reason", sa.String(64), nullable=True),
        sa.Column("prenotified_at", TIMESTAMP, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("submitted_at", TIMESTAMP, nullable=True),
        sa.Column("settled_at", TIMESTAMP, nullable=True),
        sa.Column("returned_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint("amount > 0", name="ck_sepa_collections_amount_positive"),
        sa.CheckConstraint(
            "status IN ('pending', 'batched', 'submitted', 'settled', 'returned', 'canceled')",
            name="ck_sepa_collections_status_known",
        ),
        sa.CheckConstraint(
            "sequence_type IN ('FRST', 'RCUR')", name="ck_sepa_collections_sequence_type_known"
        ),
        sa.ForeignKeyConstraint(
            ["renewal_id"], ["renewals.id"], name="fk_sepa_collections_renewal_id_renewals"
        ),
        sa.ForeignKeyConstraint(
            ["payment_method_id"],
            ["payment_methods.id"],
            name="fk_sepa_collections_payment_method_id_payment_methods",
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["sepa_batches.id"], name="fk_sepa_collections_batch_id_sepa_batches"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sepa_collections"),
        sa.UniqueConstraint(
            "renewal_id", "attempt_number", name="uq_sepa_collections_renewal_id_attempt_number"
        ),
        sa.UniqueConstraint("end_to_end_id", name="uq_sepa_collections_end_to_end_id"),
    )
    for column in ("renewal_id", "customer_id", "payment_method_id", "mandate_reference"):
        op.create_index(f"ix_sepa_collections_{column}", "sepa_collections", [column])
    op.create_index("ix_sepa_collections_batch_id", "sepa_collections", ["batch_id"])
    op.create_index("ix_sepa_collections_due", "sepa_collections", ["status", "collection_date"])
    op.create_index("ix_sepa_collections_created", "sepa_collections", ["created_at", "id"])

    op.create_table(
        "sepa_return_files",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("applied", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("unmatched", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sepa_return_files"),
        sa.UniqueConstraint("sha256", name="uq_sepa_return_files_sha256"),
    )
    op.create_index("ix_sepa_return_files_created", "sepa_return_files", ["created_at", "id"])

    op.create_table(
        "sepa_returns",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("file_id", sa.String(40), nullable=False),
        sa.Column("collection_id", sa.String(40), nullable=True),
        sa.Column("end_to_end_id", sa.String(35), nullable=False),
        sa.Column("reason_code", sa.String(4), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("return_date", sa.Date(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["sepa_return_files.id"], name="fk_sepa_returns_file_id_sepa_return_files"
        ),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["sepa_collections.id"],
            name="fk_sepa_returns_collection_id_sepa_collections",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sepa_returns"),
        sa.UniqueConstraint(
            "end_to_end_id",
            "reason_code",
            "return_date",
            name="uq_sepa_returns_end_to_end_id_reason_code_return_date",
        ),
    )
    op.create_index("ix_sepa_returns_file_id", "sepa_returns", ["file_id"])
    op.create_index("ix_sepa_returns_collection_id", "sepa_returns", ["collection_id"])


def downgrade() -> None:
    op.drop_table("sepa_returns")
    op.drop_table("sepa_return_files")
    op.drop_table("sepa_collections")
    op.drop_table("sepa_batches")
    # Refunded renewals have no place in the older schema; they read as failed there.
    op.execute("UPDATE renewals SET status = 'failed' WHERE status = 'refunded'")
    _renewal_statuses(RENEWAL_STATUSES)
