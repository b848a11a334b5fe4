from __future__ import annotations

from datetime import date

import pytest

from app.core.errors import Unprocessable
from app.sepa.sequence import (
    SequenceType,
    add_months,
    ensure_mandate_usable,
    is_mandate_lapsed,
    mandate_lapses_on,
    requires_new_mandate,
    sequence_type,
)


def test_first_collection_is_frst_then_rcur() -> None:
    assert sequence_type(mandate_used=False) is SequenceType.FIRST
    assert sequence_type(mandate_used=True) is SequenceType.RECURRING
    assert SequenceType.FIRST == "FRST" and SequenceType.RECURRING == "RCUR"


def test_frst_is_optional_when_configured() -> None:
    assert sequence_type(mandate_used=False, first_as_recurring=True) is SequenceType.RECURRING
    assert sequence_type(mandate_used=True, first_as_recurring=True) is SequenceType.RECURRING


def test_a_series_of_collections() -> None:
    # FRST rejected before settlement → FRST again; settled → RCUR from then on, even
    # when a later one is returned.
    used = False
    seen = []
    for outcome in ("rejected", "settled", "returned", "settled"):
        seen.append(sequence_type(mandate_used=used))
        used = used or outcome in ("settled", "returned")
    assert seen == ["FRST", "FRST", "RCUR", "RCUR"]


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 11, 24), 36, date(2029, 11, 24)),
        (date(2024, 2, 29), 36, date(2027, 2, 28)),
        (date(2024, 2, 29), 48, date(2028, 2, 29)),
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2026, 12, 15), 1, date(2027, 1, 15)),
        (date(2026, 3, 31), -1, date(2026, 2, 28)),
    ],
)
def test_add_months_clamps_to_the_month_end(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


def test_mandate_lapses_36_months_after_its_last_use() -> None:
    signed = date(2020, 5, 10)
    assert mandate_lapses_on(signed, None) == date(2023, 5, 10)
    assert mandate_lapses_on(signed, date(2024, 1, 15)) == date(2027, 1, 15)
    assert not is_mandate_lapsed(signed, date(2024, 1, 15), date(2027, 1, 14))
    assert is_mandate_lapsed(signed, date(2024, 1, 15), date(2027, 1, 15))
    assert is_mandate_lapsed(signed, None, date(2023, 5, 10))


def test_lapsed_mandate_is_refused_with_a_code() -> None:
    ensure_mandate_usable(date(2025, 1, 1), date(2026, 1, 1), date(2028, 12, 31))
    with pytest.raises(Unprocessable) as caught:
        ensure_mandate_usable(date(2025, 1, 1), date(2026, 1, 1), date(2029, 1, 1))
    assert caught.value.code == "mandate_lapsed"
    assert "2029-01-01" in caught.value.detail


def test_collection_before_signature_is_refused() -> None:
    with pytest.raises(Unprocessable) as caught:
        ensure_mandate_usable(date(2026, 12, 1), None, date(2026, 11, 30))
    assert caught.value.code == "mandate_not_yet_signed"


def test_a_changed_iban_needs_a_new_mandate() -> None:
    assert not requires_new_mandate("DE89 3704 0044 0532 0130 00", "de89370400440532013000")
    assert requires_new_mandate("DE89370400440532013000", "FR1420041010050500013M02606")
