"""Encryption keys as they are configured: base64 text of 32 bytes.

Below both `settings.py` (which checks the configured keys at startup) and `crypto.py`
(which builds its ciphers from them), so neither has to import the other to read a key.
"""

from __future__ import annotations

import base64
import binascii

KEY_BYTES = 32


def decode_key(value: str) -> bytes:
    """A 32-byte key from its base64 text (standard or URL-safe alphabet)."""
    text = value.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("is not valid base64") from exc
    if len(raw) != KEY_BYTES:
        raise ValueError(f"must be base64 of {KEY_BYTES} bytes, got {len(raw)}")
    return raw


def key_problem(value: str) -> str | None:
    """Why this text is not a usable key, or None (for the startup checks)."""
    try:
        decode_key(value)
    except ValueError as exc:
        return str(exc)
    return None
