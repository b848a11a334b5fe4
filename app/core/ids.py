"""Public identifiers: a short type prefix and a random, URL-safe body (`pm_…`, `ren_…`)."""

from __future__ import annotations

import os

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
# Random bytes become characters through a 256-entry table: byte b is _ALPHABET[b % 36] for
# b below 252 (seven times 36), and the four bytes above are dropped, so every character is
# equally likely. One OS call and one C-level pass per id: a sweep makes three per renewal,
# and doing the base-36 arithmetic in Python cost a tenth of the sweep's CPU.
_USABLE = len(_ALPHABET) * (256 // len(_ALPHABET))
_TABLE = bytes(ord(_ALPHABET[b % len(_ALPHABET)]) for b in range(_USABLE)) + bytes(256 - _USABLE)
_DROPPED = bytes(range(_USABLE, 256))


def new_id(prefix: str, length: int = 24) -> str:
    body = b""
    while len(body) < length:
        # A few spare bytes, so that a redraw (every dropped byte is 1 in 64) is rare.
        body += os.urandom(length + 8).translate(_TABLE, _DROPPED)
    return f"{prefix}_{body[:length].decode('ascii')}"
