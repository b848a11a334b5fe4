"""Key rotation for sealed IBANs: `autorenew reencrypt-ibans`.

Rotating: set the new key as AUTORENEW_ENCRYPTION_KEY (new KEY_ID), move the old one to
AUTORENEW_ENCRYPTION_OLD_KEYS, deploy, run the command, then drop the old key. Rows are
re-sealed in small committed batches (safe to interrupt and run again), and their
fingerprints are recomputed under the new key.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.crypto import FieldCipher
from app.core.database import transaction
from app.payment_methods import repository
from app.payment_methods.sepa import IBAN_PURPOSE, reveal_iban


@dataclass(frozen=True)
class ReencryptSummary:
    reencrypted: int
    by_key: dict[str, int]  # sealed IBANs per key id, afterwards
    current_key_id: str

    @property
    def unreadable(self) -> dict[str, int]:
        """Rows sealed with a key that is not configured at all."""
        return {key: n for key, n in self.by_key.items() if key != self.current_key_id}


async def reencrypt_batch(session: AsyncSession, cipher: FieldCipher, batch_size: int) -> int:
    """Re-seal up to `batch_size` IBANs still under a retired key; how many were."""
    retired = sorted(cipher.key_ids - {cipher.current_key_id})
    if not retired:
        return 0
    methods = await repository.ibans_sealed_with(session, retired, batch_size)
    for method in methods:
        iban = reveal_iban(method, cipher)
        sealed = cipher.seal(iban, associated_data=method.id.encode())
        method.iban_ciphertext = sealed.data
        method.iban_key_id = sealed.key_id
        method.iban_fingerprint = cipher.fingerprint(iban, purpose=IBAN_PURPOSE)
    await session.flush()
    return len(methods)


async def reencrypt_all(
    sessionmaker: async_sessionmaker[AsyncSession], cipher: FieldCipher, batch_size: int = 200
) -> ReencryptSummary:
    total = 0
    while True:
        async with transaction(sessionmaker) as session:
            done = await reencrypt_batch(session, cipher, batch_size)
        total += done
        if done < batch_size:
            break
    async with sessionmaker() as session:
        by_key = await repository.count_ibans_by_key(session)
    return ReencryptSummary(total, by_key, cipher.current_key_id)
