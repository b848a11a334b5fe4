"""The `data` of each event type, version 1.

Payloads describe the resource after the change, with masked data only: the last 4 digits
of a card or an IBAN, never more (`app.events.guard` refuses anything that looks like a
full number). Money is integer minor units + ISO 4217 currency; times are UTC.

A breaking change to a payload gets a new model and a new `schema_version` in the
catalogue; receivers see the version in every event.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Payload(BaseModel):
    # Unknown fields are a bug in the emitter: they could carry data nobody reviewed.
    model_config = ConfigDict(extra="forbid")


class EventMoney(Payload):
    amount: int = Field(description="Integer minor units (cents).")
    currency: str = Field(min_length=3, max_length=3, description="ISO 4217 code.")


class SepaDebitDetails(Payload):
    iban_last4: str = Field(min_length=4, max_length=4)
    country_code: str | None = None
    bank_name: str | None = None
    bic: str | None = None
    mandate_reference: str | None = None


class CardDetails(Payload):
    brand: str | None = None
    last4: str = Field(min_length=4, max_length=4)
    exp_month: int | None = Field(default=None, ge=1, le=12)
    exp_year: int | None = None


class PaymentMethodData(Payload):
    """payment_method.created | validated | failed | expiring | expired | revoked | updated"""

    id: str
    customer_id: str
    type: Literal["sepa_debit", "card"]
    status: str
    sepa_debit: SepaDebitDetails | None = None
    card: CardDetails | None = None
    failure_code: str | None = None
    created_at: datetime | None = None
    imported: bool = Field(
        default=False,
        description="Moved in from the previous customer panel "
        "(POST /v1/admin/imports/payment-methods), not registered here.",
    )


class MandateAcceptedData(Payload):
    payment_method_id: str
    customer_id: str
    mandate_reference: str
    creditor_identifier: str | None = None
    signed_at: datetime
    signer_name: str | None = None
    sequence_type: Literal["FRST", "RCUR"] = "FRST"
    iban_last4: str = Field(min_length=4, max_length=4)
    imported: bool = Field(
        default=False,
        description="Signed through the previous customer panel and imported; `signed_at` "
        "is the original signature date.",
    )


class ServicePaymentMethodChangedData(Payload):
    service_id: str
    customer_id: str
    payment_method_id: str | None
    previous_payment_method_id: str | None = None


class ServiceAutoRenewChangedData(Payload):
    service_id: str
    customer_id: str
    auto_renew: bool


class SepaCollectionDetails(Payload):
    """The pre-notification of a SEPA direct debit: what will be collected, when, under what."""

    collection_date: date = Field(description="The TARGET2 business day the debit is due.")
    mandate_reference: str
    creditor_identifier: str
    sequence_type: Literal["FRST", "RCUR"]
    end_to_end_id: str = Field(description="The reference on the debtor's bank statement.")


class EventNextAction(Payload):
    """What the customer must do for a renewal to go through."""

    type: Literal["authenticate_payment", "choose_payment_method"]
    url: str | None = Field(default=None, description="For authenticate_payment.")


class RenewalData(Payload):
    """renewal.succeeded | retry_scheduled | failed | requires_action | canceled | refunded"""

    id: str
    service_id: str
    customer_id: str
    status: str
    amount: EventMoney
    payment_method_id: str | None = None
    period_start: datetime
    period_end: datetime | None = None
    scheduled_for: datetime | None = Field(
        default=None, description="When the charge is (or was) due."
    )
    attempt_count: int = 0
    next_attempt_at: datetime | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    next_action_url: str | None = Field(
        default=None, description="For requires_action: where the customer completes the step."
    )
    next_action: EventNextAction | None = Field(
        default=None, description="What the customer must do, when the renewal waits for them."
    )
    sepa_debit: SepaCollectionDetails | None = Field(
        default=None, description="For a SEPA renewal: the collection (the pre-notification)."
    )


class DisputeDetails(Payload):
    id: str = Field(description="The gateway's dispute id.")
    status: str = Field(
        description="The gateway's dispute status: warning_needs_response, needs_response, "
        "under_review, won, lost, …"
    )
    reason: str | None = Field(default=None, description="The gateway's reason code.")
    amount: EventMoney
    disputed_at: datetime


class RenewalDisputedData(RenewalData):
    """renewal.disputed: the renewal as it stands (still paid) and its dispute."""

    dispute: DisputeDetails


class ServiceSummary(Payload):
    id: str
    kind: str
    name: str
    expires_at: datetime


class MethodSummary(Payload):
    id: str
    type: Literal["sepa_debit", "card"]
    display: str = Field(description="Masked: `VISA •••• 4242` or `ES91 **** … 1332`.")


class StopInstruction(Payload):
    """The request that stops the renewal: automatic renewal off."""

    method: Literal["PATCH"] = "PATCH"
    path: str = Field(examples=["/v1/services/example.com"])
    body: dict[str, bool] = Field(examples=[{"auto_renew": False}])


class RenewalUpcomingData(RenewalData):
    """renewal.upcoming: the notice before every charge, card or SEPA (for SEPA it is also
    the pre-notification of the collection)."""

    notice: Literal["full", "short", "customer_act", "retry"] = Field(
        description="full: at least the configured notice before the charge; short: a full "
        "notice no longer fit before expiry, the charge is at the last moment that renews in "
        "time; customer_act: the customer's own act started the renewal; retry: a SEPA debit "
        "presented again on a new date."
    )
    charge_at: datetime = Field(description="When the card is charged or the debit collected.")
    service: ServiceSummary
    payment_method: MethodSummary
    how_to_stop: StopInstruction
    message: str = Field(description="The notice in one paragraph, for the customer.")


class ServiceExpiringData(Payload):
    """service.expiring: a reminder before (or just after) a service's expiry."""

    service_id: str
    customer_id: str
    kind: str
    name: str
    expires_at: datetime
    days_before_expiry: int = Field(
        description="The reminder's offset (negative: after expiry) from the configured list."
    )
    renewal_scheduled: bool
    renewal_at: datetime | None = Field(description="When the renewal is charged, if scheduled.")
    amount: EventMoney
    renewal_readiness: str = Field(description="As on the service: why not, when not `ok`.")
    message: str


class ServiceLapsedData(Payload):
    """service.lapsed: the service expired (and its grace ran out) without a renewal."""

    service_id: str
    customer_id: str
    kind: str
    name: str
    expired_at: datetime
    reason: str = Field(description="A stable code: why it was not renewed.")
    message: str


class ServiceRenewedData(Payload):
    service_id: str
    customer_id: str
    renewal_id: str
    previous_expires_at: datetime
    expires_at: datetime
    period_months: int


class ServiceRenewalReversedData(Payload):
    service_id: str
    customer_id: str
    renewal_id: str
    reason: str = Field(description="Why the renewal was undone (refund, SEPA return code).")
    expires_at: datetime = Field(description="The expiry now in force.")
    reversed_expires_at: datetime = Field(description="The expiry the renewal had granted.")


class SepaBatchCreatedData(Payload):
    id: str
    collection_date: date
    count: int
    total: EventMoney
    creditor_identifier: str | None = None
