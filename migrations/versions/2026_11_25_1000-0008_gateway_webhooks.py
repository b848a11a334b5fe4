"""gateway webhooks: received events once, disputes on renewals, lookups by gateway id

Stripe's webhooks name cards and charges by the gateway's ids; the indexes keep those
lookups off full scans. Each received event id is recorded once (`gateway_events`), so a
redelivered event changes nothing. A renewal shows the dispute of its charge.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
DISPUTE_COLUMNS = ("dispute_id", "dispute_status", "dispute_reason", "disputed_at")


def upgrade() -> None:
    op.create_table(
        "gateway_events",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("gateway", sa.String(16), nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("object_id", sa.String(255), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_events"),
    )
    op.create_index("ix_gateway_events_type_received_at", "gateway_events", ["type", "received_at"])

    with op.batch_alter_table("renewals") as batch:
        batch.add_column(sa.Column("dispute_id", sa.String(255), nullable=True))
        batch.add_column(sa.Column("dispute_status", sa.String(32), nullable=True))
        batch.add_column(sa.Column("dispute_reason", sa.String(64), nullable=True))
        batch.add_column(sa.Column("disputed_at", TIMESTAMP, nullable=True))
    op.create_index(
        "ix_renewal_attempts_gateway_charge_id", "renewal_attempts", ["gateway_charge_id"]
    )
    op.create_index(
        "ix_payment_methods_gateway_payment_method_id",
        "payment_methods",
        ["gateway_payment_method_id"],
    )
    op.create_index("ix_payment_methods_gateway_setup_id", "payment_methods", ["gateway_setup_id"])


def downgrade() -> None:
    op.drop_index("ix_payment_methods_gateway_setup_id", table_name="payment_methods")
    op.drop_index("ix_payment_methods_gateway_payment_method_id", table_name="payment_methods")
    op.drop_index("ix_renewal_attempts_gateway_charge_id", table_name="renewal_attempts")
    # The older schema has no place for disputes; the gateway still has them.
    with op.batch_alter_table("renewals") as batch:
        for column in DISPUTE_COLUMNS:
            batch.drop_column(column)
    op.drop_index("ix_gateway_events_type_received_at", table_name="gateway_events")
    op.drop_table("gateway_events")
