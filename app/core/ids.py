"""Public identifiers: a short type prefix and a random, URL-safe body (`pm_…`, `ren_…`)."""

from __future__ import annotations

import secrets

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_id(prefix: str, length: int = 24) -> str:
    # One draw of a uniform number below 36**length, written in base 36: the same ids as
    # choosing each character at random, for one call into the OS's randomness instead of
    # one per character (a sweep makes several ids per renewal).
    value = secrets.randbelow(len(_ALPHABET) ** length)
    body = []
    for _ in range(length):
        value, digit = divmod(value, len(_ALPHABET))
        body.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(body)}"
