"""payment method imports: methods moved in from the previous customer panel

- `payment_methods.imported_at`: when the method was imported (null for methods registered
  here), so events and audits can say where it came from.
- `mandates.last_collected_before_import_on`: the last collection the previous panel made
  under an imported mandate. The 36-month lapse runs from the latest collection presented,
  and those collections are not in `sepa_collections`.

A re-run finds the cards it already imported by their gateway id through
`ix_payment_methods_gateway_payment_method_id`, which 0008 creates for the gateway's webhooks.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE on both backends (SQLite adds and, since 3.35, drops a column in
    # place): a batch rebuild of these tables could lose their partial unique indexes.
    op.add_column(
        "payment_methods", sa.Column("imported_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "mandates", sa.Column("last_collected_before_import_on", sa.Date(), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("mandates", "last_collected_before_import_on")
    op.drop_column("payment_methods", "imported_at")
