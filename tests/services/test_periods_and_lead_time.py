"""Billing periods move from the previous expiry; lead times come from one rule."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from app.core.settings import ConfigurationError, Settings
from app.core.settings_checks import check_settings
from app.services.lead_time import (
    ChargePlan,
    card_charge,
    lead_days,
    next_charge_at,
    notice_at,
    plan_lead_days,
    sepa_collection,
)
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


def test_a_sepa_lead_shorter_than_its_notice_is_refused_at_startup() -> None:
    # The notice (15) plus the bank's day plus 4 spare days: 20.
    with pytest.raises(ConfigurationError, match="LEAD_DAYS_SEPA"):
        check_settings(Settings(renewal_lead_days_sepa=19))
    check_settings(Settings(renewal_lead_days_sepa=20))
    # Without the consumer notice, SEPA's own pre-notification (14) counts.
    check_settings(Settings(renewal_lead_days_sepa=19, renewal_notice_days=0))
    with pytest.raises(ConfigurationError):
        check_settings(Settings(renewal_lead_days_sepa=10, renewal_notice_days=0))
    with pytest.raises(ConfigurationError):
        check_settings(Settings(sepa_prenotification_days=20))


def test_a_card_is_announced_its_notice_before_its_lead() -> None:
    settings = Settings()
    expires = at(2027, 3, 31)
    assert plan_lead_days(settings, kind="hosting", method_type="card") == 7 + 15
    assert plan_lead_days(settings, kind="domain", method_type="card") == 14 + 15
    assert notice_at(settings, expires_at=expires, kind="hosting", method_type="card") == at(
        2027, 3, 9
    )
    # On time: the usual date, a full notice.
    on_time = card_charge(settings, expires_at=expires, kind="hosting", now=at(2027, 3, 9))
    assert on_time == ChargePlan(at(2027, 3, 24), "full")
    # Five days late: the charge moves five days later, the notice stays full.
    late = card_charge(settings, expires_at=expires, kind="hosting", now=at(2027, 3, 14))
    assert late == ChargePlan(at(2027, 3, 29), "full")
    # Ten days before expiry: no full notice fits; the last moment, a day before expiry.
    short = card_charge(settings, expires_at=expires, kind="hosting", now=at(2027, 3, 21))
    assert short == ChargePlan(at(2027, 3, 30), "short")
    # Past that moment (or past expiry, within grace): now.
    assert card_charge(settings, expires_at=expires, kind="hosting", now=at(2027, 4, 2)) == (
        ChargePlan(at(2027, 4, 2), "short")
    )
    # The customer's own act is the notice: the usual date, or now when it has passed.
    act = card_charge(
        settings, expires_at=expires, kind="hosting", now=at(2027, 3, 21), customer_act=True
    )
    assert act == ChargePlan(at(2027, 3, 24), "customer_act")
    assert card_charge(
        settings, expires_at=expires, kind="hosting", now=at(2027, 3, 26), customer_act=True
    ) == ChargePlan(at(2027, 3, 26), "customer_act")
    # Notice off: charged at the lead.
    off = Settings(renewal_notice_days=0)
    assert card_charge(off, expires_at=expires, kind="hosting", now=at(2027, 3, 21)) == (
        ChargePlan(at(2027, 3, 24), "full")
    )


def test_a_sepa_debit_is_collected_its_notice_after_its_announcement() -> None:
    settings = Settings()
    expires = datetime(2027, 3, 31, 10, 30, tzinfo=UTC)  # a Wednesday
    announced = notice_at(settings, expires_at=expires, kind="hosting", method_type="sepa_debit")
    assert announced.date() == date(2027, 3, 10)
    # 15 days' notice from 10 March is the 25th, a Thursday.
    usual = next_charge_at(settings, expires_at=expires, kind="hosting", method_type="sepa_debit")
    assert usual == datetime(2027, 3, 25, tzinfo=UTC)
    full = sepa_collection(
        settings, expires_at=expires, kind="hosting", today=date(2027, 3, 10), notice="full"
    )
    assert full == (date(2027, 3, 25), "full")
    # From the 16th, 15 days do not fit but SEPA's 14 do: the last day before expiry.
    short = sepa_collection(
        settings, expires_at=expires, kind="hosting", today=date(2027, 3, 16), notice="full"
    )
    assert short == (date(2027, 3, 30), "short")
    # From the 17th not even SEPA's 14 days fit.
    assert (
        sepa_collection(
            settings, expires_at=expires, kind="hosting", today=date(2027, 3, 17), notice="full"
        )
        is None
    )
    # The customer's act: SEPA's own period, not before the usual date; 14 days from the
    # 15th is Easter Monday 2027, when TARGET2 is closed.
    act = sepa_collection(
        settings, expires_at=expires, kind="hosting", today=date(2027, 3, 9), notice="customer_act"
    )
    assert act == (date(2027, 3, 25), "customer_act")
    act = sepa_collection(
        settings, expires_at=expires, kind="hosting", today=date(2027, 3, 15), notice="customer_act"
    )
    assert act == (date(2027, 3, 30), "customer_act")
