"""service method type: each service, and each of its renewals, keeps its method's type

`services.payment_method_type` is the type (`card`, `sepa_debit`) of the method in
`services.payment_method_id`, null when there is none. Planning needs the type for the
lead of every service whose time has come; reading it off the service saves a look-up of
each page's methods by primary key, which at a million services cost as many buffers as
the page itself. A method's type never changes, so the column changes only with the
service's method (app/services/service.py `_assign`).

`renewals.payment_method_type` is the same type, set at planning and kept with the
service's while the renewal may still be charged or collected; along
`ix_renewals_method_due` the SEPA cycle reads the scheduled SEPA renewals only, instead of
every due card renewal to find none.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE on both backends: a batch rebuild could lose partial indexes.
    op.add_column("services", sa.Column("payment_method_type", sa.String(16), nullable=True))
    op.add_column("renewals", sa.Column("payment_method_type", sa.String(16), nullable=True))
    op.execute(
        "UPDATE services SET payment_method_type = (SELECT m.type FROM payment_methods m "
        "WHERE m.id = services.payment_method_id) WHERE payment_method_id IS NOT NULL"
    )
    op.execute(
        "UPDATE renewals SET payment_method_type = (SELECT s.payment_method_type "
        "FROM services s WHERE s.id = renewals.service_id) "
        "WHERE status NOT IN ('succeeded', 'refunded')"
    )
    op.create_index(
        "ix_renewals_method_due",
        "renewals",
        ["payment_method_type", "status", "next_attempt_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_renewals_method_due", table_name="renewals")
    op.drop_column("renewals", "payment_method_type")
    op.drop_column("services", "payment_method_type")
