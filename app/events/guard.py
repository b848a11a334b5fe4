"""Refuse event data that carries a secret.

Events leave the service (webhooks) and stay in its history for years, so a leaked card
number or IBAN there cannot be taken back. The payload models already hold only masked
fields; this is the last check before the row is written, and it fails loudly because a
hit is always a bug in the emitter.
"""

from __future__ import annotations

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


def _texts(value: Any, into: list[str]) -> None:
    """Every string and integer in `value` (forbidden keys refused on the way): the quick
    pass, without the paths `_walk` builds for the error message."""
    if isinstance(value, dict):
        for key, item in value.items():
            if item is not None and str(key).lower() in _FORBIDDEN_KEYS and item != "":
                raise UnsafeEventData(f"event data may not carry a field named {key!r}")
            _texts(item, into)
    elif isinstance(value, list | tuple):
        for item in value:
            _texts(item, into)
    elif isinstance(value, str):
        into.append(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        into.append(str(value))


def check_no_secrets(data: dict[str, Any]) -> None:
    # A renewal sweep checks thousands of payloads a second, nearly all clean: one scan of
    # all their text first. A newline cannot be part of either pattern, so joining the texts
    # with it neither makes nor breaks a match; any candidate gets the full check below.
    texts: list[str] = []
    _texts(data, texts)
    joined = "\n".join(texts)
    if _DIGIT_RUN.search(joined) is None and _IBAN.search(joined) is None:
        return
    for path, text in _walk(data, "data"):
        for match in _DIGIT_RUN.finditer(text):
            digits = re.sub(r"[ -]", "", match.group())
            if _luhn_ok(digits):
                raise UnsafeEventData(f"{path} looks like a card number")
        for match in _IBAN.finditer(text):
            candidate = match.group().replace(" ", "").upper()
            if _is_iban(candidate):
                raise UnsafeEventData(f"{path} looks like a full IBAN")
