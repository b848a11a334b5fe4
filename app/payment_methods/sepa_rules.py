"""Rules of the SEPA rulebook that do not depend on our data: the character set, the
creditor identifier, the mandate reference.

The SEPA basic Latin character set (EPC guidance on the use of character sets) is what
every bank in the scheme must accept in names and references: a-z A-Z 0-9 / - ? : ( ) . , '
+ and space. Names in other scripts or with accents are converted, not refused, when a
faithful transliteration exists.
"""

from __future__ import annotations

import re
import secrets
import unicodedata

from schwifty.checksum import ISO7064_mod97_10

SEPA_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ "
)

# Letters that Unicode decomposition does not reduce to a base letter.
_TRANSLITERATIONS = {
    "ß": "ss",
    "Æ": "AE",
    "æ": "ae",
    "Ø": "O",
    "ø": "o",
    "Œ": "OE",
    "œ": "oe",
    "Ł": "L",
    "ł": "l",
    "Đ": "D",
    "đ": "d",
    "Þ": "TH",
    "þ": "th",
    "&": "+",
    "\u2019": "'",
    "\u2018": "'",
    "\u00b4": "'",
    "`": "'",
    "\u2013": "-",
    "\u2014": "-",
    "_": "-",
}

_WHITESPACE = re.compile(r"\s+")
_CREDITOR_ID = re.compile(r"^([A-Z]{2})([0-9]{2})([A-Z0-9]{3})([A-Z0-9]{1,28})$")
_mod97 = ISO7064_mod97_10()

MANDATE_REFERENCE_MAX = 35
_REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read out on phones


def to_sepa_text(value: str) -> tuple[str, set[str]]:
    """`value` in the SEPA character set, and the characters that could not be converted."""
    collapsed = _WHITESPACE.sub(" ", value).strip()
    out: list[str] = []
    rejected: set[str] = set()
    for char in collapsed:
        char = _TRANSLITERATIONS.get(char, char)
        if all(c in SEPA_CHARACTERS for c in char):
            out.append(char)
            continue
        base = "".join(
            c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
        )
        if base and all(c in SEPA_CHARACTERS for c in base):
            out.append(base)
        else:
            rejected.add(char)
    return "".join(out), rejected


def creditor_id_check_digits(country_code: str, national_id: str) -> str:
    # ISO 7064 mod 97-10 over the national identifier and the country code; the 3-character
    # creditor business code is left out, so a creditor can use several of them.
    return _mod97.compute([national_id, country_code])


def creditor_id_problem(creditor_id: str) -> str | None:
    """Why this SEPA Creditor Identifier is malformed, or None."""
    match = _CREDITOR_ID.match(creditor_id)
    if match is None or len(creditor_id) > 35:
        return "must look like ES59ZZZX1234567L (country, check digits, business code, id)"
    country, digits, _business, national = match.groups()
    if country == "ES" and len(national) != 9:
        return "must carry a 9-character Spanish NIF"
    if creditor_id_check_digits(country, national) != digits:
        return "has wrong check digits"
    return None


def new_mandate_reference() -> str:
    """A Unique Mandate Reference: 35 characters at most, from the SEPA set, upper case so
    that uniqueness holds regardless of case. 20 random characters from a 32-letter
    alphabet make a collision negligible; the unique index turns one into a retry."""
    body = "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(20))
    return f"AR-{body}"
