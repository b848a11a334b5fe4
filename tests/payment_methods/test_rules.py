"""Startup checks for keys and the creditor identifier; the crypto and SEPA text helpers."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from app.core.crypto import DecryptionError, FieldCipher, cipher_from_settings
from app.core.keys import decode_key
from app.core.settings import ConfigurationError, Settings
from app.core.settings_checks import check_settings
from app.payment_methods.sepa_rules import (
    creditor_id_problem,
    new_mandate_reference,
    to_sepa_text,
)

KEY_A = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE="  # 32 x "a"
KEY_B = "YmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmI="  # 32 x "b"


@pytest.mark.parametrize(
    "creditor_id", ["ES59ZZZX1234567L", "ES11000B12345674", "DE98ZZZ09999999999"]
)
def test_well_formed_creditor_identifiers(creditor_id: str) -> None:
    assert creditor_id_problem(creditor_id) is None


@pytest.mark.parametrize(
    ("creditor_id", "problem"),
    [
        ("ES58ZZZX1234567L", "check digits"),
        ("ES59ZZZX1234567", "9-character"),
        ("es59zzzx1234567l", "look like"),
        ("ES59", "look like"),
    ],
)
def test_malformed_creditor_identifiers(creditor_id: str, problem: str) -> None:
    assert problem in (creditor_id_problem(creditor_id) or "")


def test_the_business_code_is_left_out_of_the_check_digits() -> None:
    assert creditor_id_problem("ES59ABCX1234567L") is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"encryption_key": SecretStr("c2hvcnQ=")}, "ENCRYPTION_KEY must be base64 of 32"),
        ({"encryption_key": SecretStr("not base64 at all!")}, "ENCRYPTION_KEY is not valid"),
        ({"encryption_old_keys": {"k1": SecretStr(KEY_A)}}, "reuses the current key id"),
        ({"encryption_old_keys": {"k0": SecretStr("eA==")}}, "OLD_KEYS[k0]"),
        ({"sepa_creditor_id": "ES58ZZZX1234567L"}, "SEPA_CREDITOR_ID has wrong check"),
        ({"sepa_creditor_name": "王"}, "SEPA_CREDITOR_NAME"),
        ({"trusted_proxies": ["10.0.0.0/33"]}, "TRUSTED_PROXIES"),
    ],
)
def test_startup_refuses_bad_sepa_and_key_settings(
    override: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[")):
        check_settings(Settings(**override))  # type: ignore[arg-type]


def test_keys_in_either_base64_alphabet() -> None:
    raw = bytes(range(250, 256)) * 5 + b"\xfb\xff"
    import base64

    assert decode_key(base64.b64encode(raw).decode()) == raw
    assert decode_key(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw


def test_seal_open_and_rotate() -> None:
    old = FieldCipher("k1", {"k1": decode_key(KEY_A)})
    sealed = old.seal("ES9121000418450200051332", associated_data=b"pm_1")
    assert sealed.key_id == "k1" and b"ES91" not in sealed.data
    assert old.seal("x", associated_data=b"a").data != old.seal("x", associated_data=b"a").data

    new = FieldCipher("k2", {"k2": decode_key(KEY_B), "k1": decode_key(KEY_A)})
    assert new.open(sealed, associated_data=b"pm_1") == "ES9121000418450200051332"
    with pytest.raises(DecryptionError):
        new.open(sealed, associated_data=b"pm_2")
    with pytest.raises(DecryptionError):
        FieldCipher("k2", {"k2": decode_key(KEY_B)}).open(sealed, associated_data=b"pm_1")

    value = "ES9121000418450200051332"
    assert old.fingerprint(value, purpose="iban") in new.fingerprints(value, purpose="iban")
    assert new.fingerprints(value, purpose="iban")[0] == new.fingerprint(value, purpose="iban")
    assert new.fingerprint(value, purpose="iban") != new.fingerprint(value, purpose="other")


def test_cipher_from_settings_uses_the_current_key() -> None:
    settings = Settings(
        encryption_key=SecretStr(KEY_B),
        encryption_key_id="k2",
        encryption_old_keys={"k1": SecretStr(KEY_A)},
    )
    cipher = cipher_from_settings(settings)
    assert cipher.current_key_id == "k2" and cipher.key_ids == {"k1", "k2"}


@pytest.mark.parametrize(
    ("given", "converted"),
    [
        ("Zoë O\u2019Brien", "Zoe O'Brien"),
        ("Ærø  Ltd.\t", "AEro Ltd."),
        ("Łódź Sp. z o.o.", "Lodz Sp. z o.o."),
        ("Peña & Hijos_S.L.", "Pena + Hijos-S.L."),
    ],
)
def test_names_are_converted_to_the_sepa_set(given: str, converted: str) -> None:
    assert to_sepa_text(given) == (converted, set())


def test_unconvertible_characters_are_reported() -> None:
    assert to_sepa_text("Ivan Иванов")[1] == set("Иванов")
    assert to_sepa_text("a@b")[1] == {"@"}


def test_mandate_references() -> None:
    references = {new_mandate_reference() for _ in range(200)}
    assert len(references) == 200
    for reference in references:
        assert len(reference) <= 35 and reference == reference.upper()
        assert to_sepa_text(reference) == (reference, set())
