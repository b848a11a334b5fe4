from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from app.core.errors import Unprocessable
from app.core.target2 import (
    add_business_days,
    collection_date_for,
    earliest_collection_date,
    is_business_day,
    latest_collection_date,
    next_business_day,
    previous_business_day,
    roll_forward,
    submission_deadline,
)


@pytest.mark.parametrize(
    "closed",
    [
        date(2026, 1, 1),  # New Year's Day (Thursday)
        date(2026, 4, 3),  # Good Friday
        date(2026, 4, 6),  # Easter Monday
        date(2026, 5, 1),  # Labour Day (Friday)
        date(2026, 12, 25),  # Christmas (Friday)
        date(2027, 3, 26),  # Good Friday 2027
        date(2027, 3, 29),  # Easter Monday 2027
        date(2028, 12, 26),  # Christmas holiday (Tuesday)
        date(2026, 11, 28),  # Saturday
        date(2026, 11, 29),  # Sunday
    ],
)
def test_target2_closing_days_and_weekends_are_not_business_days(closed: date) -> None:
    assert not is_business_day(closed)


@pytest.mark.parametrize(
    "open_day",
    [
        date(2026, 4, 2),  # Maundy Thursday
        date(2026, 4, 7),  # the Tuesday after Easter
        date(2026, 12, 24),  # Christmas Eve
        date(2026, 12, 31),  # New Year's Eve
        date(2025, 10, 3),  # German Unity Day: a national holiday, not a T2 one
        date(2026, 11, 24),  # an ordinary Tuesday
    ],
)
def test_national_holidays_and_eves_are_business_days(open_day: date) -> None:
    assert is_business_day(open_day)


def test_easter_weekend_is_skipped_both_ways() -> None:
    # Thursday 2 April 2026 → Tuesday 7 April (Good Friday, weekend, Easter Monday closed).
    assert next_business_day(date(2026, 4, 2)) == date(2026, 4, 7)
    assert previous_business_day(date(2026, 4, 7)) == date(2026, 4, 2)
    assert add_business_days(date(2026, 4, 2), 1) == date(2026, 4, 7)
    assert add_business_days(date(2026, 4, 7), -1) == date(2026, 4, 2)


def test_christmas_and_new_year_across_the_year_end() -> None:
    # Thursday 24 Dec 2026; 25 (Fri) closed, weekend, Monday 28 open.
    assert next_business_day(date(2026, 12, 24)) == date(2026, 12, 28)
    # Thursday 31 Dec 2026 → 1 Jan 2027 closed (Friday), weekend → Monday 4 Jan 2027.
    assert next_business_day(date(2026, 12, 31)) == date(2027, 1, 4)
    assert previous_business_day(date(2027, 1, 4)) == date(2026, 12, 31)
    assert add_business_days(date(2026, 12, 23), 3) == date(2026, 12, 29)
    # 2027: 25 and 26 Dec fall on the weekend; T2 does not shift them to Monday.
    assert is_business_day(date(2027, 12, 27))


def test_labour_day() -> None:
    # Thursday 30 April 2026 → Monday 4 May (1 May is a Friday).
    assert next_business_day(date(2026, 4, 30)) == date(2026, 5, 4)


def test_roll_forward_and_zero_steps() -> None:
    assert roll_forward(date(2026, 11, 24)) == date(2026, 11, 24)
    assert roll_forward(date(2026, 11, 28)) == date(2026, 11, 30)
    assert add_business_days(date(2026, 11, 28), 0) == date(2026, 11, 28)
    assert add_business_days(date(2026, 11, 28), 1) == date(2026, 11, 30)


def test_submission_deadline_is_lead_business_days_before() -> None:
    assert submission_deadline(date(2026, 4, 7)) == date(2026, 4, 2)  # over Easter
    assert submission_deadline(date(2027, 1, 4), 2) == date(2026, 12, 30)
    assert submission_deadline(date(2026, 11, 24), 0) == date(2026, 11, 24)


def test_submission_deadline_refuses_a_closed_day() -> None:
    with pytest.raises(Unprocessable) as caught:
        submission_deadline(date(2026, 12, 25))
    assert caught.value.code == "collection_date_not_business_day"
    assert "2026-12-28" in caught.value.detail


def test_earliest_date_respects_the_prenotification_period() -> None:
    # Tuesday 24 Nov 2026 + 14 days = Tuesday 8 Dec 2026, a business day.
    assert earliest_collection_date(date(2026, 11, 24)) == date(2026, 12, 8)
    # + 14 days lands on Christmas (Fri 25 Dec 2026) → rolls to Monday 28 Dec.
    assert earliest_collection_date(date(2026, 12, 11)) == date(2026, 12, 28)
    # ... on New Year's Day 2027 (Friday) → Monday 4 January 2027.
    assert earliest_collection_date(date(2026, 12, 18)) == date(2027, 1, 4)
    # ... on Easter Monday 2027 (29 March) → Tuesday 30 March.
    assert earliest_collection_date(date(2027, 3, 15)) == date(2027, 3, 30)


def test_earliest_date_respects_the_bank_submission_lead() -> None:
    # A short agreed notice (1 day): the file must still reach the bank a business day
    # before. Thursday 2 April 2026: tomorrow is Good Friday, so the first possible
    # collection is Tuesday 7 April (file submitted on Thursday 2 April).
    assert earliest_collection_date(date(2026, 4, 2), 1, 1) == date(2026, 4, 7)
    assert submission_deadline(date(2026, 4, 7), 1) >= date(2026, 4, 2)
    # On a Saturday, D-2: Monday is the first submission day, so Wednesday.
    assert earliest_collection_date(date(2026, 11, 28), 0, 2) == date(2026, 12, 2)
    # No notice and no lead: today if it is a business day.
    assert earliest_collection_date(date(2026, 11, 24), 0, 0) == date(2026, 11, 24)


def test_the_earliest_date_always_satisfies_every_rule() -> None:
    today = date(2026, 12, 1)
    for _ in range(500):  # every start day through Easter 2028
        for notice, lead in ((14, 1), (2, 1), (0, 3), (5, 2)):
            chosen = earliest_collection_date(today, notice, lead)
            assert is_business_day(chosen)
            assert chosen >= today + timedelta(days=notice)
            assert submission_deadline(chosen, lead) >= today
            # and it is the first such day
            earlier = previous_business_day(chosen)
            assert earlier < today + timedelta(days=notice) or (
                add_business_days(earlier, -lead) < today
            )
        today += timedelta(days=1)


def test_collection_date_falls_before_expiry() -> None:
    expires = datetime(2026, 12, 24, 0, 0, tzinfo=UTC)
    assert collection_date_for(expires, date(2026, 11, 24)) == date(2026, 12, 8)
    assert latest_collection_date(expires) == date(2026, 12, 23)
    # the last possible start: 9 Dec + 14 = 23 Dec
    assert collection_date_for(expires, date(2026, 12, 9)) == date(2026, 12, 23)


def test_expiry_day_itself_is_too_late() -> None:
    expires = datetime(2026, 12, 8, 23, 59, tzinfo=UTC)
    with pytest.raises(Unprocessable) as caught:
        collection_date_for(expires, date(2026, 11, 24))
    assert caught.value.code == "no_collection_date"
    assert caught.value.extra == {"earliest": "2026-12-08", "latest": "2026-12-07"}


def test_expiry_is_read_in_utc() -> None:
    # 9 Dec 00:30 in Berlin is still 8 Dec in UTC: the 8th is the expiry day.
    berlin = timezone(timedelta(hours=1))
    expires = datetime(2026, 12, 9, 0, 30, tzinfo=berlin)
    with pytest.raises(Unprocessable):
        collection_date_for(expires, date(2026, 11, 24))


def test_expiry_right_after_easter_leaves_no_date() -> None:
    # Expires Tuesday 7 April 2026: the last business day before is Thursday 2 April.
    expires = datetime(2026, 4, 7, 12, tzinfo=UTC)
    assert latest_collection_date(expires) == date(2026, 4, 2)
    assert collection_date_for(expires, date(2026, 3, 19)) == date(2026, 4, 2)
    with pytest.raises(Unprocessable):
        collection_date_for(expires, date(2026, 3, 20))


def test_settings_like_parameters() -> None:
    expires = datetime(2026, 12, 24, tzinfo=UTC)
    assert collection_date_for(
        expires, date(2026, 11, 24), prenotification_days=5, submission_lead_business_days=2
    ) == date(2026, 11, 30)


def test_bad_parameters_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="prenotification_days"):
        earliest_collection_date(date(2026, 11, 24), -1)
    with pytest.raises(ValueError, match="timezone-aware"):
        latest_collection_date(datetime(2026, 12, 24))
