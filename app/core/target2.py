"""TARGET2 business days and the dates of a SEPA direct debit.

Plumbing beside the clock rather than part of app/sepa: the renewal timing rules
(app/services/lead_time.py) predict collection dates with it, for services and renewals
that must not depend on the SEPA machinery.

A SEPA collection settles only on a TARGET2 business day: Monday to Friday, except the
days the Eurosystem closes T2 (1 January, Good Friday, Easter Monday, 1 May, 25 and 26
December). The closing days come from the `holidays` package's European Central Bank
calendar (market `XECB`), so a change the ECB announces arrives with a package update
instead of a hand-kept list.

Three rules fix a collection's requested date (the `ReqdColltnDt` of the pain.008):

- pre-notification: the customer is told the amount and date at least
  `prenotification_days` calendar days ahead (the SDD rulebook's default is 14; the
  mandate may agree a shorter period);
- submission lead: the file reaches the creditor's bank at least
  `submission_lead_business_days` business days before the date (D-1 for SDD Core since
  2016; banks may ask for more);
- the date falls before the service expires, so that the customer keeps the service
  without a gap while the money is on its way.

`today` is a calendar day in UTC and counts as a submission day: a caller whose bank
cut-off for today has passed should pass tomorrow.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import holidays

from app.core.errors import Unprocessable

DEFAULT_PRENOTIFICATION_DAYS = 14
DEFAULT_SUBMISSION_LEAD_BUSINESS_DAYS = 1

# The ISO 10383 market code under which `holidays` keeps the ECB's TARGET calendar.
_TARGET_MARKET = "XECB"


@lru_cache(maxsize=128)
def _closing_days(year: int) -> frozenset[date]:
    # One immutable set per year: no shared, lazily-filled holiday dict between requests.
    return frozenset(holidays.financial_holidays(_TARGET_MARKET, years=year).keys())


def is_business_day(day: date) -> bool:
    """Whether T2 settles on `day`."""
    return day.weekday() < 5 and day not in _closing_days(day.year)


def next_business_day(day: date) -> date:
    """The first business day strictly after `day`."""
    day += timedelta(days=1)
    while not is_business_day(day):
        day += timedelta(days=1)
    return day


def previous_business_day(day: date) -> date:
    """The last business day strictly before `day`."""
    day -= timedelta(days=1)
    while not is_business_day(day):
        day -= timedelta(days=1)
    return day


def roll_forward(day: date) -> date:
    """`day` if it is a business day, else the next one (the 'following' convention)."""
    return day if is_business_day(day) else next_business_day(day)


def add_business_days(day: date, count: int) -> date:
    """Move `count` business days forward (or back, when negative) from `day`.

    `day` itself need not be a business day: one business day after a Saturday is the
    Monday (or the next open day).
    """
    step = next_business_day if count >= 0 else previous_business_day
    for _ in range(abs(count)):
        day = step(day)
    return day


def _require_business_day(collection_date: date) -> None:
    if not is_business_day(collection_date):
        raise Unprocessable(
            f"{collection_date.isoformat()} is not a TARGET2 business day; "
            f"the next one is {next_business_day(collection_date).isoformat()}.",
            code="collection_date_not_business_day",
        )


def submission_deadline(
    collection_date: date,
    submission_lead_business_days: int = DEFAULT_SUBMISSION_LEAD_BUSINESS_DAYS,
) -> date:
    """The last business day on which the file for `collection_date` may reach the bank."""
    _check_non_negative(submission_lead_business_days=submission_lead_business_days)
    _require_business_day(collection_date)
    return add_business_days(collection_date, -submission_lead_business_days)


def earliest_collection_date(
    today: date,
    prenotification_days: int = DEFAULT_PRENOTIFICATION_DAYS,
    submission_lead_business_days: int = DEFAULT_SUBMISSION_LEAD_BUSINESS_DAYS,
) -> date:
    """The first business day a collection pre-notified `today` may be requested for."""
    _check_non_negative(
        prenotification_days=prenotification_days,
        submission_lead_business_days=submission_lead_business_days,
    )
    after_notice = roll_forward(today + timedelta(days=prenotification_days))
    # The deadline is itself a business day, so the first one it can fall on is the first
    # business day from today on.
    after_submission = add_business_days(roll_forward(today), submission_lead_business_days)
    return max(after_notice, after_submission)


def latest_collection_date(expires_at: datetime) -> date:
    """The last business day strictly before the (UTC) day on which the service expires."""
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    return previous_business_day(expires_at.astimezone(UTC).date())


def collection_date_for(
    expires_at: datetime,
    today: date,
    *,
    prenotification_days: int = DEFAULT_PRENOTIFICATION_DAYS,
    submission_lead_business_days: int = DEFAULT_SUBMISSION_LEAD_BUSINESS_DAYS,
) -> date:
    """The requested collection date for a renewal pre-notified `today`.

    The earliest date the rules allow, so that a soft return (insufficient funds) still
    leaves time for another attempt before the service expires. Raises
    `Unprocessable(code="no_collection_date")` when the rules leave no date before expiry.
    """
    earliest = earliest_collection_date(today, prenotification_days, submission_lead_business_days)
    latest = latest_collection_date(expires_at)
    if earliest > latest:
        raise Unprocessable(
            f"No TARGET2 business day fits: the earliest allowed collection date is "
            f"{earliest.isoformat()} ({prenotification_days} days' notice, "
            f"{submission_lead_business_days} business day(s) for the bank), but the service "
            f"expires on {expires_at.astimezone(UTC).date().isoformat()}.",
            code="no_collection_date",
            extra={"earliest": earliest.isoformat(), "latest": latest.isoformat()},
        )
    return earliest


def _check_non_negative(**values: int) -> None:
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"{name} must not be negative, got {value}")
