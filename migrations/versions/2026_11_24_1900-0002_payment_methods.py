"""payment_methods: payment methods (SEPA and card columns), mandates, idempotency keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("status <> 'revoked'")
DEFAULT = sa.text("is_default")


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("caller_id", sa.String(128), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        _ts("created_at"),
        _ts("expires_at"),
        sa.PrimaryKeyConstraint("caller_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(
        op.f("ix_idempotency_keys_expires_at"), "idempotency_keys", ["expires_at"]
    )

    op.create_table(
        "payment_methods",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("is_default", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("failure_code", sa.String(64), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("validated_at", nullable=True),
        _ts("revoked_at", nullable=True),
        sa.Column("iban_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("iban_key_id", sa.String(32), nullable=True),
        sa.Column("iban_fingerprint", sa.String(64), nullable=True),
        sa.Column("iban_masked", sa.String(64), nullable=True),
        sa.Column("iban_last4", sa.String(4), nullable=True),
        sa.Column("iban_country", sa.String(2), nullable=True),
        sa.Column("bank_code", sa.String(16), nullable=True),
        sa.Column("bic", sa.String(11), nullable=True),
        sa.Column("bank_name", sa.String(200), nullable=True),
        sa.Column("account_holder_name", sa.String(70), nullable=True),
        sa.Column("gateway_customer_id", sa.String(255), nullable=True),
        sa.Column("gateway_payment_method_id", sa.String(255), nullable=True),
        sa.Column("gateway_setup_id", sa.String(255), nullable=True),
        sa.Column("card_brand", sa.String(32), nullable=True),
        sa.Column("card_last4", sa.String(4), nullable=True),
        sa.Column("card_exp_month", sa.Integer(), nullable=True),
        sa.Column("card_exp_year", sa.Integer(), nullable=True),
        sa.Column("card_funding", sa.String(16), nullable=True),
        sa.Column("card_country", sa.String(2), nullable=True),
        sa.Column("card_fingerprint", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_methods")),
    )
    op.create_index(
        "uq_payment_methods_customer_iban_live",
        "payment_methods",
        ["customer_id", "iban_fingerprint"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.create_index(
        "uq_payment_methods_customer_default",
        "payment_methods",
        ["customer_id"],
        unique=True,
        sqlite_where=DEFAULT,
        postgresql_where=DEFAULT,
    )
    op.create_index(
        "ix_payment_methods_customer_created",
        "payment_methods",
        ["customer_id", "created_at", "id"],
    )

    op.create_table(
        "mandates",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("payment_method_id", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("reference", sa.String(35), nullable=False),
        sa.Column("creditor_id", sa.String(35), nullable=False),
        sa.Column("creditor_name", sa.String(70), nullable=False),
        sa.Column("scheme", sa.String(8), nullable=False),
        sa.Column("mandate_type", sa.String(16), nullable=False),
        sa.Column("sequence_type", sa.String(4), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("debtor_name", sa.String(70), nullable=False),
        sa.Column("text_version", sa.String(32), nullable=False),
        sa.Column("text_sha256", sa.String(64), nullable=False),
        sa.Column("signer_name", sa.String(140), nullable=True),
        _ts("signed_at", nullable=True),
        sa.Column("signer_ip", sa.String(64), nullable=True),
        sa.Column("signer_user_agent", sa.String(512), nullable=True),
        _ts("created_at"),
        _ts("revoked_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["payment_method_id"],
            ["payment_methods.id"],
            name=op.f("fk_mandates_payment_method_id_payment_methods"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mandates")),
        sa.UniqueConstraint("payment_method_id", name=op.f("uq_mandates_payment_method_id")),
    )
    op.create_index(op.f("ix_mandates_customer_id"), "mandates", ["customer_id"])
    op.create_index(
        "uq_mandates_reference_upper", "mandates", [sa.text("upper(reference)")], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_mandates_reference_upper", table_name="mandates")
    op.drop_index(op.f("ix_mandates_customer_id"), table_name="mandates")
    op.drop_table("mandates")
    op.drop_index("ix_payment_methods_customer_created", table_name="payment_methods")
    op.drop_index("uq_payment_methods_customer_default", table_name="payment_methods")
    op.drop_index("uq_payment_methods_customer_iban_live", table_name="payment_methods")
    op.drop_table("payment_methods")
    op.drop_index(op.f("ix_idempotency_keys_expires_at"), table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
