"""Rate limits: a sliding window of hits per caller.

`hit` keeps the window in the database, shared by every replica: a limit counted in each
replica's memory lets a caller N times the limit behind N replicas, which is not what anyone
reading "20 registrations an hour" expects. Each hit is a row; a check counts the caller's
rows inside the window and adds one, in a transaction of its own (committed whatever the
request then does: a refused IBAN or a declined card must count), so it must run before the
request's own transaction writes (SQLite has one writer). On PostgreSQL an advisory lock on
(scope, caller) makes concurrent replicas count in turn. Rows older than the window are
deleted as hits come, and by a periodic job for callers gone quiet.

`SlidingWindowLimiter` counts in this replica's memory, for limits taken inside a request's
transaction (paying a renewal now), where a second transaction could not write on SQLite.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Request
from sqlalchemy import Index, Integer, String, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column
from starlette.datastructures import State

from app.core.database import Base, UTCDateTime, transaction
from app.core.deps import SettingsDep
from app.core.errors import TooManyRequests
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


async def forget_hits_before(session: AsyncSession, scope: str, before: datetime) -> int:
    """Drop a scope's hits older than `before` (callers gone quiet keep theirs otherwise)."""
    result = await session.execute(
        delete(RateLimitHit).where(RateLimitHit.scope == scope, RateLimitHit.at <= before)
    )
    return int(getattr(result, "rowcount", 0) or 0)


class SlidingWindowLimiter:
    def __init__(self, *, limit: int, window: timedelta, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._hits: dict[str, deque[datetime]] = {}

    def hit(self, key: str, now: datetime) -> None:
        """Count one use by `key`; raise TooManyRequests when over the limit."""
        start = now - self.window
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self.max_keys:
                self._forget_idle(start)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= start:
            hits.popleft()
        if len(hits) >= self.limit:
            retry_after = max(1, int((hits[0] + self.window - now).total_seconds()) + 1)
            raise TooManyRequests(
                "Too many requests; slow down.",
                code="rate_limited",
                extra={"retry_after": retry_after},
                headers={"Retry-After": str(retry_after)},
            )
        hits.append(now)

    def _forget_idle(self, start: datetime) -> None:
        # Bounded memory: drop callers with nothing left in the window.
        for key in [key for key, hits in self._hits.items() if not hits or hits[-1] <= start]:
            del self._hits[key]


def limiter_dependency(
    name: str, limits: Callable[[Settings], tuple[int, int]]
) -> Callable[[Request, Settings], SlidingWindowLimiter]:
    """A dependency giving the app's limiter `name` (one per replica, made on first use) with
    `limits(settings)` = (uses, window in seconds) per caller."""

    def dependency(request: Request, settings: SettingsDep) -> SlidingWindowLimiter:
        state: State = request.app.state
        limiter: SlidingWindowLimiter | None = getattr(state, name, None)
        if limiter is None:
            limit, window = limits(settings)
            limiter = SlidingWindowLimiter(limit=limit, window=timedelta(seconds=window))
            setattr(state, name, limiter)
        return limiter

    return dependency
