"""Soft failures retry on the schedule, never past the service's expiry plus grace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.renewals.dunning import after_soft_failure

NOW = datetime(2027, 3, 1, 9, tzinfo=UTC)


def decide(failed: int, expires_in_days: int, grace: int = 0):  # type: ignore[no-untyped-def]
    return after_soft_failure(
        failed_charges=failed,
        now=NOW,
        schedule_days=[1, 3, 5],
        service_expires_at=NOW + timedelta(days=expires_in_days),
        grace_days=grace,
    )


def test_each_failure_waits_its_step() -> None:
    assert decide(1, 30).retry_at == NOW + timedelta(days=1)
    assert decide(2, 30).retry_at == NOW + timedelta(days=3)
    assert decide(3, 30).retry_at == NOW + timedelta(days=5)


def test_past_the_schedule_it_gives_up() -> None:
    decision = decide(4, 30)
    assert decision.retry_at is None
    assert decision.reason == "retries_exhausted"


def test_no_retry_after_the_service_has_lapsed() -> None:
    decision = decide(2, 2)
    assert decision.retry_at is None
    assert decision.reason == "service_expired_before_retry"
    assert decide(2, 2, grace=5).retry_at == NOW + timedelta(days=3)
