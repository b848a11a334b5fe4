"""When to try a failed renewal again, and when to give up. Pure functions: the clock and
the schedule come in as arguments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryDecision:
    retry_at: datetime | None  # None: give up
    reason: str | None = None  # why we gave up


def after_soft_failure(
    *,
    failed_charges: int,
    now: datetime,
    schedule_days: Sequence[int],
    service_expires_at: datetime,
    grace_days: int,
) -> RetryDecision:
    """`failed_charges` counts this failure too. The n-th failure waits schedule_days[n-1]
    days; past the schedule, or past the service's expiry plus its grace, we stop: charging
    for a service that has already lapsed would bill the customer for nothing."""
    if failed_charges > len(schedule_days):
        return RetryDecision(None, "retries_exhausted")
    retry_at = now + timedelta(days=schedule_days[failed_charges - 1])
    if retry_at >= service_expires_at + timedelta(days=grace_days):
        return RetryDecision(None, "service_expired_before_retry")
    return RetryDecision(retry_at)
