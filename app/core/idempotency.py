"""Idempotency-Key for creating POSTs: a repeat gets the first answer, never a second effect.

A route opts in with one dependency and one call:

    async def create_thing(body: ThingIn, idempotency: IdempotencyDep, ...) -> Response:
        return await idempotency.respond(201, lambda: service.create(session, ...))

Rules (the same as Stripe's, which clients already know):
- Keys are scoped per caller (token `sub`) and kept `AUTORENEW_IDEMPOTENCY_KEY_TTL_HOURS`.
- Same key, same method + path + body (JSON compared after parsing) → the stored first
  response, byte for byte, with `Idempotent-Replayed: true`.
- Same key, anything else → 422 `idempotency_key_reused`.
- The key row is written in the request's own transaction, with the response: if the
  request fails nothing is kept (not even the key), so a corrected retry may reuse it. A
  concurrent twin waits on the key's primary key and gets 409 `idempotency_key_in_progress`;
  retried, it gets the committed answer.
- The body is not stored, only a keyed fingerprint of it: bodies carry IBANs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Header, Request, Response
from pydantic import BaseModel
from sqlalchemy import LargeBinary, String, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from app.core.crypto import cipher_from_settings
from app.core.database import Base, UTCDateTime
from app.core.deps import CallerDep, ClockDep, SessionDep, SettingsDep
from app.core.errors import BadRequest, Conflict, Unprocessable

REPLAYED_HEADER = "Idempotent-Replayed"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_keys"

    caller_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None]
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


def _canonical_body(raw: bytes) -> str:
    try:
        return json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"))
    except (ValueError, UnicodeDecodeError):
        return raw.hex()


class Idempotency:
    """The idempotency state of one request; `respond` runs or replays it."""

    def __init__(self, session: AsyncSession, record: IdempotencyRecord | None) -> None:
        self._session = session
        self._record = record
        self._replay = record is not None and record.status_code is not None

    @property
    def replayed(self) -> bool:
        return self._replay

    @property
    def key(self) -> str | None:
        """The caller's key, to derive the keys of calls made to other systems from it."""
        return self._record.key if self._record is not None else None

    async def respond(
        self, status_code: int, produce: Callable[[], Awaitable[BaseModel]]
    ) -> Response:
        record = self._record
        if record is not None and self._replay:
            assert record.status_code is not None and record.response_body is not None
            return Response(
                record.response_body,
                status_code=record.status_code,
                media_type="application/json",
                headers={REPLAYED_HEADER: "true"},
            )
        body = (await produce()).model_dump_json().encode()
        if record is not None:
            record.status_code = status_code
            record.response_body = body
            await self._session.flush()
        return Response(body, status_code=status_code, media_type="application/json")

    async def forget(self) -> None:
        """Drop the key of a request that committed part of its work and then failed (a
        payment the gateway never took), so that a corrected retry may use it again."""
        if self._record is not None and not self._replay:
            await self._session.delete(self._record)
            await self._session.flush()


async def _claim(
    session: AsyncSession, record: IdempotencyRecord, now: datetime
) -> IdempotencyRecord | None:
    """Insert the key, or return the live row already there (an expired one is replaced).

    No savepoint: SQLite's driver would commit it on release. A twin racing us past the
    read waits on the primary key and gets 409 here; its retry replays our answer.
    """
    existing = await session.get(IdempotencyRecord, (record.caller_id, record.key))
    if existing is not None and existing.expires_at > now:
        return existing
    if existing is not None:
        await session.delete(existing)
        await session.flush()
    session.add(record)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "A request with this Idempotency-Key is still running; retry.",
            code="idempotency_key_in_progress",
        ) from exc
    return None


async def idempotency(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    clock: ClockDep,
    settings: SettingsDep,
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Repeat the request with the same key to get the first answer again.",
        ),
    ] = None,
) -> Idempotency:
    if key is None:
        return Idempotency(session, None)
    if not _KEY.match(key):
        raise BadRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters.",
            code="invalid_idempotency_key",
        )
    cipher = cipher_from_settings(settings)
    message = f"{request.method} {request.url.path}\n{_canonical_body(await request.body())}"
    fingerprints = cipher.fingerprints(message, purpose="idempotency")
    now = clock.now()
    record = IdempotencyRecord(
        caller_id=caller.customer_id,
        key=key,
        request_fingerprint=fingerprints[0],
        created_at=now,
        expires_at=now + timedelta(hours=settings.idempotency_key_ttl_hours),
    )
    existing = await _claim(session, record, now)
    if existing is None:
        return Idempotency(session, record)
    if existing.request_fingerprint not in fingerprints:
        raise Unprocessable(
            "This Idempotency-Key was used with another request.", code="idempotency_key_reused"
        )
    if existing.status_code is None:
        raise Conflict(
            "A request with this Idempotency-Key is still running.",
            code="idempotency_key_in_progress",
        )
    return Idempotency(session, existing)


IdempotencyDep = Annotated[Idempotency, Depends(idempotency)]


async def answered(
    sessionmaker: async_sessionmaker[AsyncSession], caller_id: str, key: str, now: datetime
) -> bool:
    """Whether a request with this key has a stored answer to replay (read on its own,
    before the request's transaction claims the key)."""
    async with sessionmaker() as session:
        record = await session.get(IdempotencyRecord, (caller_id, key))
        return record is not None and record.status_code is not None and record.expires_at > now


async def purge_expired_keys(session: AsyncSession, now: datetime) -> int:
    """Forget keys past their retention (for a periodic job)."""
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now)
    )
    return int(getattr(result, "rowcount", 0) or 0)
