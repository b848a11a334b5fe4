"""Renewals (one per service and billing period) and every attempt to charge them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base, UTCDateTime

RENEWAL_STATUSES = (
    "scheduled",  # planned; waits for next_attempt_at
    "processing",  # an attempt is at the gateway, under a lease
    "succeeded",  # charged once; the service moved one period
    "failed",  # given up, with the reason
    "requires_action",  # the customer must authenticate (3-D Secure); not retried blind
    "canceled",  # the service, the method or auto-renew changed before the charge
    "refunded",  # collected, then taken back by the debtor (SEPA MD06 refund)
)
FINAL_STATUSES = ("succeeded", "failed", "canceled", "refunded")


class Renewal(Base):
    __tablename__ = "renewals"
    __table_args__ = (
        # The heart of "never charge twice": one renewal per service and period, however
        # many replicas plan at once.
        UniqueConstraint("service_id", "period_start"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "status IN ('scheduled', 'processing', 'succeeded', 'failed', "
            "'requires_action', 'canceled', 'refunded')",
            name="status_known",
        ),
        # The claim: expired leases, and scheduled renewals in claim order (next_attempt_at,
        # then id, as a whole planning run shares one next_attempt_at), so a batch reads
        # its own rows and stops, instead of joining and sorting every due renewal.
        Index("ix_renewals_due", "status", "next_attempt_at", "id"),
        # The SEPA cycle's scan: scheduled SEPA renewals in due order, so finding none
        # reads nothing, however many card renewals are due. Not a partial index: the
        # planner proves a partial one usable only from literal values, and with stale
        # statistics it preferred ix_renewals_due (reading every due card renewal).
        Index("ix_renewals_method_due", "payment_method_type", "status", "next_attempt_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"), index=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    payment_method_id: Mapped[str | None] = mapped_column(String(32), default=None)
    # The type of the service's method (services.payment_method_type), set at planning and
    # kept with the service's while the renewal may still be charged or collected
    # (app/services/service.py `_assign`): what the SEPA cycle's index selects on.
    payment_method_type: Mapped[str | None] = mapped_column(String(16), default=None)
    status: Mapped[str] = mapped_column(String(20), default="scheduled")
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempt_count: Mapped[int] = mapped_column(default=0)
    # Dunning counts failed charges only: a 429 or a lost response is not the customer's fault.
    failed_charge_count: Mapped[int] = mapped_column(default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    failure_code: Mapped[str | None] = mapped_column(String(64), default=None)
    failure_reason: Mapped[str | None] = mapped_column(String(255), default=None)
    action_url: Mapped[str | None] = mapped_column(String(1024), default=None)
    # A dispute (chargeback) of the renewal's charge, as the gateway last reported it. The
    # renewal stays paid: provisioning decides what a dispute means for the service.
    dispute_id: Mapped[str | None] = mapped_column(String(255), default=None)
    dispute_status: Mapped[str | None] = mapped_column(String(32), default=None)
    dispute_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    disputed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # When `renewal.upcoming` told the customer (a SEPA renewal: when its collection was
    # pre-notified); null until then.
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class RenewalAttempt(Base):
    """One call to the gateway. Written as `processing` and committed *before* the call, so
    a crash leaves a record to reconcile instead of a charge nobody knows about."""

    __tablename__ = "renewal_attempts"
    __table_args__ = (
        UniqueConstraint("renewal_id", "number"),
        UniqueConstraint("idempotency_key"),
        # The gateway's webhooks name a charge by its id.
        Index("ix_renewal_attempts_gateway_charge_id", "gateway_charge_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    renewal_id: Mapped[str] = mapped_column(ForeignKey("renewals.id"), index=True)
    number: Mapped[int]
    idempotency_key: Mapped[str] = mapped_column(String(80))
    payment_method_id: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    # processing | succeeded | failed | requires_action | not_sent
    status: Mapped[str] = mapped_column(String(20))
    gateway_charge_id: Mapped[str | None] = mapped_column(String(64), default=None)
    failure_code: Mapped[str | None] = mapped_column(String(64), default=None)
    decline_code: Mapped[str | None] = mapped_column(String(64), default=None)
    hard_decline: Mapped[bool] = mapped_column(default=False)
    reconciled: Mapped[bool] = mapped_column(default=False)
    # The customer was there (pay now, 3-D Secure): reconciled by re-sending the same
    # on-session request; while `requires_action`, the sweep asks the gateway about it.
    on_session: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The gateway's 3-D Secure page for this attempt (the renewal links to it).
    action_url: Mapped[str | None] = mapped_column(String(1024), default=None)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
