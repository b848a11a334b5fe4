"""services and renewals: the registry, its audit trail, renewals and their attempts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 19:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "services",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("expiry_anchor_day", sa.Integer(), nullable=False),
        sa.Column("period_months", sa.Integer(), nullable=False),
        sa.Column("price_amount", sa.Integer(), nullable=False),
        sa.Column("price_currency", sa.String(3), nullable=False),
        sa.Column("auto_renew", sa.Boolean(), nullable=False),
        sa.Column("payment_method_id", sa.String(32), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("cancelled_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint("period_months BETWEEN 1 AND 120", name="ck_services_period_months_range"),
        sa.CheckConstraint("price_amount > 0", name="ck_services_price_amount_positive"),
        sa.CheckConstraint("status IN ('active', 'cancelled')", name="ck_services_status_known"),
        sa.ForeignKeyConstraint(
            ["payment_method_id"],
            ["payment_methods.id"],
            name="fk_services_payment_method_id_payment_methods",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_services"),
    )
    op.create_index("ix_services_customer_id", "services", ["customer_id"])
    op.create_index("ix_services_payment_method_id", "services", ["payment_method_id"])
    op.create_index("ix_services_renewal_scan", "services", ["status", "auto_renew", "expires_at"])

    op.create_table(
        "service_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("actor_id", sa.String(128), nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("field", sa.String(32), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("reason", sa.String(255), nullable=True),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name="fk_service_changes_service_id_services"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_service_changes"),
    )
    op.create_index("ix_service_changes_service_id", "service_changes", ["service_id"])

    op.create_table(
        "renewals",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("period_start", TIMESTAMP, nullable=False),
        sa.Column("period_end", TIMESTAMP, nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("payment_method_id", sa.String(32), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("due_at", TIMESTAMP, nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=True),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("failed_charge_count", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", TIMESTAMP, nullable=True),
        sa.Column("failure_code", sa.String(64), nullable=True),
        sa.Column("failure_reason", sa.String(255), nullable=True),
        sa.Column("action_url", sa.String(1024), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint("amount > 0", name="ck_renewals_amount_positive"),
        sa.CheckConstraint(
            "status IN ('scheduled', 'processing', 'succeeded', 'failed', "
            "'requires_action', 'canceled')",
            name="ck_renewals_status_known",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name="fk_renewals_service_id_services"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_renewals"),
        sa.UniqueConstraint("service_id", "period_start", name="uq_renewals_service_id_period_start"),
    )
    op.create_index("ix_renewals_service_id", "renewals", ["service_id"])
    op.create_index("ix_renewals_customer_id", "renewals", ["customer_id"])
    op.create_index("ix_renewals_due", "renewals", ["status", "next_attempt_at"])

    op.create_table(
        "renewal_attempts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("renewal_id", sa.String(40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(80), nullable=False),
        sa.Column("payment_method_id", sa.String(32), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("gateway_charge_id", sa.String(64), nullable=True),
        sa.Column("failure_code", sa.String(64), nullable=True),
        sa.Column("decline_code", sa.String(64), nullable=True),
        sa.Column("hard_decline", sa.Boolean(), nullable=False),
        sa.Column("reconciled", sa.Boolean(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["renewal_id"], ["renewals.id"], name="fk_renewal_attempts_renewal_id_renewals"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_renewal_attempts"),
        sa.UniqueConstraint("renewal_id", "number", name="uq_renewal_attempts_renewal_id_number"),
        sa.UniqueConstraint("idempotency_key", name="uq_renewal_attempts_idempotency_key"),
    )
    op.create_index("ix_renewal_attempts_renewal_id", "renewal_attempts", ["renewal_id"])


def downgrade() -> None:
    op.drop_table("renewal_attempts")
    op.drop_table("renewals")
    op.drop_table("service_changes")
    op.drop_table("services")
