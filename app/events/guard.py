"""Refuse event data that carries a secret.

Events leave the service (webhooks) and stay in its history for years, so a leaked card
number or IBAN there cannot be taken back. The payload models already hold only masked
fields; this is the last check before the row is written, and it fails loudly because a
hit is always a bug in the emitter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

# Digit runs of card-number length, allowing the spaces and dashes people type.
_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
# Country code, two check digits, then the BBAN (spaces allowed, any case).
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}(?:[ ]?[A-Za-z0-9]){11,30}(?![A-Za-z0-9])")
_FORBIDDEN_KEYS = frozenset(
    {"iban", "card_number", "number", "pan", "cvc", "cvv", "cvc2", "password", "secret"}
)


class UnsafeEventData(ValueError):
    """The data of an event looks like it contains a card number, an IBAN or a secret."""


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _is_iban(candidate: str) -> bool:
    # schwifty checks the country's length and BBAN format as well as mod 97: a SEPA
    # creditor identifier (ES11000B12345674) passes mod 97 too, but is public and no IBAN.
    try:
        IBAN(candidate)
    except SchwiftyException:
        return False
    return True


def _walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).lower() in _FORBIDDEN_KEYS and item not in (None, ""):
                raise UnsafeEventData(f"event data may not carry a field named {key!r}")
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")
    elif isinstance(value, str | int) and not isinstance(value, bool):
        yield path, str(value)


# The quick check works on the payload's JSON text, reduced by byte tables (C code end to
# end: the two patterns' regular expressions cost ~20 ns a character in Python's engine).
# Digits become "0", everything else ".", spaces and dashes go: a card-number match holds
# thirteen digits with at most a space or dash between two, so it leaves thirteen "0" in a
# row. Letters become "a", digits "0", everything else ".": an IBAN match starts after a
# non-alphanumeric with two letters and two digits, so it leaves ".aa00".
_DIGITS = bytes(ord("0") if chr(b) in "0123456789" else ord(".") for b in range(256))
_ALPHANUMERIC = bytes(
    ord("0")
    if chr(b) in "0123456789"
    else ord("a")
    if chr(b).isascii() and chr(b).isalpha()
    else ord(".")
    for b in range(256)
)
_KEYS_IN_JSON = tuple(f'"{key}"' for key in sorted(_FORBIDDEN_KEYS))


def _may_hold_a_secret(text: str) -> bool:
    """False only when the walk below cannot find anything in the JSON `text`: True for
    every payload it refuses, and for a few it lets through (keys and numbers look like
    text here)."""
    # In JSON without backslashes every string appears verbatim between quotes; an escape
    # ("\n", or "\u00e9" from an encoder that writes ASCII only) could glue a letter to an
    # IBAN and hide it from the tables.
    if "\\" in text:
        return True
    lowered = text.lower()  # what the walk compares keys with, key by key
    for key in _KEYS_IN_JSON:
        if key in lowered:
            return True
    encoded = text.encode()
    return b"0" * 13 in encoded.translate(_DIGITS, b" -") or b".aa00" in (
        b"." + encoded.translate(_ALPHANUMERIC)
    )


def check_no_secrets(data: dict[str, Any]) -> None:
    check_no_secrets_in_json(json.dumps(data, ensure_ascii=False))


def check_no_secrets_in_json(text: str) -> None:
    """`check_no_secrets` for data already encoded (an event's payload is encoded once, to
    be checked and written)."""
    # A renewal sweep checks thousands of payloads a second, nearly all clean: a quick look
    # at all of it first, and the walk, which names the field, only for a candidate.
    if not _may_hold_a_secret(text):
        return
    for path, value in _walk(json.loads(text), "data"):
        for match in _DIGIT_RUN.finditer(value):
            digits = re.sub(r"[ -]", "", match.group())
            if _luhn_ok(digits):
                raise UnsafeEventData(f"{path} looks like a card number")
        for match in _IBAN.finditer(value):
            candidate = match.group().replace(" ", "").upper()
            if _is_iban(candidate):
                raise UnsafeEventData(f"{path} looks like a full IBAN")
