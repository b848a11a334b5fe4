from __future__ import annotations

import pytest

from app.sepa.charset import creditor_identifier_problem, reference_problem, to_sepa_text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Müller & Söhne", "Mueller + Soehne"),
        ("Łódź  Żółć", "Lodz Zolc"),
        ("François d'Été", "Francois d'Ete"),
        ("under_score #7 * 100%", "under-score 7 100"),
        ("ÆØÅ æøå", "AEOA aeoa"),
        ("日本", "Ri Ben"),
        ("\t\n ", ""),
    ],
)
def test_text_is_transliterated_to_the_sepa_set(value: str, expected: str) -> None:
    assert to_sepa_text(value, 140) == expected


def test_text_is_cut_without_a_trailing_space() -> None:
    assert to_sepa_text("abc def", 4) == "abc"


@pytest.mark.parametrize("value", ["ren-abc123", "A/B", "MNDT-2026-0001", "(x) 1.2,3?:'+"])
def test_good_references(value: str) -> None:
    assert reference_problem(value) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "1 to 35"),
        ("x" * 36, "1 to 35"),
        ("ren_1", "may only contain"),
        ("réf", "may only contain"),
        (" ren-1", "space"),
        ("ren-1/", "'/'"),
        ("a//b", "'//'"),
    ],
)
def test_bad_references(value: str, problem: str) -> None:
    assert problem in (reference_problem(value) or "")


@pytest.mark.parametrize(
    "value", ["DE98ZZZ09999999999", "FR72ZZZ123456", "AT61ZZZ01234567890", "DE98ABC09999999999"]
)
def test_valid_creditor_identifiers(value: str) -> None:
    # The business code (ZZZ here) is outside the check digits.
    assert creditor_identifier_problem(value) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("DE97ZZZ09999999999", "check digits"),
        ("de98ZZZ09999999999", "country code"),
        ("DE98zzz09999999999", "capitals"),
        ("DE98ZZZ", "8 to 35"),
        ("DE98 ZZZ 0999999999", "letters and digits"),
        ("1298ZZZ09999999999", "country code"),
    ],
)
def test_invalid_creditor_identifiers(value: str, problem: str) -> None:
    assert problem in (creditor_identifier_problem(value) or "")
