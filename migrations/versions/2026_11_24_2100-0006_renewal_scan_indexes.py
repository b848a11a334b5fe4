"""renewal scan indexes: planner and claim read what is due in page order, and no more

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 21:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RENEWING = sa.text("status = 'active' AND auto_renew IS TRUE")


def upgrade() -> None:
    # Partial: cancelled and non-renewing services (most of a large book) are not in it;
    # (expires_at, id) is the planner's page order, so each page starts where the last ended.
    op.create_index(
        "ix_services_renewal_due",
        "services",
        ["expires_at", "id"],
        sqlite_where=RENEWING,
        postgresql_where=RENEWING,
    )
    op.drop_index("ix_services_renewal_scan", table_name="services")
    # The claim walks scheduled renewals in (next_attempt_at, id) order and stops at a
    # batch; a planning run gives all its renewals one next_attempt_at, so id must follow.
    op.drop_index("ix_renewals_due", table_name="renewals")
    op.create_index("ix_renewals_due", "renewals", ["status", "next_attempt_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_renewals_due", table_name="renewals")
    op.create_index("ix_renewals_due", "renewals", ["status", "next_attempt_at"])
    op.create_index("ix_services_renewal_scan", "services", ["status", "auto_renew", "expires_at"])
    op.drop_index("ix_services_renewal_due", table_name="services")
