"""The SEPA character set, and the checks for the references a bank keys on.

The EPC implementation guidelines allow only the basic Latin set in SEPA messages:
a-z A-Z 0-9 / - ? : ( ) . , ' + and space. The ISO XSDs do not enforce it, banks do (a
file with an `&` or an `é` in a name can be rejected whole). Free text (names, remittance
information) is transliterated; references (end-to-end id, mandate reference, message and
payment-information ids, creditor identifier) are checked instead, because changing them
would break matching the bank's reports back to our records.
"""

from __future__ import annotations

import string

from text_unidecode import unidecode

SEPA_CHARACTERS = frozenset(string.ascii_letters + string.digits + "/-?:().,'+ ")

# German umlauts have a customary two-letter spelling, which reads better than the bare
# vowel a generic transliteration gives; `&` and `_` have close allowed neighbours.
_PREFERRED = str.maketrans(
    {"Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"}
    | {"&": "+", "_": "-"}
)

MAX_REFERENCE_LENGTH = 35


def to_sepa_text(value: str, max_length: int) -> str:
    """`value` in the SEPA character set: transliterated, disallowed characters dropped to
    spaces, runs of whitespace collapsed, cut to `max_length`."""
    latin = unidecode(value.translate(_PREFERRED))
    kept = "".join(char if char in SEPA_CHARACTERS else " " for char in latin)
    return " ".join(kept.split())[:max_length].rstrip()


def reference_problem(value: str) -> str | None:
    """Why `value` cannot be a SEPA reference (an `Max35Text` identifier), or None.

    EPC rules: 1 to 35 characters of the SEPA set, not starting or ending with `/`, no
    `//` inside. Leading or trailing spaces are refused too: banks strip them, and the
    reference would then no longer match ours.
    """
    if not value or len(value) > MAX_REFERENCE_LENGTH:
        return f"must be 1 to {MAX_REFERENCE_LENGTH} characters long"
    if any(char not in SEPA_CHARACTERS for char in value):
        return "may only contain a-z A-Z 0-9 / - ? : ( ) . , ' + and space"
    if value != value.strip():
        return "must not start or end with a space"
    if value.startswith("/") or value.endswith("/") or "//" in value:
        return "must not start or end with '/' or contain '//'"
    return None


def _letters_to_digits(value: str) -> str:
    return "".join(str(int(char, 36)) for char in value)


def creditor_identifier_problem(value: str) -> str | None:
    """Why `value` is not a valid SEPA creditor identifier, or None.

    Layout (EPC262-08): country code, two check digits, a three-character creditor
    business code that the check digits ignore, then the national identifier. The check
    digits are ISO 7064 MOD 97-10 over national identifier + country code + "00".
    """
    if not 8 <= len(value) <= MAX_REFERENCE_LENGTH or not value.isascii() or not value.isalnum():
        return "must be 8 to 35 letters and digits"
    country, check, national = value[:2], value[2:4], value[7:]
    if not (country.isalpha() and country.isupper() and check.isdigit()):
        return "must start with a country code and two check digits"
    if value != value.upper():
        return "must be written in capitals"
    expected = 98 - int(_letters_to_digits(national + country + "00")) % 97
    if int(check) != expected:
        return "has wrong check digits"
    return None
