"""renewal notice and reminders: when the renewal jobs look at each service next

Planning, expiry reminders and lapse announcements each read only the services whose time
has come, along an index of their own, instead of every service in a window that depends on
the payment method's type (app/services/schedule.py). Renewals remember when the customer
was told (`renewal.upcoming`); those planned before this revision were not.

Existing rows get times that cannot be late for any allowed setting (a notice at most 150
days before expiry: a 90-day lead and a 60-day notice; reminders at most 365 days before);
the jobs work out the exact time when they get there. Services that expired more than 60
days ago (the longest grace) count as announced as lapsed: they are long gone.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOOK_AT_ONCE = sa.text("'1970-01-01 00:00:00'")


def _days_before_expiry(days: int) -> str:
    if op.get_bind().dialect.name == "sqlite":
        return f"datetime(expires_at, '-{days} days')"
    return f"expires_at - interval '{days} days'"


def upgrade() -> None:
    with op.batch_alter_table("services") as table:
        table.add_column(
            sa.Column(
                "renewal_notice_at",
                sa.DateTime(timezone=True),
                nullable=True,
                server_default=LOOK_AT_ONCE,
            )
        )
        table.add_column(
            sa.Column(
                "expiry_reminder_at",
                sa.DateTime(timezone=True),
                nullable=True,
                server_default=LOOK_AT_ONCE,
            )
        )
        table.add_column(sa.Column("expiry_reminded_days", sa.Integer(), nullable=True))
        table.add_column(sa.Column("lapsed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("renewals") as table:
        table.add_column(sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "applied_settings",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_applied_settings")),
    )
    op.execute(
        "UPDATE services SET "
        f"renewal_notice_at = CASE WHEN status = 'active' AND auto_renew "
        f"AND payment_method_id IS NOT NULL THEN {_days_before_expiry(150)} END, "
        f"expiry_reminder_at = CASE WHEN status = 'active' "
        f"THEN {_days_before_expiry(366)} END, "
        f"lapsed_at = CASE WHEN expires_at < {_now_minus_days(60)} THEN expires_at END"
    )
    op.create_index(
        "ix_services_renewal_notice",
        "services",
        ["renewal_notice_at", "id"],
        sqlite_where=sa.text("renewal_notice_at IS NOT NULL"),
        postgresql_where=sa.text("renewal_notice_at IS NOT NULL"),
    )
    op.create_index(
        "ix_services_expiry_reminder",
        "services",
        ["expiry_reminder_at", "id"],
        sqlite_where=sa.text("expiry_reminder_at IS NOT NULL"),
        postgresql_where=sa.text("expiry_reminder_at IS NOT NULL"),
    )
    op.create_index(
        "ix_services_lapse",
        "services",
        ["expires_at", "id"],
        sqlite_where=sa.text("status = 'active' AND lapsed_at IS NULL"),
        postgresql_where=sa.text("status = 'active' AND lapsed_at IS NULL"),
    )


def _now_minus_days(days: int) -> str:
    if op.get_bind().dialect.name == "sqlite":
        return f"datetime('now', '-{days} days')"
    return f"now() - interval '{days} days'"


def downgrade() -> None:
    op.drop_index("ix_services_lapse", table_name="services")
    op.drop_index("ix_services_expiry_reminder", table_name="services")
    op.drop_index("ix_services_renewal_notice", table_name="services")
    op.drop_table("applied_settings")
    with op.batch_alter_table("renewals") as table:
        table.drop_column("notified_at")
    with op.batch_alter_table("services") as table:
        table.drop_column("lapsed_at")
        table.drop_column("expiry_reminded_days")
        table.drop_column("expiry_reminder_at")
        table.drop_column("renewal_notice_at")
