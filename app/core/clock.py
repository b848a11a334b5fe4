"""An injectable clock, so that time-dependent rules are tested without sleeping."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Protocol

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, WithJsonSchema

_NUMBER = re.compile(r"\s*[-+]?[0-9]+(\.[0-9]*)?\s*")


def _rfc3339_only(value: object) -> object:
    # Pydantic's lax mode reads a number (or a numeric string) as a Unix time, so `0.5` would
    # mean 1970; the API documents RFC 3339 date-times only, and says so in a 422.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("expected an RFC 3339 date-time such as 2026-11-24T09:00:00Z")
    return value


def _iso_date_only(value: object) -> object:
    # The same lax-mode trap for dates: 0 would be read as 1970-01-01.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("expected an ISO 8601 date such as 2026-12-08")
    return value


# The range of days and instants accepted as input. Billing dates far outside it are typos
# or probes, and the calendar arithmetic on them (a period added, a business day found)
# would overflow at the ends of Python's range: refused with a 422 instead.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2199, 12, 31)
RANGE = f"between {FIRST_DAY.isoformat()} and {LAST_DAY.isoformat()}"


def _day_in_range(value: date) -> date:
    if not FIRST_DAY <= value <= LAST_DAY:
        raise ValueError(f"expected a date {RANGE}")
    return value


def _instant_in_range(value: datetime) -> datetime:
    # The local day first: converting year 1 at +01:00 to UTC would itself overflow.
    if not FIRST_DAY <= value.date() <= LAST_DAY or not (
        FIRST_DAY <= value.astimezone(UTC).date() <= LAST_DAY
    ):
        raise ValueError(f"expected a date-time {RANGE}")
    return value


# A calendar day as input (bodies and query strings): ISO 8601 text only, in RANGE.
CalendarDay = Annotated[
    date,
    BeforeValidator(_iso_date_only),
    AfterValidator(_day_in_range),
    WithJsonSchema({"type": "string", "format": "date", "description": f"A day {RANGE}."}),
]

# A timezone-aware instant as input (bodies and query strings): RFC 3339 text only, in RANGE.
Instant = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339_only),
    AfterValidator(_instant_in_range),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "description": f"An instant {RANGE}, UTC."}
    ),
]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to. For tests and simulations."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("FrozenClock needs timezone-aware times")
        self._now = moment.astimezone(UTC)
