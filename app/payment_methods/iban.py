"""IBAN checking with schwifty, with a stable reason code for each way an IBAN is wrong.

Checks, in order: characters, known country, length, BBAN structure, IBAN check digits
(02 to 98, ISO 7064 mod 97-10), then the national check digits where the country defines an
algorithm (Spain's two CCC digits among them: an IBAN can pass mod 97 and still be wrong).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

from schwifty import IBAN, registry
from schwifty.exceptions import (
    InvalidBBANChecksum,
    InvalidChecksumDigits,
    InvalidCountryCode,
    InvalidLength,
    InvalidStructure,
    NationalChecksumNotVerified,
    SchwiftyException,
)

_SEPARATORS = re.compile(r"[\s\-.]+")
_ALNUM = re.compile(r"^[A-Z0-9]+$")
_PREFIX = re.compile(r"^[A-Z]{2}[0-9]{2}")


@dataclass(frozen=True)
class IbanCheck:
    valid: bool
    reason: str | None = None
    iban: str | None = None  # electronic format, only when valid
    country_code: str | None = None
    sepa: bool | None = None
    bank_code: str | None = None
    bic: str | None = None
    bank_name: str | None = None


def normalise(value: str) -> str:
    """Electronic format: no spaces, hyphens or dots, upper case, no leading "IBAN"."""
    compact = _SEPARATORS.sub("", value).upper()
    return compact.removeprefix("IBAN")


def mask(iban: str) -> str:
    """`ES91 **** **** **** **** 1332`: country and check digits, then the last four."""
    middle = max(len(iban) - 8, 0)
    stars = " ".join(["****"] * -(-middle // 4))
    return f"{iban[:4]} {stars} {iban[-4:]}" if stars else f"{iban[:4]} {iban[-4:]}"


def _invalid(reason: str, country_code: str | None = None) -> IbanCheck:
    return IbanCheck(valid=False, reason=reason, country_code=country_code)


def check_iban(value: str) -> IbanCheck:
    compact = normalise(value)
    if not compact:
        return _invalid("invalid_length")
    if not _ALNUM.match(compact):
        return _invalid("invalid_characters")
    country_code = compact[:2]
    try:
        spec = registry.get_iban_spec(country_code)
    except InvalidCountryCode:
        return _invalid("invalid_country")
    if not _PREFIX.match(compact):
        return _invalid("invalid_format", country_code)
    iban = IBAN(compact, allow_invalid=True)
    try:
        iban.validate()
    except InvalidLength:
        return _invalid("invalid_length", country_code)
    except InvalidStructure:
        return _invalid("invalid_format", country_code)
    except InvalidChecksumDigits:
        return _invalid("invalid_checksum", country_code)
    except SchwiftyException:
        # Never re-raised: schwifty's messages quote the IBAN.
        return _invalid("invalid_format", country_code)
    try:
        with warnings.catch_warnings():
            # Countries with national check digits but no algorithm in schwifty pass
            # unverified; that is expected, not a warning for our logs.
            warnings.simplefilter("ignore", NationalChecksumNotVerified)
            iban.bban.validate_national_checksum()
    except InvalidBBANChecksum:
        return _invalid("invalid_national_checksum", country_code)
    except SchwiftyException:
        return _invalid("invalid_format", country_code)
    bank = iban.bank
    bic = iban.bic
    return IbanCheck(
        valid=True,
        iban=str(iban),
        country_code=country_code,
        sepa=spec.in_sepa_zone,
        bank_code=iban.bank_code or None,
        bic=str(bic) if bic is not None else (bank.bic if bank is not None else None) or None,
        bank_name=" ".join(bank.name.split()) if bank is not None else None,
    )
