"""Billing periods move from the previous expiry; lead times come from one rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, literal, select

from app.core.database import UTCDateTime
from app.core.settings import ConfigurationError, Settings
from app.services.lead_time import charge_date_reached, lead_days, next_charge_at
from app.services.periods import add_months


def at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "months", "anchor", "expected"),
    [
        (at(2027, 1, 31), 1, None, at(2027, 2, 28)),
        (at(2028, 1, 31), 1, None, at(2028, 2, 29)),  # leap year
        (at(2027, 2, 28), 1, 31, at(2027, 3, 31)),  # the anchor brings it back to the 31st
        (at(2027, 4, 30), 1, 31, at(2027, 5, 31)),
        (at(2027, 11, 15), 3, None, at(2028, 2, 15)),  # across a year end
        (at(2027, 3, 31), 12, None, at(2028, 3, 31)),
        (at(2027, 8, 31), 6, None, at(2028, 2, 29)),
        (at(2027, 1, 1), 120, None, at(2037, 1, 1)),
    ],
)
def test_add_months(start: datetime, months: int, anchor: int | None, expected: datetime) -> None:
    assert add_months(start, months, anchor_day=anchor) == expected


def test_twelve_monthly_renewals_of_a_31st_stay_on_month_ends() -> None:
    moment = at(2027, 1, 31)
    ends = []
    for _ in range(12):
        moment = add_months(moment, 1, anchor_day=31)
        ends.append(moment.day)
    assert ends == [28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31]


def test_lead_is_the_larger_of_method_and_kind() -> None:
    settings = Settings()
    assert lead_days(settings, kind="hosting", method_type="card") == 7
    assert lead_days(settings, kind="domain", method_type="card") == 14
    assert lead_days(settings, kind="hosting", method_type="sepa_debit") == 21
    assert lead_days(settings, kind="domain", method_type=None) == 14
    expires = at(2027, 3, 1)
    assert next_charge_at(settings, expires_at=expires, kind="hosting", method_type="card") == at(
        2027, 2, 22
    )


def test_a_sepa_lead_shorter_than_prenotification_is_refused_at_startup() -> None:
    with pytest.raises(ConfigurationError, match="LEAD_DAYS_SEPA"):
        Settings(renewal_lead_days_sepa=10).check()
    Settings(renewal_lead_days_sepa=19).check()
    with pytest.raises(ConfigurationError):
        Settings(sepa_prenotification_days=20).check()


@pytest.mark.parametrize("kind", ["domain", "hosting", "mailbox"])
@pytest.mark.parametrize("method_type", ["card", "sepa_debit"])
def test_the_sql_due_test_agrees_with_next_charge_at(kind: str, method_type: str) -> None:
    settings = Settings(renewal_lead_days_by_kind={"domain": 14, "mailbox": 3})
    now = at(2027, 3, 1)
    engine = create_engine("sqlite://")
    with engine.connect() as connection:
        for days in range(30):
            for hours in (-1, 0, 1):
                expires_at = now.replace(hour=12) + timedelta(days=days, hours=hours)
                reached = charge_date_reached(
                    settings,
                    now.replace(hour=12),
                    expires_at=literal(expires_at, UTCDateTime()),
                    kind=literal(kind),
                    method_type=literal(method_type),
                )
                charge_at = next_charge_at(
                    settings, expires_at=expires_at, kind=kind, method_type=method_type
                )
                expected = charge_at <= now.replace(hour=12)
                assert bool(connection.execute(select(reached)).scalar_one()) is expected, (
                    f"{kind} by {method_type} expiring in {days}d{hours:+}h"
                )
