"""Tables for contracted services and the audit trail of how each one is renewed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base, UTCDateTime

SERVICE_STATUSES = ("active", "cancelled")
# The services the renewal engine renews; the partial index below holds these only.
RENEWING = text("status = 'active' AND auto_renew IS TRUE")
# A new row is looked at by the renewal jobs at once (see app/services/schedule.py); rows
# inserted by hand or by SQL get this too.
LOOK_AT_ONCE = text("'1970-01-01 00:00:00'")


class Service(Base):
    """A domain, hosting plan, … as the provisioning system reports it.

    The id is provisioning's, not ours. `expiry_anchor_day` remembers the day of month the
    service was first registered on, so month-end expiries do not drift (see periods.py).
    """

    __tablename__ = "services"
    __table_args__ = (
        CheckConstraint("period_months BETWEEN 1 AND 120", name="period_months_range"),
        CheckConstraint("price_amount > 0", name="price_amount_positive"),
        CheckConstraint("status IN ('active', 'cancelled')", name="status_known"),
        # The renewal planner's scan (and the forecast's): only services that renew, in the
        # order the planner pages through them, so a sweep reads what is due and no more.
        Index(
            "ix_services_renewal_due",
            "expires_at",
            "id",
            sqlite_where=RENEWING,
            postgresql_where=RENEWING,
        ),
        # Each renewal job reads only the services whose time has come, up to now.
        Index(
            "ix_services_renewal_notice",
            "renewal_notice_at",
            "id",
            sqlite_where=text("renewal_notice_at IS NOT NULL"),
            postgresql_where=text("renewal_notice_at IS NOT NULL"),
        ),
        Index(
            "ix_services_expiry_reminder",
            "expiry_reminder_at",
            "id",
            sqlite_where=text("expiry_reminder_at IS NOT NULL"),
            postgresql_where=text("expiry_reminder_at IS NOT NULL"),
        ),
        Index(
            "ix_services_lapse",
            "expires_at",
            "id",
            sqlite_where=text("status = 'active' AND lapsed_at IS NULL"),
            postgresql_where=text("status = 'active' AND lapsed_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="active")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expiry_anchor_day: Mapped[int]
    period_months: Mapped[int]
    price_amount: Mapped[int]
    price_currency: Mapped[str] = mapped_column(String(3))
    auto_renew: Mapped[bool] = mapped_column(default=False)
    payment_method_id: Mapped[str | None] = mapped_column(
        ForeignKey("payment_methods.id"), index=True, default=None
    )
    # The type of that method (`card`, `sepa_debit`; a method's type never changes), set
    # with it (app/services/service.py `_assign`): planning reads the lead from it.
    payment_method_type: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # When the renewal jobs look at this service next (app/services/schedule.py): planning
    # (the next renewal is planned and announced then; null: nothing to plan), the next
    # expiry reminder (null: none left this period; `expiry_reminded_days` is the offset of
    # the last one sent), and when `service.lapsed` went out for the current expiry.
    renewal_notice_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime(), server_default=LOOK_AT_ONCE
    )
    expiry_reminder_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime(), server_default=LOOK_AT_ONCE
    )
    expiry_reminded_days: Mapped[int | None] = mapped_column(default=None)
    lapsed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class AppliedSettings(Base):
    """The settings the stored look-again times were computed with: when they change, the
    times are brought forward so that every service is looked at again in time."""

    __tablename__ = "applied_settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ServiceChange(Base):
    """Who changed what about a service's renewal, when, from what to what."""

    __tablename__ = "service_changes"

    # A sequence, not a random id: the trail reads in the order things happened, even for
    # several changes made in one request at one instant.
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_id: Mapped[str] = mapped_column(String(128))
    actor_kind: Mapped[str] = mapped_column(String(16))  # customer | admin | system
    field: Mapped[str] = mapped_column(String(32))
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(255), default=None)
