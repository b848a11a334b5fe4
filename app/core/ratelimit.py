"""A small in-process sliding-window rate limiter.

Counts live in this replica's memory: with N replicas behind a balancer a caller gets up to
N times the limit. That is enough to make guessing through an oracle endpoint slow; a shared
limit would need a shared store, which the service does not have.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

from fastapi import Request
from starlette.datastructures import State

from app.core.deps import SettingsDep
from app.core.errors import TooManyRequests
from app.core.settings import Settings


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
