"""on-session renewal payments: the customer pays a renewal now, or authenticates it

- `renewal_attempts.on_session`: the customer was there (pay now, 3-D Secure): such an
  attempt is reconciled by re-sending the same on-session request under its key, and one
  that waits at the gateway's 3-D Secure page is asked for again by the sweep.
- `renewal_attempts.action_url`: the gateway's 3-D Secure page of that attempt; the
  renewal's own `action_url` is the service's link that leads the customer there.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 02:30:00
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
    op.add_column(
        "renewal_attempts",
        sa.Column("on_session", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("renewal_attempts", sa.Column("action_url", sa.String(1024), nullable=True))


def downgrade() -> None:
    op.drop_column("renewal_attempts", "action_url")
    op.drop_column("renewal_attempts", "on_session")
