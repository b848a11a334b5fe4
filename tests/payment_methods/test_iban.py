"""IBAN checks: reason codes, Spanish CCC digits, masking, and properties over every SEPA
country built from schwifty's registry."""

from __future__ import annotations

import random
import warnings

import pycountry
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from schwifty import IBAN, registry
from schwifty.exceptions import InvalidCountryCode

from app.payment_methods.iban import check_iban, mask, normalise


def _sepa_countries() -> list[str]:
    codes = []
    for country in pycountry.countries:
        try:
            spec = registry.get_iban_spec(country.alpha_2)
        except InvalidCountryCode:
            continue
        if spec.in_sepa_zone:
            codes.append(country.alpha_2)
    return sorted(codes)


SEPA = _sepa_countries()
REASONS = {
    "invalid_characters",
    "invalid_country",
    "invalid_length",
    "invalid_format",
    "invalid_checksum",
    "invalid_national_checksum",
}


def _random_iban(country: str, rng: random.Random) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return str(IBAN.random(country, random=rng))


@st.composite
def sepa_ibans(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(SEPA))
    return _random_iban(country, draw(st.randoms(use_true_random=False)))


def test_the_registry_knows_the_sepa_scheme() -> None:
    assert {"ES", "DE", "FR", "IT", "PT", "NL", "GB", "CH", "NO"} <= set(SEPA)
    assert len(SEPA) >= 36


@pytest.mark.parametrize(
    ("given_", "electronic", "bank"),
    [
        ("ES91 2100 0418 4502 0005 1332", "ES9121000418450200051332", "CAIXABANK, S.A."),
        ("es91-2100-0418-4502-0005-1332", "ES9121000418450200051332", "CAIXABANK, S.A."),
        ("IBAN DE89 3704 0044 0532 0130 00", "DE89370400440532013000", "Commerzbank"),
        ("  nl91abna0417164300 ", "NL91ABNA0417164300", "ABN AMRO BANK N.V."),
    ],
)
def test_valid_ibans_in_any_spacing_and_case(given_: str, electronic: str, bank: str) -> None:
    check = check_iban(given_)
    assert check.valid and check.reason is None
    assert check.iban == electronic
    assert check.bank_name == bank and check.bic
    assert check.sepa is True


@pytest.mark.parametrize(
    ("given_", "reason"),
    [
        ("", "invalid_length"),
        ("ES91 2100 0418 4502 0005 133!", "invalid_characters"),
        ("ÉS9121000418450200051332", "invalid_characters"),
        ("XX9121000418450200051332", "invalid_country"),
        ("US64SVBKUS6S3300958879", "invalid_country"),
        ("ES912100041845020005133", "invalid_length"),
        ("ES91210004184502000513321", "invalid_length"),
        ("ESAB21000418450200051332", "invalid_format"),
        ("ES91210004184502000513X2", "invalid_format"),
        ("ES9121000418450200051333", "invalid_checksum"),
        ("ES0021000418450200051332", "invalid_checksum"),
        ("ES9921000418450200051332", "invalid_checksum"),
    ],
)
def test_each_way_of_being_wrong_has_its_reason(given_: str, reason: str) -> None:
    check = check_iban(given_)
    assert not check.valid
    assert check.reason == reason
    assert check.iban is None and check.bic is None and check.bank_name is None


def _spanish(bank: str, branch: str, ccc: str, account: str) -> str:
    return str(IBAN.from_bban("ES", bank + branch + ccc + account, allow_invalid=True))


def test_spanish_ccc_digits_are_checked_even_when_mod97_passes() -> None:
    good = _spanish("2100", "0418", "45", "0200051332")
    assert check_iban(good).valid
    for wrong in ("44", "54", "00", "99"):
        iban = _spanish("2100", "0418", wrong, "0200051332")
        assert IBAN(iban).is_valid  # the mod 97 check digits are right
        assert check_iban(iban).reason == "invalid_national_checksum"
    # Each CCC digit guards its half: the bank+branch, then the account number.
    assert check_iban(_spanish("2100", "0419", "45", "0200051332")).reason == (
        "invalid_national_checksum"
    )
    assert check_iban(_spanish("2100", "0418", "45", "0200051333")).reason == (
        "invalid_national_checksum"
    )


def test_masking_shows_country_check_digits_and_last_four() -> None:
    assert mask("ES9121000418450200051332") == "ES91 **** **** **** **** 1332"
    assert mask("NO9386011117947") == "NO93 **** **** 7947"
    assert mask("DE89370400440532013000") == "DE89 **** **** **** **** 3000"


def test_normalise() -> None:
    assert normalise(" es91 2100-0418.4502 0005 1332\n") == "ES9121000418450200051332"


@settings(max_examples=80, deadline=None)
@given(sepa_ibans())
def test_generated_ibans_of_every_sepa_country_are_valid(iban: str) -> None:
    check = check_iban(iban)
    assert check.valid, (iban, check.reason)
    assert check.iban == iban and check.country_code == iban[:2] and check.sepa
    # Spacing and case never matter.
    spaced = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)).lower()
    assert check_iban(spaced).iban == iban
    masked = mask(iban)
    assert masked.startswith(iban[:4]) and masked.endswith(iban[-4:])
    assert iban[4:-4] not in masked.replace(" ", "")


def _same_class_other(char: str, draw: st.DrawFn) -> str:
    alphabet = "0123456789" if char.isdigit() else "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return draw(st.sampled_from([c for c in alphabet if c != char]))


@settings(max_examples=80, deadline=None)
@given(sepa_ibans(), st.data())
def test_one_changed_character_is_caught(iban: str, data: st.DataObject) -> None:
    # Past the country code, a digit for another digit or a letter for another letter:
    # ISO 7064 mod 97-10 detects every such substitution.
    position = data.draw(st.integers(min_value=2, max_value=len(iban) - 1))
    other = _same_class_other(iban[position], data.draw)
    mutated = iban[:position] + other + iban[position + 1 :]
    check = check_iban(mutated)
    assert not check.valid
    assert check.reason in REASONS


@settings(max_examples=80, deadline=None)
@given(sepa_ibans(), st.data())
def test_swapped_neighbours_are_caught(iban: str, data: st.DataObject) -> None:
    # Neighbours in the number mod 97 sees: the two check digits, or two BBAN characters of
    # the same kind (digits, or letters).
    candidates = [2] + [
        i
        for i in range(4, len(iban) - 1)
        if iban[i] != iban[i + 1] and iban[i].isdigit() == iban[i + 1].isdigit()
    ]
    candidates = [i for i in candidates if iban[i] != iban[i + 1]]
    if not candidates:
        return
    i = data.draw(st.sampled_from(candidates))
    mutated = iban[:i] + iban[i + 1] + iban[i] + iban[i + 2 :]
    assert not check_iban(mutated).valid


@settings(max_examples=60, deadline=None)
@given(sepa_ibans(), st.data())
def test_a_missing_or_extra_character_is_caught(iban: str, data: st.DataObject) -> None:
    position = data.draw(st.integers(min_value=4, max_value=len(iban) - 1))
    shorter = iban[:position] + iban[position + 1 :]
    longer = iban[:position] + data.draw(st.sampled_from("0123456789")) + iban[position:]
    for mutated in (shorter, longer):
        check = check_iban(mutated)
        assert not check.valid and check.reason == "invalid_length"


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False), st.data())
def test_spanish_ibans_with_wrong_ccc_digits(rng: random.Random, data: st.DataObject) -> None:
    iban = _random_iban("ES", rng)
    bban = iban[4:]
    digits = bban[8:10]
    wrong = data.draw(st.integers(min_value=0, max_value=99).map(lambda n: f"{n:02d}"))
    if wrong == digits:
        return
    mutated = str(IBAN.from_bban("ES", bban[:8] + wrong + bban[10:], allow_invalid=True))
    assert check_iban(mutated).reason == "invalid_national_checksum"
