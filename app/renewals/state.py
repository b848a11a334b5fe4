"""What the renewal rules read and change of a renewal and of its attempts, as types: the
ORM models have them, and so do the plain rows a renewal sweep reads
(app/renewals/rows.py), which cost a fraction of a mapped instance to load and to
change. The rules (outcomes, dunning, notices) take these, so both can go through them."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class RenewalState(Protocol):
    id: str
    service_id: str
    customer_id: str
    period_start: datetime
    period_end: datetime
    amount: int
    currency: str
    payment_method_id: str | None
    status: str
    due_at: datetime
    next_attempt_at: datetime | None
    attempt_count: int
    failed_charge_count: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    failure_code: str | None
    failure_reason: str | None
    action_url: str | None
    notified_at: datetime | None
    updated_at: datetime
    finished_at: datetime | None


class AttemptState(Protocol):
    id: str
    renewal_id: str
    number: int
    idempotency_key: str
    payment_method_id: str
    amount: int
    currency: str
    status: str
    gateway_charge_id: str | None
    failure_code: str | None
    decline_code: str | None
    hard_decline: bool
    reconciled: bool
    on_session: bool
    action_url: str | None
    started_at: datetime
    finished_at: datetime | None
