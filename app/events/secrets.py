"""Webhook signing secrets: generated here, shown once, encrypted at rest.

The dispatcher needs the plaintext to sign, so the secret cannot be hashed; it is sealed
with AES-GCM under the service's encryption key instead (a database dump alone does not
let anyone forge our webhooks). The key id is stored in front of each ciphertext so the
key can be rotated later.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.core.settings import Settings

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
# Binds the ciphertext to its purpose: an IBAN ciphertext cannot be replayed as a secret.
_AAD = b"autorenew:webhook-secret"


def generate_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _key(settings: Settings, key_id: str | None = None) -> bytes:
    """The current key, or a retired one (AUTORENEW_ENCRYPTION_OLD_KEYS) by its id: after a
    key rotation, secrets sealed under the old key must still open or dispatch would stop."""
    if key_id is None or key_id == settings.encryption_key_id:
        encoded = settings.encryption_key
    elif key_id in settings.encryption_old_keys:
        encoded = settings.encryption_old_keys[key_id]
    else:
        raise ValueError(f"webhook secret sealed with unknown key id {key_id!r}")
    key = base64.urlsafe_b64decode(encoded.get_secret_value())
    if len(key) != 32:
        raise ValueError("encryption keys must be base64 of 32 bytes")
    return key


def seal(settings: Settings, plaintext: str) -> str:
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_key(settings)).encrypt(nonce, plaintext.encode("utf-8"), _AAD)
    return f"{settings.encryption_key_id}:{base64.b64encode(nonce + sealed).decode('ascii')}"


def unseal(settings: Settings, ciphertext: str) -> str:
    key_id, _, body = ciphertext.partition(":")
    raw = base64.b64decode(body)
    return AESGCM(_key(settings, key_id)).decrypt(raw[:12], raw[12:], _AAD).decode("utf-8")
