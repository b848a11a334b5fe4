"""What customers and admins see of renewals and their attempts."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from app.core.money import Money
from app.services.schemas import RenewalNextAction


class RenewalAttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    status: str
    amount: int
    currency: str
    payment_method_id: str
    gateway_charge_id: str | None
    failure_code: str | None
    decline_code: str | None
    hard_decline: bool
    reconciled: bool = Field(description="Settled by asking the gateway after a lost answer.")
    started_at: datetime
    finished_at: datetime | None


class DisputeOut(BaseModel):
    id: str = Field(description="The gateway's dispute id.")
    status: str = Field(
        description="As the gateway last reported it: needs_response, under_review, won, lost, …"
    )
    reason: str | None = Field(description="The gateway's reason code (fraudulent, …).")
    disputed_at: datetime


class RenewalOut(BaseModel):
    id: str
    service_id: str
    customer_id: str
    status: str
    period_start: datetime
    period_end: datetime
    amount: Money
    payment_method_id: str | None
    due_at: datetime
    next_attempt_at: datetime | None
    failure_code: str | None
    failure_reason: str | None
    action_url: str | None = Field(
        description="While requires_action: where the customer authenticates the payment."
    )
    next_action: RenewalNextAction | None = Field(
        description="What the customer must do for this renewal to go through, if anything."
    )
    notified_at: datetime | None = Field(description="When `renewal.upcoming` told the customer.")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    dispute: DisputeOut | None = Field(
        description="The customer disputed the charge with their bank (the renewal stays paid)."
    )
    attempts: list[RenewalAttemptOut]


class SweepSummaryOut(BaseModel):
    """What one run did: the card sweep, the SEPA cycle and the notices, together."""

    planned: int
    notices: int = Field(description="`renewal.upcoming` sent (card and SEPA).")
    claimed: int
    succeeded: int
    failed: int = Field(description="Failed for good, card and SEPA.")
    retry_scheduled: int
    requires_action: int
    canceled: int = Field(description="Card and SEPA.")
    outcome_unknown: int
    rate_limited: int
    reconciled: int
    settled_elsewhere: int = Field(
        description="Charged by this run, but settled first by the gateway's webhook (or by "
        "another worker after this run's lease ran out): counted there, not here."
    )
    payment_method_switched: int
    deferred: int = Field(
        description="Renewals left due without a charge because the gateway is unavailable."
    )
    sepa_prenotified: int = Field(description="SEPA collections fixed and pre-notified.")
    sepa_waiting: int = Field(description="SEPA renewals waiting for a usable method.")
    sepa_released: int = Field(description="SEPA collections that missed their file.")
    sepa_settled: int = Field(description="SEPA collections past their return window.")
    expiry_reminders: int = Field(description="`service.expiring` sent.")
    lapsed: int = Field(description="`service.lapsed` sent.")
    duration_seconds: float
    gateway_unavailable: bool = Field(
        description="The gateway refused our API key: the sweep stopped charging, and the "
        "renewals it did not charge stay due for the next sweep."
    )
    gateway_unavailable_reason: str | None


class ForecastDay(BaseModel):
    date: date
    currency: str
    renewals: int
    amount: int = Field(description="Minor units.")


class Forecast(BaseModel):
    days: int
    generated_at: datetime
    data: list[ForecastDay]
