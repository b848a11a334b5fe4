"""What an answer does to a renewal: the state changes every stage of a sweep shares.

Settle calls these with the gateway's answer; claim calls them when a renewal must not be
charged at all (canceled) or cannot be yet (an unusable method waits like a soft decline).
Each function changes rows in the caller's transaction and counts itself in its tally;
the events a change owes are worked out afterwards from a before/after snapshot
(app/renewals/notify.py).
"""

from __future__ import annotations

import logging
from datetime import datetime

from app.core.settings import Settings
from app.renewals.dunning import after_soft_failure
from app.renewals.engine.summary import SweepSummary
from app.renewals.reasons import describe
from app.renewals.state import AttemptState, RenewalState
from app.services import schedule
from app.services.state import ServiceState

log = logging.getLogger("autorenew.renewals")


def succeed(
    renewal: RenewalState,
    attempt: AttemptState,
    service: ServiceState,
    now: datetime,
    tally: SweepSummary,
) -> None:
    close_attempt(attempt, "succeeded", now)
    finish(renewal, "succeeded", now)
    # Move the expiry one period from the previous expiry, not from now, and only if
    # nobody moved it meanwhile: never extend twice for one payment.
    if service.expires_at == renewal.period_start:
        service.expires_at = renewal.period_end
        service.updated_at = now
        schedule.expiry_changed(service, now)
    else:
        log.warning(
            "renewal charged but the service expiry had changed",
            extra={"renewal_id": renewal.id, "service_id": service.id},
        )
    tally.count("succeeded")


def declined(
    renewal: RenewalState,
    attempt: AttemptState,
    service: ServiceState,
    now: datetime,
    tally: SweepSummary,
    settings: Settings,
    *,
    code: str,
    decline_code: str | None,
    hard: bool,
) -> None:
    close_attempt(attempt, "failed", now, code=code)
    attempt.decline_code, attempt.hard_decline = decline_code, hard
    if hard:
        fail(renewal, now, tally, settings, code=decline_code or code, reason="hard_decline")
        return
    soft_failure(renewal, service, now, tally, settings, code=decline_code or code)


def soft_failure(
    renewal: RenewalState,
    service: ServiceState,
    now: datetime,
    tally: SweepSummary,
    settings: Settings,
    *,
    code: str,
) -> None:
    """A failure the customer can still fix: retried on the dunning schedule, or failed
    for good once the schedule (or the service's expiry plus grace) is used up."""
    renewal.failed_charge_count += 1
    decision = after_soft_failure(
        failed_charges=renewal.failed_charge_count,
        now=now,
        schedule_days=settings.dunning_schedule_days,
        service_expires_at=service.expires_at,
        grace_days=settings.renewal_grace_days,
    )
    renewal.failure_code, renewal.failure_reason = code, describe(code)
    if decision.retry_at is None:
        fail(renewal, now, tally, settings, code=code, reason=decision.reason)
    else:
        reschedule(renewal, decision.retry_at, now)
        tally.count("retry_scheduled")


def fail(
    renewal: RenewalState,
    now: datetime,
    tally: SweepSummary,
    settings: Settings,
    *,
    code: str,
    reason: str | None,
) -> None:
    """The renewal's method failed for good. `reason` says why it is final (a key of
    app/renewals/reasons.py) or is the gateway's own words. With the fallback on,
    `fall_back.or_fail` (run once this step is done) may still give it another method, and
    counts it."""
    finish(renewal, "failed", now, code=code, reason=reason)
    if not settings.renewal_fallback_enabled:
        tally.count("failed")


def requires_action(
    renewal: RenewalState,
    attempt: AttemptState,
    gateway_url: str | None,
    now: datetime,
    tally: SweepSummary,
    *,
    link: str,
) -> None:
    """The issuer wants the customer to authenticate. The renewal shows our `link`
    (app/renewals/links.py), which confirms the payment on-session and leads to the
    gateway's page: an off-session try gets no page the customer could use."""
    close_attempt(attempt, "requires_action", now, code="authentication_required")
    attempt.action_url = gateway_url
    wait_for_customer(renewal, now, code="authentication_required", link=link)
    tally.count("requires_action")


def authentication_failed(
    renewal: RenewalState, attempt: AttemptState, now: datetime, *, link: str
) -> None:
    """The customer failed (or abandoned) 3-D Secure: no money moved; the renewal waits for
    them again, to authenticate once more or pay with another method."""
    close_attempt(attempt, "failed", now, code="authentication_failed")
    attempt.action_url = None
    wait_for_customer(renewal, now, code="authentication_failed", link=link)


def wait_for_customer(renewal: RenewalState, now: datetime, *, code: str, link: str) -> None:
    renewal.status = "requires_action"
    renewal.action_url = link
    renewal.failure_code = code
    renewal.failure_reason = describe(code)
    renewal.next_attempt_at = None
    renewal.lease_owner, renewal.lease_expires_at = None, None
    renewal.updated_at = now


def unknown(renewal: RenewalState, now: datetime, tally: SweepSummary) -> None:
    # Leave the attempt processing under its lease: when the lease runs out, a sweep
    # reconciles it by idempotency key. Nothing is retried blind.
    renewal.updated_at = now
    tally.count("outcome_unknown")


def reschedule(renewal: RenewalState, at: datetime, now: datetime) -> None:
    renewal.status = "scheduled"
    renewal.next_attempt_at = at
    renewal.lease_owner, renewal.lease_expires_at = None, None
    renewal.updated_at = now


def close_attempt(
    attempt: AttemptState, status: str, now: datetime, *, code: str | None = None
) -> None:
    attempt.status = status
    attempt.failure_code = code
    attempt.finished_at = now


def finish(
    renewal: RenewalState,
    status: str,
    now: datetime,
    *,
    code: str | None = None,
    reason: str | None = None,
) -> None:
    renewal.status = status
    renewal.failure_code = code if status != "succeeded" else None
    renewal.failure_reason = describe(code, reason) if status != "succeeded" else None
    renewal.action_url = None  # a finished renewal asks nothing more of the customer
    renewal.next_attempt_at = None
    renewal.lease_owner, renewal.lease_expires_at = None, None
    renewal.updated_at = now
    renewal.finished_at = now
