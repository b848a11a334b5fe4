"""rate limit hits, and room for the banks' own return reason codes

`rate_limit_hits`: the IBAN-check and registration limits shared by every replica.

One row per counted request (scope, caller, time), read and written in a transaction of
its own; rows past their window are deleted as hits come and by an hourly job. Before,
each replica counted in memory, so N replicas allowed N times the limit.

`sepa_returns.reason_code` and `sepa_collections.return_reason_code` grow from 4 to 35
characters: a pain.002 may give the bank's proprietary code (`Rsn/Prtry`, Max35Text)
instead of an ISO one, which PostgreSQL refused (SQLite does not enforce lengths, so only
PostgreSQL is altered).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


REASON_COLUMNS = (("sepa_returns", "reason_code"), ("sepa_collections", "return_reason_code"))


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


    if op.get_bind().dialect.name == "postgresql":
        for table, column in REASON_COLUMNS:
            op.alter_column(table, column, type_=sa.String(35), existing_type=sa.String(4))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column in REASON_COLUMNS:
            # Proprietary codes do not fit back: cut, as the old column could not hold them.
            op.execute(f"UPDATE {table} SET {column} = left({column}, 4)")
            op.alter_column(table, column, type_=sa.String(4), existing_type=sa.String(35))
    op.drop_index("ix_rate_limit_hits_scope_caller_id_at", table_name="rate_limit_hits")
    op.drop_table("rate_limit_hits")
