"""Encryption at rest and keyed fingerprints for secrets we must keep (IBANs).

- `seal`/`open`: AES-256-GCM with a random 96-bit nonce. The stored value is
  `nonce || ciphertext+tag`, next to the id of the key that sealed it, so keys can rotate:
  the current key seals, the current and the retired (`AUTORENEW_ENCRYPTION_OLD_KEYS`) keys
  open. The caller passes associated data (the row id): a ciphertext copied into another
  row no longer opens.
- `fingerprint`: HMAC-SHA256 under a key derived (HKDF) from the encryption key, so equal
  values can be found without storing them in clear and without an offline dictionary
  attack on a plain hash (IBANs are few enough to enumerate). `fingerprints` gives the value
  under every known key, so lookups still match rows written before a rotation.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.core.keys import decode_key
from app.core.settings import Settings

NONCE_BYTES = 12


class DecryptionError(Exception):
    """The value cannot be opened: unknown key id, wrong key, or tampered data."""


def _derive(key: bytes, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"autorenew/{purpose}".encode()
    ).derive(key)


@dataclass(frozen=True)
class Sealed:
    key_id: str
    data: bytes


class FieldCipher:
    def __init__(self, current_key_id: str, keys: dict[str, bytes]) -> None:
        if current_key_id not in keys:
            raise ValueError("the current key id has no key")
        self.current_key_id = current_key_id
        self._aead = {key_id: AESGCM(_derive(key, "aead/v1")) for key_id, key in keys.items()}
        self._mac = {key_id: _derive(key, "fingerprint/v1") for key_id, key in keys.items()}

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._aead)

    def seal(self, plaintext: str, *, associated_data: bytes) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        data = self._aead[self.current_key_id].encrypt(nonce, plaintext.encode(), associated_data)
        return Sealed(self.current_key_id, nonce + data)

    def open(self, sealed: Sealed, *, associated_data: bytes) -> str:
        aead = self._aead.get(sealed.key_id)
        if aead is None:
            raise DecryptionError(f"no key with id {sealed.key_id!r} is configured")
        nonce, data = sealed.data[:NONCE_BYTES], sealed.data[NONCE_BYTES:]
        try:
            return aead.decrypt(nonce, data, associated_data).decode()
        except InvalidTag as exc:
            raise DecryptionError("the value does not open with its key") from exc

    def fingerprint(self, value: str, *, purpose: str, key_id: str | None = None) -> str:
        """A keyed digest of `value`; `purpose` keeps fingerprints of different fields apart."""
        key = self._mac[key_id or self.current_key_id]
        message = f"{purpose}\x00{value}".encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()

    def fingerprints(self, value: str, *, purpose: str) -> list[str]:
        """The fingerprint under every known key, the current one first."""
        others = sorted(self.key_ids - {self.current_key_id})
        return [
            self.fingerprint(value, purpose=purpose, key_id=key_id)
            for key_id in [self.current_key_id, *others]
        ]


@lru_cache(maxsize=8)
def _build(current_key_id: str, keys: tuple[tuple[str, str], ...]) -> FieldCipher:
    return FieldCipher(current_key_id, {key_id: decode_key(key) for key_id, key in keys})


def cipher_from_settings(settings: Settings) -> FieldCipher:
    keys = {key_id: key.get_secret_value() for key_id, key in settings.encryption_old_keys.items()}
    keys[settings.encryption_key_id] = settings.encryption_key.get_secret_value()
    return _build(settings.encryption_key_id, tuple(sorted(keys.items())))
