"""Gauges of work waiting in the database, read when Prometheus scrapes `/metrics`.

The jobs count what they do (renewal outcomes, sweep time, gateway calls); what is waiting
is a property of the database, not of one process, so it is queried on scrape instead: the
due renewals and how long the oldest has waited, the webhook deliveries pending and dead.
Every replica reports the same database-wide values (aggregate them with `max`, not `sum`).
A scrape reuses values younger than `refresh_seconds`, so frequent or concurrent scrapes of
one replica cost one round of indexed counts; when the database cannot answer, the scrape
still succeeds with the last values and the failure is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import Clock
from app.events import repository as events
from app.renewals import repository as renewals

log = logging.getLogger("autorenew.metrics")

DUE_BACKLOG = Gauge(
    "autorenew_renewals_due_backlog",
    "Card renewals due for a charge attempt now (scheduled and due, or with an expired "
    "lease), database-wide.",
)
OLDEST_DUE = Gauge(
    "autorenew_renewals_oldest_due_seconds",
    "How long the longest-waiting due card renewal has waited for its charge (0 when none "
    "is due), database-wide.",
)
WEBHOOK_DELIVERIES = Gauge(
    "autorenew_webhook_deliveries",
    "Webhook deliveries by status: pending (retrying until delivered or dead) and dead "
    "(retries exhausted: redeliver by hand), database-wide.",
    ["status"],
)
DELIVERY_STATUSES = ("pending", "dead")


class DatabaseGauges:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        refresh_seconds: float = 15.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._refreshed_at: float | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:
            if (
                self._refreshed_at is not None
                and time.monotonic() - self._refreshed_at < self._refresh_seconds
            ):
                return
            now = self._clock.now()
            try:
                async with self._sessionmaker() as session:
                    backlog = await renewals.due_backlog(session, now=now)
                    oldest = await renewals.oldest_due(session, now=now)
                    deliveries = await events.delivery_counts(session, DELIVERY_STATUSES)
            except Exception:
                log.warning("metrics: the database gauges could not be read", exc_info=True)
                return
            DUE_BACKLOG.set(backlog)
            OLDEST_DUE.set(max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
            for status, count in deliveries.items():
                WEBHOOK_DELIVERIES.labels(status).set(count)
            self._refreshed_at = time.monotonic()
