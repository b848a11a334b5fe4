"""Idempotent POSTs as Stripe runs them, safe across processes sharing the ledger.

- The first request with a key claims it by inserting its row, acts, and stores its response
  (success or card error) in the *same* transaction: either all of it is on the ledger or
  none of it is, so a crash mid-request leaves the key free to retry.
- A concurrent request with the same key blocks on that insert (a unique key: PostgreSQL
  waits for the first transaction; SQLite transactions start with BEGIN IMMEDIATE) and then
  finds the stored response: one charge, whatever the number of processes.
- A repeat with the same parameters gets the stored response (`Idempotent-Replayed: true`);
  with other parameters, Stripe's 400 `idempotency_error`.
- Requests refused before acting (bad parameters) store nothing, as on Stripe.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.sandbox.models import IdempotencyKey
from app.sandbox.objects import StripeError

Operation = Callable[[AsyncSession], Awaitable[tuple[int, dict[str, Any]]]]

MAX_KEY_LENGTH = 255


def request_digest(secret: str, method: str, path: str, params: dict[str, Any]) -> str:
    """Keyed, so the stored digest of a tokenize request reveals nothing of the card."""
    canonical = json.dumps([method, path, params], sort_keys=True, separators=(",", ":"))
    return hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()


async def run_once(
    transaction: Callable[[], AbstractAsyncContextManager[AsyncSession]],
    *,
    key: str,
    digest: str,
    now: datetime,
    operation: Operation,
) -> tuple[int, dict[str, Any], bool]:
    """(status, body, replayed)."""
    if len(key) > MAX_KEY_LENGTH:
        raise StripeError(
            400,
            "invalid_request_error",
            f"Idempotency keys are at most {MAX_KEY_LENGTH} characters long.",
        )
    async with transaction() as session:
        insert = postgresql_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
        claimed = await session.scalar(
            insert(IdempotencyKey)
            .values(key=key, digest=digest, created=now)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(IdempotencyKey.key)
        )
        if claimed is None:
            return _replay(await session.get(IdempotencyKey, key), key, digest)
        status, body = await operation(session)
        await session.flush()
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key == key)
            .values(response_status=status, response_body=json.dumps(body))
        )
    return status, body, False


def _replay(
    record: IdempotencyKey | None, key: str, digest: str
) -> tuple[int, dict[str, Any], bool]:
    if record is None or record.response_status is None or record.response_body is None:
        # Cannot happen while responses are stored in the claiming transaction; answered as
        # Stripe answers a key whose first request is still running.
        raise StripeError(
            409,
            "invalid_request_error",
            "There is currently another in-progress request using this idempotency key.",
            code="idempotency_key_in_use",
        )
    if not hmac.compare_digest(record.digest, digest):
        raise StripeError(
            400,
            "idempotency_error",
            "Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. Try using a key other than '{key}' if you meant to execute a "
            "different request.",
        )
    return record.response_status, json.loads(record.response_body), True
