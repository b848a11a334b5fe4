"""What the renewal rules read and change of a service, as a type: the ORM model has it, and
so does the plain row a renewal sweep reads (app/renewals/rows.py), which costs a
fraction of a mapped instance to load and to change."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class ServiceState(Protocol):
    id: str
    customer_id: str
    kind: str
    name: str
    status: str
    expires_at: datetime
    period_months: int
    price_amount: int
    price_currency: str
    auto_renew: bool
    payment_method_id: str | None
    updated_at: datetime
    renewal_notice_at: datetime | None
    expiry_reminder_at: datetime | None
    expiry_reminded_days: int | None
    lapsed_at: datetime | None
