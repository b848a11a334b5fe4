"""Idempotent POSTs as Stripe runs them, safe across processes sharing the ledger.

- The first request with a key *claims* it (a row without a response, committed at once),
  then acts and stores its response (success or card error) in one transaction: either the
  change and its response are both on the ledger or neither is.
- Another request with the key while the first is still running gets Stripe's 409
  `idempotency_key_in_use` straight away: it neither waits nor acts.
- A repeat after the first finished gets the stored response (`Idempotent-Replayed: true`);
  with other parameters, Stripe's 400 `idempotency_error`.
- Requests refused before acting (bad parameters) release the key: Stripe stores nothing.
- A claim whose process died (crash between claim and answer) is taken over once it is
  older than `CLAIM_SECONDS`, so a key is never locked for good.
- The "stored" fault keeps a 500 as the key's response after acting, as Stripe does when a
  request fails inside: every retry with that key gets the same 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from app.sandbox.errors import StripeError, internal_error
from app.sandbox.models import IdempotencyKey

Operation = Callable[[AsyncSession], Awaitable[tuple[int, dict[str, Any]]]]
Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]

MAX_KEY_LENGTH = 255
# Longer than any request the sandbox serves (the hang fault aside, which answers after
# storing its response).
CLAIM_SECONDS = 60


def request_digest(secret: str, method: str, path: str, params: dict[str, Any]) -> str:
    """Keyed, so the stored digest of a tokenize request reveals nothing of the card."""
    canonical = json.dumps([method, path, params], sort_keys=True, separators=(",", ":"))
    return hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def in_use() -> StripeError:
    return StripeError(
        409,
        "invalid_request_error",
        "There is currently another in-progress request using this Idempotency Key (that "
        "probably means you submitted twice, and the other request is still going through). "
        "Please try again later.",
        code="idempotency_key_in_use",
    )


def _rowcount(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


async def run_once(
    transaction: Transaction,
    *,
    key: str,
    digest: str,
    now: datetime,
    operation: Operation,
    store_error: bool = False,
    hold_seconds: float = 0.0,
) -> tuple[int, dict[str, Any], bool]:
    """(status, body, replayed). `hold_seconds`: the sandbox's added latency, spent between
    claiming the key and acting."""
    if len(key) > MAX_KEY_LENGTH:
        raise StripeError(
            400,
            "invalid_request_error",
            f"Idempotency keys are at most {MAX_KEY_LENGTH} characters long.",
        )
    owner = secrets.token_hex(8)
    replay = await _claim(transaction, key, digest, owner, now)
    if replay is not None:
        return replay
    try:
        if hold_seconds:
            await asyncio.sleep(hold_seconds)
        async with transaction() as session:
            # Still ours? (A claim taken over after CLAIM_SECONDS is not.) On PostgreSQL the
            # update also locks the row until this transaction ends.
            mine = await session.execute(
                update(IdempotencyKey)
                .where(
                    IdempotencyKey.key == key,
                    IdempotencyKey.owner == owner,
                    IdempotencyKey.response_status.is_(None),
                )
                .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
            )
            if _rowcount(mine) != 1:
                raise in_use()
            status, body = await operation(session)
            if store_error:
                status, body = 500, internal_error("stored fault").document()
            await session.flush()
            await session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.key == key)
                .values(response_status=status, response_body=json.dumps(body), claimed_until=None)
            )
    except BaseException:
        # Refused before acting, or failed: nothing was stored, so the key is free again.
        async with transaction() as session:
            await session.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.key == key,
                    IdempotencyKey.owner == owner,
                    IdempotencyKey.response_status.is_(None),
                )
            )
        raise
    return status, body, False


async def _claim(
    transaction: Transaction, key: str, digest: str, owner: str, now: datetime
) -> tuple[int, dict[str, Any], bool] | None:
    """Claim the key for this request; or the stored response to replay; or 409."""
    claim_until = now + timedelta(seconds=CLAIM_SECONDS)
    async with transaction() as session:
        insert = postgresql_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
        claimed = await session.scalar(
            insert(IdempotencyKey)
            .values(key=key, digest=digest, owner=owner, claimed_until=claim_until, created=now)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(IdempotencyKey.key)
        )
        if claimed is not None:
            return None
        record = await session.get(IdempotencyKey, key)
        if record is None:
            # Released between our insert and our read (its request was refused).
            raise in_use()
        if record.response_status is not None and record.response_body is not None:
            return _replay(record, key, digest)
        if record.claimed_until is not None and record.claimed_until > now:
            raise in_use()
        # The claiming process died before answering: take the key over.
        taken = await session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.key == key,
                IdempotencyKey.owner == record.owner,
                IdempotencyKey.response_status.is_(None),
            )
            .values(owner=owner, digest=digest, claimed_until=claim_until)
        )
        if _rowcount(taken) != 1:
            raise in_use()
    return None


def _replay(record: IdempotencyKey, key: str, digest: str) -> tuple[int, dict[str, Any], bool]:
    if not hmac.compare_digest(record.digest, digest):
        raise StripeError(
            400,
            "idempotency_error",
            "Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. Try using a key other than '{key}' if you meant to execute a "
            "different request.",
        )
    return record.response_status or 500, json.loads(record.response_body or "{}"), True
