"""Reconcile: attempts left `processing` past their lease are asked for again, by key.

A worker that dies after claim (or loses the gateway's answer) leaves an open attempt whose
lease runs out; the next claim, on any replica, picks the renewal up again and hands its
attempt here. The same request is re-sent with the same idempotency key, so the gateway
answers with the first result instead of charging again; past the gateway's idempotency
window the charge is looked up by key instead. A new attempt, with a new key, is only made
once the gateway has said that no charge exists.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.renewals import links, repository
from app.renewals.engine.job import ChargeJob, ChargeMode, charge_metadata, take_lease
from app.renewals.engine.outcomes import close_attempt, reschedule, unknown
from app.renewals.engine.summary import SweepSummary
from app.renewals.state import AttemptState, RenewalState
from app.services.state import ServiceState


async def reclaim(
    session: AsyncSession,
    renewal: RenewalState,
    service: ServiceState,
    now: datetime,
    *,
    worker: str,
    settings: Settings,
) -> ChargeJob | None:
    """The job that asks the gateway what happened to the renewal's open attempt."""
    attempt = await repository.open_attempt(session, renewal.id)
    if attempt is None:  # settled by its worker after all; nothing to reconcile
        renewal.status, renewal.lease_owner, renewal.lease_expires_at = "scheduled", None, None
        return None
    methods = await repository.methods_by_id(session, [attempt.payment_method_id])
    method = methods[attempt.payment_method_id]
    window = timedelta(hours=settings.gateway_idempotency_window_hours)
    take_lease(renewal, worker=worker, now=now, lease_seconds=settings.renewal_lease_seconds)
    return ChargeJob(
        renewal_id=renewal.id,
        attempt_id=attempt.id,
        idempotency_key=attempt.idempotency_key,
        amount=attempt.amount,
        currency=attempt.currency,
        gateway_customer_id=method.gateway_customer_id or "",
        gateway_payment_method_id=method.gateway_payment_method_id or "",
        service_id=service.id,
        reconcile=True,
        lookup_only=now - attempt.started_at >= window
        or attempt.failure_code is not None
        # A confirmation names its charge: reading it is exact, a re-send could only replay.
        or (attempt.on_session and attempt.gateway_charge_id is not None),
        metadata=charge_metadata(renewal, attempt.idempotency_key),
        # The customer's own attempt (pay now) is asked for again as it was sent: the same
        # on-session request under the same key; a confirmation names its charge already.
        mode=on_session_mode(attempt) if attempt.on_session else "off_session",
        charge_id=attempt.gateway_charge_id if attempt.on_session else None,
        return_url=links.return_url(settings, renewal.id) if attempt.on_session else "",
    )


def on_session_mode(attempt: AttemptState) -> ChargeMode:
    """An on-session attempt that started with a charge id confirmed that charge again."""
    return "confirm" if attempt.gateway_charge_id is not None else "on_session"


def look_up_from_now_on(attempt: AttemptState, code: str) -> None:
    """The gateway answered the attempt's key in a way a re-send can only repeat: from now
    on the attempt is reconciled by lookup. An open attempt carries a failure code only
    for this, and keeps the answer's code as the reason."""
    attempt.failure_code = code


def nothing_found(
    renewal: RenewalState,
    attempt: AttemptState,
    now: datetime,
    tally: SweepSummary,
    settings: Settings,
) -> None:
    """A lookup found no charge under the attempt's key: proof only past the idempotency
    window (the gateway's search lags behind its writes); until then, ask again later."""
    window = timedelta(hours=settings.gateway_idempotency_window_hours)
    if now - attempt.started_at >= window:
        no_charge_found(renewal, attempt, now)
    else:
        unknown(renewal, now, tally)


def no_charge_found(renewal: RenewalState, attempt: AttemptState, now: datetime) -> None:
    """Looked up past the idempotency window and no charge exists: the attempt never
    reached the gateway, so a new attempt (new key) may be made."""
    close_attempt(attempt, "not_sent", now, code="no_charge_found")
    reschedule(renewal, now, now)


def resend_refused(renewal: RenewalState, now: datetime, wait: timedelta) -> None:
    """Only the re-send was refused (rate limited); the first send, whose answer was lost,
    may have charged. The attempt stays open under its key and is reconciled again once the
    gateway lets us: a new attempt (new key) could charge twice."""
    renewal.lease_expires_at = now + wait
    renewal.updated_at = now
