"""Public identifiers: a short type prefix and a random, URL-safe body (`pm_…`, `ren_…`)."""

from __future__ import annotations

import os
import threading

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
# Random bytes become characters through a 256-entry table: byte b is _ALPHABET[b % 36] for
# b below 252 (seven times 36), and the four bytes above are dropped, so every character is
# equally likely. One C-level pass over many bytes: a sweep makes three ids per renewal,
# and doing the base-36 arithmetic in Python cost a tenth of the sweep's CPU.
_USABLE = len(_ALPHABET) * (256 // len(_ALPHABET))
_TABLE = bytes(ord(_ALPHABET[b % len(_ALPHABET)]) for b in range(_USABLE)) + bytes(256 - _USABLE)
_DROPPED = bytes(range(_USABLE, 256))


class _Characters:
    """Random characters drawn from the OS a few kilobytes at a time (one call per id cost
    3 % of a sweep), each handed out once. A lock, as ids are also made in threads; a
    forked child starts empty, or parent and child would hand out the same characters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drawn = b""
        self._next = 0

    def take(self, count: int) -> bytes:
        with self._lock:
            while self._next + count > len(self._drawn):  # a dropped byte is 1 in 64
                fresh = os.urandom(max(4096, count * 2)).translate(_TABLE, _DROPPED)
                self._drawn, self._next = self._drawn[self._next :] + fresh, 0
            start, self._next = self._next, self._next + count
            return self._drawn[start : self._next]

    def forget(self) -> None:
        # A new lock too: one another thread held at the fork stays held in the child.
        self._lock = threading.Lock()
        self._drawn, self._next = b"", 0


_characters = _Characters()
os.register_at_fork(after_in_child=_characters.forget)


def new_id(prefix: str, length: int = 24) -> str:
    return f"{prefix}_{_characters.take(length).decode('ascii')}"
