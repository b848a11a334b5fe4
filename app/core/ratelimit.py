"""Rate limits: a sliding window of hits per caller.

`hit` keeps the window in the database, shared by every replica: a limit counted in each
replica's memory lets a caller N times the limit behind N replicas, which is not what anyone
reading "20 registrations an hour" expects. Each hit is a row; a check counts the caller's
rows inside the window and adds one, in a transaction of its own (committed whatever the
request then does: a refused IBAN or a declined card must count), so it must run before the
request's own transaction writes (SQLite has one writer). On PostgreSQL an advisory lock on
(scope, caller) makes concurrent replicas count in turn. Rows older than the window are
deleted as hits come, and by a periodic job for callers gone quiet.

"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Index, Integer, String, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base, UTCDateTime, transaction
from app.core.errors import TooManyRequests
from app.core.idempotency import answered
from app.core.scheduler import JobContext
from app.core.settings import Settings


class RateLimitHit(Base):
    __tablename__ = "rate_limit_hits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(32))
    caller_id: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_rate_limit_hits_scope_caller_id_at", "scope", "caller_id", "at"),)


@dataclass(frozen=True)
class RateLimit:
    scope: str  # what is limited: "iban_check", "payment_method_create"
    limit: int
    window: timedelta


async def hit(
    sessionmaker: async_sessionmaker[AsyncSession], rule: RateLimit, caller_id: str, now: datetime
) -> None:
    """Count one use by `caller_id`; raise TooManyRequests (nothing counted) when over."""
    async with transaction(sessionmaker) as session:
        if session.get_bind().dialect.name == "postgresql":
            lock_key = func.hashtextextended(f"rate_limit:{rule.scope}:{caller_id}", 0)
            await session.execute(select(func.pg_advisory_xact_lock(lock_key)))
        mine = (RateLimitHit.scope == rule.scope) & (RateLimitHit.caller_id == caller_id)
        start = now - rule.window
        await session.execute(delete(RateLimitHit).where(mine, RateLimitHit.at <= start))
        hits = (
            await session.scalars(
                select(RateLimitHit.at).where(mine).order_by(RateLimitHit.at).limit(rule.limit)
            )
        ).all()
        if len(hits) >= rule.limit:
            retry_after = max(1, int((hits[0] + rule.window - now).total_seconds()) + 1)
            raise TooManyRequests(
                "Too many requests; slow down.",
                code="rate_limited",
                extra={"retry_after": retry_after},
                headers={"Retry-After": str(retry_after)},
            )
        session.add(RateLimitHit(scope=rule.scope, caller_id=caller_id, at=now))


async def hit_unless_replayed(
    sessionmaker: async_sessionmaker[AsyncSession],
    rule: RateLimit,
    caller_id: str,
    idempotency_key: str | None,
    now: datetime,
) -> None:
    """`hit`, except for the replay of an Idempotency-Key already answered, which is free.
    For a write route: call it before the request's own transaction claims the key (SQLite
    has one writer)."""
    if idempotency_key is not None and await answered(
        sessionmaker, caller_id, idempotency_key, now
    ):
        return
    await hit(sessionmaker, rule, caller_id, now)


async def forget_hits_before(session: AsyncSession, scope: str, before: datetime) -> int:
    """Drop a scope's hits older than `before` (callers gone quiet keep theirs otherwise)."""
    result = await session.execute(
        delete(RateLimitHit).where(RateLimitHit.scope == scope, RateLimitHit.at <= before)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def forgetting_job(
    *rules_of: Callable[[Settings], RateLimit],
) -> Callable[[JobContext], Awaitable[int]]:
    """The periodic job that drops hits past their rule's window (callers gone quiet keep
    theirs otherwise), for the rules each domain declares (app/jobs.py lists them)."""

    async def forget_old_hits(context: JobContext) -> int:
        now = context.clock.now()
        forgotten = 0
        async with transaction(context.sessionmaker) as session:
            for rule in (rule_of(context.settings) for rule_of in rules_of):
                forgotten += await forget_hits_before(session, rule.scope, now - rule.window)
        return forgotten

    return forget_old_hits
