"""Settle: the gateway's answers are written back, a group per transaction, if still ours.

Runs as charge hands over answers. Each answer goes through `apply_outcome` (which decides
what it means for the renewal, see outcomes.py), then the optional fallback, then the events
the change owes, all in one transaction with the row locks of the group. An answer whose
lease was taken over by another worker is dropped: that worker's answer wins.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.bulk import write_rows
from app.core.clock import Clock
from app.core.database import transaction
from app.core.settings import Settings
from app.events.service import NewEvent, record_all
from app.gateways.port import (
    AuthenticationRequired,
    CardDeclined,
    Charge,
    GatewayUnavailable,
    InvalidCardRequest,
    OutcomeUnknown,
    RateLimited,
)
from app.renewals import links, rows
from app.renewals.engine import fall_back, outcomes, reconcile
from app.renewals.engine.charge import Answer
from app.renewals.engine.job import Outcome
from app.renewals.engine.summary import SweepSummary
from app.renewals.notify import Before, transition_events
from app.renewals.state import AttemptState, RenewalState
from app.services.state import ServiceState

log = logging.getLogger("autorenew.renewals")


async def settle_group(
    sessionmaker: async_sessionmaker[AsyncSession],
    group: list[Answer],
    summary: SweepSummary,
    *,
    clock: Clock,
    worker: str,
    settings: Settings,
) -> None:
    """Write answers in one transaction, and count what committed in `summary`.

    A group that fails as a whole (a deadlock, a bug in one renewal's rules) is settled
    again one answer per transaction, so one bad renewal cannot hold back the others.
    An answer that cannot be written at all leaves its attempt `processing`: when the
    lease runs out, a sweep reconciles it with the gateway by idempotency key.
    """
    try:
        tally = await _settle_together(
            sessionmaker, group, clock.now(), worker=worker, settings=settings
        )
    except Exception:
        if len(group) > 1:
            log.warning("settling a group failed; settling one by one", exc_info=True)
            for answer in group:
                await settle_group(
                    sessionmaker, [answer], summary, clock=clock, worker=worker, settings=settings
                )
        else:
            log.exception(
                "settling a renewal failed; it will be reconciled after its lease",
                extra={"renewal_id": group[0][0].renewal_id},
            )
        return
    summary.merge(tally)


async def _settle_together(
    sessionmaker: async_sessionmaker[AsyncSession],
    group: list[Answer],
    now: datetime,
    *,
    worker: str,
    settings: Settings,
) -> SweepSummary:
    tally = SweepSummary()
    async with transaction(sessionmaker) as session:
        locked = await rows.lock_for_settlement(session, [job.attempt_id for job, _ in group])
        events: list[NewEvent] = []
        for job, outcome in group:
            renewal, attempt, service = locked[job.attempt_id]
            if renewal.lease_owner != worker or attempt.status != "processing":
                # Settled already: the gateway's webhook came first, or our lease ran out
                # and another worker took the renewal over. Its answer wins.
                tally.settled_elsewhere += 1
                continue
            if job.reconcile:
                attempt.reconciled = True
                tally.reconciled += 1
            events += await settle_attempt(
                session,
                renewal,
                attempt,
                service,
                outcome,
                now,
                tally,
                settings,
                looked_up=job.lookup_only,
            )
        # The group's rows in a few statements, then its events in one (app/core/bulk.py).
        await write_rows(session, [row for locked_rows in locked.values() for row in locked_rows])
        await record_all(session, events, now=now)
    return tally


async def settle_attempt(
    session: AsyncSession,
    renewal: RenewalState,
    attempt: AttemptState,
    service: ServiceState,
    outcome: Outcome,
    now: datetime,
    tally: SweepSummary,
    settings: Settings,
    *,
    looked_up: bool = False,
) -> list[NewEvent]:
    """Settle one open attempt (its rows locked by the caller) with the gateway's answer
    (`looked_up`: to a lookup of it), then the fallback; returns the events the change
    owes, for the caller to emit."""
    before = Before.of(renewal, service)
    apply_outcome(renewal, attempt, service, outcome, now, tally, settings, looked_up=looked_up)
    await fall_back.or_fail(session, renewal, service, before, now, tally, settings)
    return transition_events(renewal, service, before)


def apply_outcome(
    renewal: RenewalState,
    attempt: AttemptState,
    service: ServiceState,
    outcome: Outcome,
    now: datetime,
    tally: SweepSummary,
    settings: Settings,
    *,
    looked_up: bool = False,
) -> None:
    """What the gateway's answer to one attempt (`looked_up`: to a lookup of it) means
    for its renewal. Only an answer that proves what happened to the money closes the
    attempt; anything else leaves it open under its key, to be reconciled."""
    if isinstance(outcome, Charge):
        attempt.gateway_charge_id = outcome.charge_id
        if outcome.status == "succeeded":
            outcomes.succeed(renewal, attempt, service, now, tally)
        elif outcome.status == "requires_action":
            outcomes.requires_action(
                renewal, attempt, outcome.action_url, now, tally, link=_link(settings, renewal)
            )
        elif outcome.status == "processing":
            outcomes.unknown(renewal, now, tally)
        else:
            outcomes.declined(
                renewal,
                attempt,
                service,
                now,
                tally,
                settings,
                code=outcome.failure_code or "charge_failed",
                decline_code=outcome.decline_code,
                hard=False,
            )
    elif outcome is None:
        reconcile.nothing_found(renewal, attempt, now, tally, settings)
    elif isinstance(outcome, CardDeclined):
        attempt.gateway_charge_id = outcome.charge_id
        outcomes.declined(
            renewal,
            attempt,
            service,
            now,
            tally,
            settings,
            code=outcome.code,
            decline_code=outcome.decline_code,
            hard=outcome.hard,
        )
    elif isinstance(outcome, AuthenticationRequired):
        attempt.gateway_charge_id = outcome.charge_id
        outcomes.requires_action(
            renewal, attempt, outcome.action_url, now, tally, link=_link(settings, renewal)
        )
    elif isinstance(outcome, RateLimited):
        # Not processed by the gateway: not the customer's fault, no dunning step.
        wait = timedelta(seconds=outcome.retry_after or 1)
        if attempt.reconciled:
            reconcile.resend_refused(renewal, now, wait)
        else:
            outcomes.close_attempt(attempt, "not_sent", now, code="rate_limited")
            outcomes.reschedule(renewal, now + wait, now)
        tally.count("rate_limited")
    elif isinstance(outcome, GatewayUnavailable):
        # Our API key was refused, or the call was never made: the gateway did nothing with
        # this request. The renewal stays due for the sweep after the operator's fix.
        if attempt.reconciled:
            # Only the re-send (or lookup) was refused; the first send may have charged.
            reconcile.resend_refused(renewal, now, timedelta(0))
        else:
            outcomes.close_attempt(attempt, "not_sent", now, code=outcome.code)
            outcomes.reschedule(renewal, now, now)
        tally.count("deferred")
    elif isinstance(outcome, InvalidCardRequest) and not looked_up:
        # Stripe keeps no result for a request that failed validation (a repeat of one that
        # had run would have been replayed): this attempt took no money, and will not.
        outcomes.close_attempt(attempt, "failed", now, code=outcome.code)
        outcomes.fail(renewal, now, tally, settings, code=outcome.code, reason=outcome.message)
    else:
        # OutcomeUnknown, a failed lookup, or any other answer: none proves the money did
        # not move, so the attempt stays open under its key. A new key could charge twice.
        if isinstance(outcome, OutcomeUnknown) and outcome.look_up:
            reconcile.look_up_from_now_on(attempt, outcome.code)
        outcomes.unknown(renewal, now, tally)


def _link(settings: Settings, renewal: RenewalState) -> str:
    return links.authenticate_url(settings, renewal.id)
