"""When a renewal is announced and when it is charged: decided here and nowhere else.

Three moments per renewal, counted back from the service's expiry:

    notice   the renewal is planned and `renewal.upcoming` tells the customer the amount,
             the date and how to stop it
    charge   the card is charged, or the SEPA direct debit is collected
    expiry   the service ends unless renewed

The lead is the larger of what the payment method needs and what the kind of service needs
(a domain must reach the registry in time). A card is charged at its lead and announced
`renewal_notice_days` before that. A SEPA renewal is announced at its lead and collected on
the first TARGET2 business day its notice allows (the longer of the consumer notice and
SEPA's pre-notification, and the bank's submission lead); the settings check at startup
keeps that day before expiry.

A renewal planned late (registered days before expiry, an expiry moved closer, a scheduler
that did not run) keeps the full notice by charging later, up to the last moment that still
renews in time (`renewal_short_notice_lead_days` before expiry); when even that is too
soon, the notice goes out at once, is short, and says so. A customer's own act inside the
notice window (choosing a method, turning auto-renew on) is the notice: the charge keeps
its usual date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from app.core.settings import Settings
from app.core.target2 import earliest_collection_date, latest_collection_date

SEPA = "sepa_debit"

# How a renewal was announced: with the full notice; with a shorter one because a full one
# no longer fit before expiry; by the customer's own act; or (SEPA) a new collection date
# of a renewal already announced, pre-notified again as the rulebook asks.
NoticeKind = Literal["full", "short", "customer_act", "retry"]


@dataclass(frozen=True)
class ChargePlan:
    at: datetime
    notice: NoticeKind


def lead_days(settings: Settings, *, kind: str | None, method_type: str | None) -> int:
    """`kind=None`: any kind without a lead of its own."""
    method_lead = (
        settings.renewal_lead_days_sepa if method_type == SEPA else settings.renewal_lead_days
    )
    kind_lead = settings.renewal_lead_days_by_kind.get(kind, 0) if kind is not None else 0
    return max(method_lead, kind_lead)


def notice_days(settings: Settings, method_type: str | None) -> int:
    """Days between the notice and the charge."""
    if method_type == SEPA:
        return max(settings.renewal_notice_days, settings.sepa_prenotification_days)
    return settings.renewal_notice_days


def plan_lead_days(settings: Settings, *, kind: str | None, method_type: str | None) -> int:
    """How many days before expiry a renewal is planned and announced."""
    lead = lead_days(settings, kind=kind, method_type=method_type)
    # SEPA's lead is its announcement: the collection follows the pre-notification.
    return lead if method_type == SEPA else lead + settings.renewal_notice_days


def notice_at(
    settings: Settings, *, expires_at: datetime, kind: str, method_type: str | None
) -> datetime:
    return expires_at - timedelta(days=plan_lead_days(settings, kind=kind, method_type=method_type))


def midnight(day: date) -> datetime:
    """A collection date as the instant the renewal shows for it."""
    return datetime.combine(day, time(0), tzinfo=UTC)


def next_charge_at(
    settings: Settings, *, expires_at: datetime, kind: str, method_type: str | None
) -> datetime:
    """The usual charge: a card's at its lead; SEPA's collection of a renewal announced on
    time."""
    if method_type == SEPA:
        announced = notice_at(settings, expires_at=expires_at, kind=kind, method_type=SEPA)
        return midnight(
            earliest_collection_date(
                announced.date(),
                notice_days(settings, SEPA),
                settings.sepa_submission_lead_business_days,
            )
        )
    return expires_at - timedelta(days=lead_days(settings, kind=kind, method_type=method_type))


def card_charge(
    settings: Settings,
    *,
    expires_at: datetime,
    kind: str,
    now: datetime,
    customer_act: bool = False,
) -> ChargePlan:
    """When a card renewal announced `now` is charged (see the module's docstring)."""
    usual = next_charge_at(settings, expires_at=expires_at, kind=kind, method_type="card")
    if customer_act:
        return ChargePlan(max(usual, now), "customer_act")
    at = max(usual, now + timedelta(days=settings.renewal_notice_days))
    latest = max(usual, expires_at - timedelta(days=settings.renewal_short_notice_lead_days))
    if at <= latest:
        return ChargePlan(at, "full")
    return ChargePlan(max(latest, now), "short")


def sepa_collection(
    settings: Settings,
    *,
    expires_at: datetime,
    kind: str,
    today: date,
    notice: NoticeKind,
) -> tuple[date, NoticeKind] | None:
    """The collection date of a SEPA renewal pre-notified `today`, and how it was announced;
    None when no TARGET2 business day before `expires_at` allows it.

    `notice` is what the caller intends: `full` for a renewal planned by the sweep (it falls
    back to `short`), `customer_act` or `retry` (a new collection of a renewal already
    announced) need only SEPA's own pre-notification."""
    bank = settings.sepa_submission_lead_business_days
    latest = latest_collection_date(expires_at)
    if notice in ("full", "short"):
        full = earliest_collection_date(today, notice_days(settings, SEPA), bank)
        if full <= latest:
            return full, "full"
        if earliest_collection_date(today, settings.sepa_prenotification_days, bank) <= latest:
            # The last day that still renews in time gives the customer the most notice.
            return latest, "short"
        return None
    earliest = earliest_collection_date(today, settings.sepa_prenotification_days, bank)
    if notice == "customer_act":
        usual = next_charge_at(settings, expires_at=expires_at, kind=kind, method_type=SEPA)
        earliest = max(earliest, usual.date())
    return (earliest, notice) if earliest <= latest else None


def longest_lead_days(settings: Settings, *, sepa: bool = True) -> int:
    """The earliest any service can be charged before its expiry: how far ahead forecasts
    and warnings must look. `sepa=False` for questions about cards only."""
    leads = [settings.renewal_lead_days, *settings.renewal_lead_days_by_kind.values()]
    if sepa:
        leads.append(settings.renewal_lead_days_sepa)
    return max(leads)
