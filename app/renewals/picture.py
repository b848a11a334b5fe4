"""The one truthful picture of a service's next renewal, as the customer area shows it.

`picture` reads the service, its payment method and the renewal of its current period (if
planned) and answers three things the SPA needs:

- `readiness`: `ok` only when the next renewal can really go through; otherwise the first
  thing in its way, as a stable code with one sentence telling the customer what to do;
- `next_charge`: the next thing that will happen to the customer's money (the planned
  charge, the next retry, the SEPA collection date), never in the past; none when nothing
  will happen without the customer;
- `next_action` of the renewal: authenticate the payment, or choose another method.

The same rules answer for the API's services, the expiry reminders and the lapse notices.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from app.core.money import format_money
from app.core.settings import Settings
from app.services.lead_time import (
    SEPA,
    card_charge,
    lead_days,
    midnight,
    next_charge_at,
    notice_at,
    sepa_collection,
)
from app.services.methods import MethodFacts
from app.services.schemas import Readiness

NextChargeKind = Literal["charge", "retry", "collection"]


class ServiceFacts(Protocol):
    """What the rules read of a service (the ORM model, or a raw row with these names)."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def expires_at(self) -> datetime: ...
    @property
    def price_amount(self) -> int: ...
    @property
    def price_currency(self) -> str: ...
    @property
    def auto_renew(self) -> bool: ...


class RenewalFacts(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def period_start(self) -> datetime: ...
    @property
    def due_at(self) -> datetime: ...
    @property
    def next_attempt_at(self) -> datetime | None: ...
    @property
    def attempt_count(self) -> int: ...
    @property
    def failed_charge_count(self) -> int: ...
    @property
    def amount(self) -> int: ...
    @property
    def currency(self) -> str: ...
    @property
    def failure_code(self) -> str | None: ...
    @property
    def failure_reason(self) -> str | None: ...
    @property
    def action_url(self) -> str | None: ...


@dataclass(frozen=True)
class NextCharge:
    at: datetime
    amount: int
    currency: str
    lead_days: int
    kind: NextChargeKind


@dataclass(frozen=True)
class Picture:
    readiness: Readiness
    message: str
    next_charge: NextCharge | None


def next_action(renewal: RenewalFacts) -> dict[str, Any] | None:
    """What the customer must do for this renewal to go through, if anything."""
    if renewal.status == "requires_action":
        # The renewal's link (app/renewals/links.py): it confirms the payment on-session
        # and leads the browser to the gateway's 3-D Secure page.
        return {"type": "authenticate_payment", "url": renewal.action_url}
    if renewal.status in ("failed", "refunded"):
        return {"type": "choose_payment_method"}
    return None


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


def _next_charge(
    service: ServiceFacts,
    method: MethodFacts,
    renewal: RenewalFacts | None,
    settings: Settings,
    now: datetime,
) -> NextCharge | None:
    """The next charge, attempt or collection; None when no date can renew in time."""
    lead = lead_days(settings, kind=service.kind, method_type=method.type)
    amount, currency = service.price_amount, service.price_currency
    at: datetime | None
    kind: NextChargeKind = "collection" if method.type == SEPA else "charge"
    if renewal is not None and renewal.status in ("scheduled", "processing"):
        amount, currency = renewal.amount, renewal.currency
        retrying = renewal.failed_charge_count > 0
        if retrying:
            kind = "retry"
        if method.type != SEPA:
            at = renewal.next_attempt_at or renewal.due_at
        elif renewal.next_attempt_at is None or renewal.status == "processing":
            at = renewal.due_at  # the collection is fixed: its date
        else:
            # Waiting for its (next) collection to be fixed and pre-notified.
            fixed_on = max(renewal.next_attempt_at, now)
            grace = timedelta(days=settings.renewal_grace_days if retrying else 0)
            day = sepa_collection(
                settings,
                expires_at=service.expires_at + grace,
                kind=service.kind,
                today=fixed_on.date(),
                # The first collection keeps the full notice; a new one is pre-notified.
                notice="retry" if renewal.attempt_count else "full",
            )
            at = midnight(day[0]) if day else None
    else:
        announced = notice_at(
            settings, expires_at=service.expires_at, kind=service.kind, method_type=method.type
        )
        if announced >= now:
            at = next_charge_at(
                settings, expires_at=service.expires_at, kind=service.kind, method_type=method.type
            )
        elif method.type == SEPA:
            day = sepa_collection(
                settings,
                expires_at=service.expires_at,
                kind=service.kind,
                today=now.date(),
                notice="full",
            )
            at = midnight(day[0]) if day else None
        else:
            at = card_charge(settings, expires_at=service.expires_at, kind=service.kind, now=now).at
    if at is None:
        return None
    return NextCharge(max(at, now), amount, currency, lead, kind)


def picture(
    service: ServiceFacts,
    method: MethodFacts | None,
    renewal: RenewalFacts | None,
    settings: Settings,
    now: datetime,
) -> Picture:
    """See the module's docstring. `renewal` is the one for the period that starts at the
    service's expiry, if planned."""
    expires = _day(service.expires_at)
    if service.status != "active":
        return Picture("service_cancelled", "This service was cancelled: it will not renew.", None)
    lapses_at = service.expires_at + timedelta(days=settings.renewal_grace_days)
    if now >= lapses_at and (renewal is None or renewal.status != "processing"):
        return Picture(
            "service_lapsed",
            f"This service expired on {expires} without being renewed; contact us to get it back.",
            None,
        )
    if renewal is not None and renewal.status == "requires_action":
        amount = format_money(renewal.amount, renewal.currency)
        if renewal.failure_code == "authentication_failed":
            return Picture(
                "requires_authentication",
                f"The authentication of the renewal payment of {amount} did not succeed: "
                f"try again, or pay with another payment method, before {_day(lapses_at)} "
                "to keep the service.",
                None,
            )
        return Picture(
            "requires_authentication",
            f"Your bank asks you to authenticate the renewal payment of {amount}: do it "
            f"before {_day(lapses_at)} to keep the service.",
            None,
        )
    if renewal is not None and renewal.status in ("failed", "refunded"):
        return Picture(
            "renewal_failed",
            f"The renewal failed. {renewal.failure_reason or ''} Choose another payment method "
            f"and pay before {_day(lapses_at)} to keep the service.".replace("  ", " "),
            None,
        )
    refusal = _method_refusal(service, method)
    if refusal is not None:
        return refusal
    assert method is not None
    if not service.auto_renew:
        return Picture(
            "auto_renew_off",
            f"Automatic renewal is off: the service expires on {expires}. Turn it on to renew it.",
            None,
        )
    charge = _next_charge(service, method, renewal, settings, now)
    if charge is None:
        return Picture(
            "sepa_not_collectable_before_expiry",
            f"A SEPA direct debit can no longer be collected before the service expires on "
            f"{expires}: choose a card.",
            None,
        )
    when = _day(charge.at)
    if method.valid_until is not None and method.valid_until <= charge.at:
        return Picture(
            "payment_method_expires_before_renewal",
            f"The card expires before the renewal is charged on {when}: add a new card and "
            "choose it.",
            charge,
        )
    if renewal is not None and renewal.status == "scheduled" and renewal.failed_charge_count:
        return Picture(
            "retrying",
            f"{renewal.failure_reason or 'The last payment did not go through.'} We will try "
            f"again on {when}; top up or choose another payment method before then.",
            charge,
        )
    amount = format_money(charge.amount, charge.currency)
    return Picture("ok", f"Renews automatically: {amount} on {when}.", charge)


def _method_refusal(service: ServiceFacts, method: MethodFacts | None) -> Picture | None:
    """Why the service's method cannot pay its renewal at all, if it cannot."""
    if method is None:
        return Picture("no_payment_method", "Choose a payment method to renew this service.", None)
    if method.status == "revoked":
        return Picture(
            "payment_method_revoked",
            "The payment method of this service was removed: choose another one.",
            None,
        )
    if method.status == "expired":
        return Picture(
            "payment_method_expired",
            "The card of this service has expired: add a new card and choose it.",
            None,
        )
    if method.status == "failed":  # a detached card, a mandate a SEPA return ended
        return Picture(
            "payment_method_failed",
            "The payment method of this service can no longer be charged: choose another one.",
            None,
        )
    if method.status != "validated":
        return Picture(
            "payment_method_not_validated",
            "The payment method of this service is not validated: finish its validation or "
            "choose another one.",
            None,
        )
    if not method.supports_currency(service.price_currency):
        return Picture(
            "currency_not_supported_by_method",
            f"This payment method cannot pay in {service.price_currency}: choose a card.",
            None,
        )
    return None
