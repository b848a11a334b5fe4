"""What the registry accepts and what customers and admins see of a service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from app.core.clock import Instant
from app.core.money import Money

ServiceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
ServiceKind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]

# The state of a service's next renewal; the README's "What the customer sees" says what
# each one means and which action fixes it.
Readiness = Literal[
    "ok",
    "service_cancelled",
    "service_lapsed",
    "auto_renew_off",
    "no_payment_method",
    "payment_method_not_validated",
    "payment_method_expired",
    "payment_method_revoked",
    "payment_method_failed",
    "payment_method_expires_before_renewal",
    "currency_not_supported_by_method",
    "sepa_not_collectable_before_expiry",
    "requires_authentication",
    "retrying",
    "renewal_failed",
]


class ServiceUpsert(BaseModel):
    """What provisioning sends for `PUT /v1/admin/services/{id}`."""

    model_config = ConfigDict(extra="forbid")

    customer_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    kind: ServiceKind = Field(examples=["domain", "hosting"])
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    expires_at: Instant
    period_months: StrictInt = Field(ge=1, le=120)
    price: Money
    status: Literal["active", "cancelled"] = "active"
    auto_renew: StrictBool | None = Field(
        default=None,
        description="Only on creation; afterwards the customer decides. Default false.",
    )
    reverse_paid_period: StrictBool = Field(
        default=False,
        description="Move `expires_at` before the end of a period the customer has paid "
        "for (409 `expiry_before_paid_period` otherwise); `service.renewal_reversed` goes "
        "out. Send `If-Match` with the ETag read, so that a stale expiry is a 412 instead.",
    )


class AutoRenewPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auto_renew: StrictBool


class PaymentMethodAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_method_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    auto_renew: StrictBool = Field(
        default=True,
        description="Choosing a method turns automatic renewal on; false turns it off.",
    )


class BulkPaymentMethodAssignment(PaymentMethodAssignment):
    service_ids: list[ServiceId] | None = Field(
        default=None,
        max_length=500,
        description="The services to switch; all of the caller's active services when absent.",
    )


class PaymentMethodSummary(BaseModel):
    id: str
    type: str
    status: str
    display: str = Field(description="Masked: `VISA •••• 4242` or `ES91 **** … 1332`.")
    valid_until: datetime | None = None


class NextCharge(BaseModel):
    at: datetime = Field(description="The next charge, retry or SEPA collection; never past.")
    amount: Money
    lead_days: int
    kind: Literal["charge", "retry", "collection"] = Field(
        description="charge: a planned card charge; retry: the next attempt after a decline; "
        "collection: a SEPA direct debit's collection date."
    )


class RenewalNextAction(BaseModel):
    type: Literal["authenticate_payment", "choose_payment_method"]
    url: str | None = Field(default=None, description="For authenticate_payment.")


class CurrentRenewal(BaseModel):
    """The renewal of the period that starts at the service's expiry, once planned."""

    id: str
    status: str
    amount: Money
    attempt_count: int
    next_attempt_at: datetime | None
    failure_code: str | None = Field(description="Stable: the decline or why it stopped.")
    failure_reason: str | None = Field(description="The same, as a sentence for the customer.")
    next_action: RenewalNextAction | None
    notified_at: datetime | None = Field(description="When `renewal.upcoming` told the customer.")


class ServiceOut(BaseModel):
    id: str
    customer_id: str
    kind: str
    name: str
    status: str
    expires_at: datetime
    period_months: int
    price: Money
    auto_renew: bool
    payment_method: PaymentMethodSummary | None
    next_charge: NextCharge | None = Field(
        description="When the next renewal will be charged and how much; null when not renewing."
    )
    renewal_readiness: Readiness
    renewal_readiness_message: str = Field(
        description="One sentence for the customer: what happens next, or what to do."
    )
    current_renewal: CurrentRenewal | None
    created_at: datetime
    updated_at: datetime
    cancelled_at: datetime | None


class BulkAssignmentResult(BaseModel):
    payment_method_id: str
    services: list[ServiceOut]


class ServiceChangeOut(BaseModel):
    id: int
    service_id: str
    at: datetime
    actor_id: str
    actor_kind: str
    field: str
    before: Any
    after: Any
    reason: str | None
