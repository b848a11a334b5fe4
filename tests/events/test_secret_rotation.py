"""Webhook secrets sealed under a retired key still open after an encryption-key rotation."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from app.core.settings import Settings
from app.events.secrets import generate_secret, seal, unseal

OLD = base64.urlsafe_b64encode(b"o" * 32).decode()
NEW = base64.urlsafe_b64encode(b"n" * 32).decode()


def test_a_secret_sealed_under_the_old_key_opens_after_rotation() -> None:
    before = Settings(encryption_key=SecretStr(OLD), encryption_key_id="k1")
    secret = generate_secret()
    sealed = seal(before, secret)
    after = Settings(
        encryption_key=SecretStr(NEW),
        encryption_key_id="k2",
        encryption_old_keys={"k1": SecretStr(OLD)},
    )
    assert unseal(after, sealed) == secret
    assert seal(after, secret).startswith("k2:")


def test_an_unknown_key_id_is_refused() -> None:
    sealed = seal(Settings(encryption_key=SecretStr(OLD), encryption_key_id="k1"), "whsec_x")
    with pytest.raises(ValueError, match="unknown key id"):
        unseal(Settings(encryption_key=SecretStr(NEW), encryption_key_id="k2"), sealed)
