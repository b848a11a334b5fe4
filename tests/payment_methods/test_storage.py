"""No IBAN in clear at rest, in responses or in logs; keys rotate."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.crypto import DecryptionError, Sealed, cipher_from_settings
from app.core.settings import Settings
from app.core.settings_checks import check_settings
from app.payment_methods import repository, sepa
from app.payment_methods.models import Mandate, PaymentMethod
from app.payment_methods.rotation import reencrypt_all
from tests.payment_methods.factories import IBAN_ES_ELECTRONIC, ClientWith, Register, sepa_body

Auth = Callable[..., dict[str, str]]
SECRETS = (IBAN_ES_ELECTRONIC, IBAN_ES_ELECTRONIC[4:], "ES91 2100 0418 4502 0005 1332")
NEW_KEY = "bmV3LXJvdGF0ZWQta2V5LW9mLTMyLWJ5dGVzLS0tLS0="  # base64 of 32 bytes


def _assert_no_iban(blob: bytes) -> None:
    for secret in SECRETS:
        assert secret.encode() not in blob
        assert secret.encode().hex().encode() not in blob


async def test_a_raw_read_of_the_database_finds_no_iban(
    backend: str,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    register: Register,
    accept: Register,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    created = await register(**{"Idempotency-Key": "raw-1"})
    assert created.status_code == 201
    await accept(created.json()["id"])
    await register(iban=IBAN_ES_ELECTRONIC[:-1] + "3")  # refused, must not be logged either
    for secret in SECRETS:
        assert secret not in caplog.text
        assert secret not in created.text

    if backend == "sqlite":
        path = Path(database_url.split("///", 1)[1])
        files = [p for p in (path, Path(f"{path}-wal")) if p.exists()]
        assert files
        for file in files:
            _assert_no_iban(file.read_bytes())
    else:
        async with sessionmaker() as session:
            for table in ("payment_methods", "mandates", "idempotency_keys"):
                query = text(f"SELECT t::text FROM {table} t")  # noqa: S608 (constant names)
                rows = (await session.execute(query)).all()
                assert rows
                _assert_no_iban("\n".join(row[0] for row in rows).encode())

    async with sessionmaker() as session:
        method = await session.scalar(select(PaymentMethod))
        assert method is not None and method.iban_key_id == "k1"
        assert sepa.reveal_iban(method, cipher_from_settings(Settings())) == IBAN_ES_ELECTRONIC


async def test_the_ciphertext_is_bound_to_its_row(
    sessionmaker: async_sessionmaker[AsyncSession], register: Register
) -> None:
    first = (await register()).json()["id"]
    second = (await register(iban="DE89370400440532013000")).json()["id"]
    cipher = cipher_from_settings(Settings())
    async with sessionmaker() as session:
        a = await session.get(PaymentMethod, first)
        b = await session.get(PaymentMethod, second)
        assert a is not None and b is not None and a.iban_ciphertext and b.iban_key_id
        swapped = Sealed(b.iban_key_id, a.iban_ciphertext)
        with pytest.raises(DecryptionError):
            cipher.open(swapped, associated_data=second.encode())


async def test_rotation_reencrypts_and_keeps_duplicates_detected(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    register: Register,
    client_with: ClientWith,
    auth: Auth,
) -> None:
    ids = [(await register(customer=f"cus_{n}")).json()["id"] for n in range(3)]
    rotated = settings.model_copy(
        update={
            "encryption_key": SecretStr(NEW_KEY),
            "encryption_key_id": "k2",
            "encryption_old_keys": {"k1": settings.encryption_key},
        }
    )
    check_settings(rotated)
    cipher = cipher_from_settings(rotated)

    # Before the re-encryption, the new key's replicas still find the old rows' duplicates.
    overrides = {
        key: getattr(rotated, key)
        for key in ("encryption_key", "encryption_key_id", "encryption_old_keys")
    }
    async with client_with(**overrides) as client:
        duplicate = await client.post(
            "/v1/payment-methods",
            json=sepa_body(IBAN_ES_ELECTRONIC),
            headers=auth("cus_0"),
        )
        assert duplicate.status_code == 409

    summary = await reencrypt_all(sessionmaker, cipher, batch_size=2)
    assert summary.reencrypted == 3 and summary.by_key == {"k2": 3}
    assert not summary.unreadable
    again = await reencrypt_all(sessionmaker, cipher, batch_size=2)
    assert again.reencrypted == 0

    new_only = cipher_from_settings(rotated.model_copy(update={"encryption_old_keys": {}}))
    async with sessionmaker() as session:
        for method_id in ids:
            method = await session.get(PaymentMethod, method_id)
            assert method is not None and method.iban_key_id == "k2"
            assert sepa.reveal_iban(method, new_only) == IBAN_ES_ELECTRONIC
        fingerprints = new_only.fingerprints(IBAN_ES_ELECTRONIC, purpose=sepa.IBAN_PURPOSE)
        assert await repository.find_live_by_fingerprint(session, "cus_1", fingerprints)


def test_reencrypt_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main
    from app.core.settings import get_settings

    monkeypatch.setenv("AUTORENEW_DATABASE_URL", f"sqlite:///{tmp_path / 'r.db'}")
    get_settings.cache_clear()
    try:
        assert main(["migrate"]) == 0
        monkeypatch.setenv("AUTORENEW_ENCRYPTION_KEY", NEW_KEY)
        monkeypatch.setenv("AUTORENEW_ENCRYPTION_KEY_ID", "k2")
        monkeypatch.setenv(
            "AUTORENEW_ENCRYPTION_OLD_KEYS",
            f'{{"k1": "{Settings().encryption_key.get_secret_value()}"}}',
        )
        get_settings.cache_clear()
        assert main(["reencrypt-ibans", "--batch-size", "10"]) == 0
        assert "re-encrypted 0 IBANs" in capsys.readouterr().out
    finally:
        get_settings.cache_clear()


async def test_mandate_references_are_unique_regardless_of_case(
    sessionmaker: async_sessionmaker[AsyncSession], register: Register
) -> None:
    first = (await register()).json()
    second = (await register(iban="DE89370400440532013000")).json()
    reference = first["sepa_debit"]["mandate_reference"]
    async with sessionmaker() as session:
        assert await repository.mandate_reference_taken(session, reference.lower())
        mandate = await session.scalar(
            select(Mandate).where(Mandate.payment_method_id == second["id"])
        )
        assert mandate is not None
        mandate.reference = reference.lower()
        with pytest.raises(IntegrityError):
            await session.flush()
