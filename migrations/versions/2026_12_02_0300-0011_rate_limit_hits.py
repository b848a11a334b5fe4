"""rate limit hits: the IBAN-check and registration limits shared by every replica

One row per counted request (scope, caller, time), read and written in a transaction of
its own; rows past their window are deleted as hits come and by an hourly job. Before,
each replica counted in memory, so N replicas allowed N times the limit.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_hits",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("caller_id", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_limit_hits")),
    )
    op.create_index(
        "ix_rate_limit_hits_scope_caller_id_at", "rate_limit_hits", ["scope", "caller_id", "at"]
    )


def downgrade() -> None:
    op.drop_index("ix_rate_limit_hits_scope_caller_id_at", table_name="rate_limit_hits")
    op.drop_table("rate_limit_hits")
