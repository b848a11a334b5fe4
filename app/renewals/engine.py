"""One renewal sweep: plan → claim → charge → settle, with reconciliation of lost answers.

    plan     services whose next charge date has come get their next period's Renewal
             (insert-if-absent on (service, period_start); one period at a time)
    claim    due renewals are locked in small batches (SKIP LOCKED on PostgreSQL), each gets
             a `processing` attempt with a deterministic idempotency key and a lease, and
             the transaction commits *before* any money moves
    charge   the gateway is called outside any transaction, with bounded concurrency; the
             next batch is claimed as soon as the last one's jobs are all in flight
    settle   each answer is written as soon as it arrives, if the lease is still ours;
             answers that arrive together share one transaction (group commit)

A worker that dies after `claim` leaves a processing attempt whose lease runs out; the next
sweep (any replica) claims it again and *reconciles*: it re-sends the same request with the
same idempotency key (the gateway answers with the first result instead of charging again),
or, past the gateway's idempotency window, looks the charge up by key.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import Clock
from app.core.database import transaction
from app.core.ids import new_id
from app.core.scheduler import JobContext
from app.core.settings import Settings
from app.events.service import NewEvent, emit_all
from app.gateways.port import (
    AuthenticationRequired,
    CardDeclined,
    Charge,
    GatewayError,
    OutcomeUnknown,
    PaymentGateway,
    RateLimited,
)
from app.payment_methods.models import PaymentMethod
from app.renewals import fallback, metrics, repository
from app.renewals.dunning import after_soft_failure
from app.renewals.models import Renewal, RenewalAttempt
from app.renewals.notify import Before, transition_events
from app.sepa import collections as sepa_collections
from app.services.lead_time import charge_date_reached, longest_lead_days, next_charge_at
from app.services.models import Service
from app.services.periods import add_months

log = logging.getLogger("autorenew.renewals")

PLANNING_PAGE = 500


@dataclass
class SweepSummary:
    planned: int = 0
    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    retry_scheduled: int = 0
    requires_action: int = 0
    canceled: int = 0
    outcome_unknown: int = 0
    rate_limited: int = 0
    reconciled: int = 0
    payment_method_switched: int = 0
    duration_seconds: float = 0.0

    def count(self, outcome: str, times: int = 1) -> None:
        setattr(self, outcome, getattr(self, outcome) + times)

    def merge(self, tally: SweepSummary) -> None:
        """Add a committed transaction's tally to the sweep's, and to the metrics.

        Outcomes are tallied per transaction and merged only after its commit, so a group
        that rolls back (and is settled again one by one) is never counted twice."""
        for outcome in OUTCOMES:
            counted = getattr(tally, outcome)
            if counted:
                self.count(outcome, counted)
                metrics.RENEWAL_OUTCOMES.labels(outcome).inc(counted)
        self.claimed += tally.claimed
        self.reconciled += tally.reconciled


OUTCOMES = (
    "succeeded",
    "failed",
    "retry_scheduled",
    "requires_action",
    "canceled",
    "outcome_unknown",
    "rate_limited",
    "payment_method_switched",
)


@dataclass(frozen=True)
class ChargeJob:
    """Everything the gateway call needs, copied out of the claim transaction."""

    renewal_id: str
    attempt_id: str
    idempotency_key: str
    amount: int
    currency: str
    gateway_customer_id: str
    gateway_payment_method_id: str
    service_id: str
    reconcile: bool = False
    # A reconciliation past the gateway's idempotency window must look up, not re-send.
    lookup_only: bool = False
    metadata: dict[str, str] = field(default_factory=dict)


# The gateway's answer, or the error it raised; None means "no charge exists" (a lookup).
Outcome = Charge | GatewayError | None

# At most this many answers settle in one transaction: short enough for its row locks to
# be held briefly, long enough to make the commit cost per renewal small.
SETTLEMENT_GROUP_SIZE = 50


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class RenewalEngine:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        gateway: PaymentGateway,
        clock: Clock,
        settings: Settings,
        *,
        worker: str | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.gateway = gateway
        self.clock = clock
        self.settings = settings
        self.worker = worker or worker_name()
        self._gateway_slots = asyncio.Semaphore(settings.renewal_concurrency)

    # --- the sweep ----------------------------------------------------------------------

    async def sweep(self, *, max_batches: int | None = None) -> SweepSummary:
        started = time.perf_counter()
        summary = SweepSummary()
        summary.planned = await self.plan()
        batches = 0
        charging: list[asyncio.Task[None]] = []
        try:
            while max_batches is None or batches < max_batches:
                jobs = await self.claim(summary)
                if not jobs:
                    # Batches still charging may reschedule renewals for now (a fallback
                    # to another method): look again once one of them is done.
                    running = [batch for batch in charging if not batch.done()]
                    if not running:
                        break
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    continue
                batches += 1
                all_sent = asyncio.Event()
                batch = asyncio.create_task(self._charge_batch(jobs, summary, all_sent))
                charging.append(batch)
                # The next batch is claimed as soon as every job of this one holds a gateway
                # slot: slots never idle behind a batch's slowest answer, and a claimed
                # renewal never waits long for a slot (its lease runs from the claim).
                sent = asyncio.create_task(all_sent.wait())
                await asyncio.wait([batch, sent], return_when=asyncio.FIRST_COMPLETED)
                sent.cancel()
        finally:
            await asyncio.gather(*charging)
        await sepa_collections.run_cycle(self.sessionmaker, self.clock, self.settings)
        summary.duration_seconds = round(time.perf_counter() - started, 3)
        metrics.SWEEP_DURATION.observe(summary.duration_seconds)
        log.info("renewal sweep", extra={"worker": self.worker, **vars(summary)})
        return summary

    # --- plan ---------------------------------------------------------------------------

    async def plan(self) -> int:
        """Create the next period's renewal for every service whose charge date has come."""
        now = self.clock.now()
        horizon = now + timedelta(days=longest_lead_days(self.settings))
        due = charge_date_reached(
            self.settings,
            now,
            expires_at=Service.expires_at,
            kind=Service.kind,
            method_type=PaymentMethod.type,
        )
        planned, after = 0, None
        while True:
            async with transaction(self.sessionmaker) as session:
                candidates = await repository.planning_candidates(
                    session,
                    due=due,
                    horizon=horizon,
                    lapsed_before=now - timedelta(days=self.settings.renewal_grace_days),
                    limit=PLANNING_PAGE,
                    after=after,
                )
                rows = [
                    self._new_renewal(service, method_type, now)
                    for service, method_type in candidates
                ]
                planned += await repository.insert_if_absent(session, rows)
            if len(candidates) < PLANNING_PAGE:
                return planned
            last = candidates[-1][0]
            after = (last.expires_at, last.id)

    def _new_renewal(
        self, service: Service, method_type: str | None, now: datetime
    ) -> dict[str, object]:
        due_at = next_charge_at(
            self.settings, expires_at=service.expires_at, kind=service.kind, method_type=method_type
        )
        return {
            "id": new_id("ren"),
            "service_id": service.id,
            "customer_id": service.customer_id,
            "period_start": service.expires_at,
            "period_end": add_months(
                service.expires_at, service.period_months, anchor_day=service.expiry_anchor_day
            ),
            "amount": service.price_amount,
            "currency": service.price_currency,
            "payment_method_id": service.payment_method_id,
            "status": "scheduled",
            "due_at": due_at,
            # Charged now, not at due_at: a service planned late (downtime) is already due.
            "next_attempt_at": now,
            "attempt_count": 0,
            "failed_charge_count": 0,
            "created_at": now,
            "updated_at": now,
        }

    # --- claim --------------------------------------------------------------------------

    async def claim(self, summary: SweepSummary) -> list[ChargeJob]:
        now = self.clock.now()
        jobs: list[ChargeJob] = []
        tally = SweepSummary()
        async with transaction(self.sessionmaker) as session:
            renewals = await repository.claim_due(
                session, now=now, limit=self.settings.renewal_batch_size
            )
            if not renewals:
                return []
            services = await repository.services_by_id(session, [r.service_id for r in renewals])
            method_ids = [s.payment_method_id for s in services.values() if s.payment_method_id]
            methods = await repository.methods_by_id(session, method_ids)
            events: list[NewEvent] = []
            for renewal in renewals:
                tally.claimed += 1
                service = services[renewal.service_id]
                before = Before.of(renewal, service)
                if renewal.status == "processing":
                    job = await self._reclaim(session, renewal, service, now)
                else:
                    method = methods.get(service.payment_method_id or "")
                    method = await self._replace_unusable(
                        session, renewal, service, method, now, tally
                    )
                    job = self._start_attempt(session, renewal, service, method, now, tally)
                    await self._fall_back_or_fail(session, renewal, service, before, now, tally)
                    events += transition_events(renewal, service, before)
                if job is not None:
                    jobs.append(job)
            await emit_all(session, events, now=now)
        summary.merge(tally)
        return jobs

    def _stop_reason(
        self, renewal: Renewal, service: Service, method: PaymentMethod | None
    ) -> str | None:
        """Why this renewal must not be charged any more, if something changed mid-flight."""
        if service.status != "active":
            return "service_cancelled"
        if not service.auto_renew:
            return "auto_renew_off"
        if service.expires_at != renewal.period_start:
            return "service_already_renewed"
        if method is None:
            return "no_payment_method"
        if method.status == "revoked":
            return "payment_method_revoked"
        return None

    def _start_attempt(
        self,
        session: AsyncSession,
        renewal: Renewal,
        service: Service,
        method: PaymentMethod | None,
        now: datetime,
        summary: SweepSummary,
    ) -> ChargeJob | None:
        reason = self._stop_reason(renewal, service, method)
        if reason is not None:
            self._finish(renewal, "canceled", now, code=reason)
            summary.count("canceled")
            return None
        assert method is not None
        if not _chargeable(method):
            # Expired card, failed verification…: the customer can still fix it, so this
            # waits like a soft decline instead of failing at once.
            self._soft_failure(
                renewal, service, now, code="payment_method_unusable", summary=summary
            )
            return None
        # Price changes apply to renewals not charged yet: charge the service's price now.
        renewal.amount, renewal.currency = service.price_amount, service.price_currency
        renewal.payment_method_id = method.id
        renewal.attempt_count += 1
        key = f"renewal:{renewal.id}:attempt:{renewal.attempt_count}"
        attempt = RenewalAttempt(
            id=new_id("att"),
            renewal_id=renewal.id,
            number=renewal.attempt_count,
            idempotency_key=key,
            payment_method_id=method.id,
            amount=renewal.amount,
            currency=renewal.currency,
            status="processing",
            started_at=now,
        )
        session.add(attempt)
        self._lease(renewal, now)
        return ChargeJob(
            renewal_id=renewal.id,
            attempt_id=attempt.id,
            idempotency_key=key,
            amount=renewal.amount,
            currency=renewal.currency,
            gateway_customer_id=method.gateway_customer_id or "",
            gateway_payment_method_id=method.gateway_payment_method_id or "",
            service_id=service.id,
            metadata=self._metadata(renewal, key),
        )

    async def _reclaim(
        self, session: AsyncSession, renewal: Renewal, service: Service, now: datetime
    ) -> ChargeJob | None:
        """A lease ran out with an attempt still open: ask the gateway what happened."""
        attempt = await repository.open_attempt(session, renewal.id)
        if attempt is None:  # settled by its worker after all; nothing to reconcile
            renewal.status, renewal.lease_owner, renewal.lease_expires_at = "scheduled", None, None
            return None
        methods = await repository.methods_by_id(session, [attempt.payment_method_id])
        method = methods[attempt.payment_method_id]
        window = timedelta(hours=self.settings.gateway_idempotency_window_hours)
        self._lease(renewal, now)
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
            lookup_only=now - attempt.started_at >= window,
            metadata=self._metadata(renewal, attempt.idempotency_key),
        )

    def _lease(self, renewal: Renewal, now: datetime) -> None:
        renewal.status = "processing"
        renewal.lease_owner = self.worker
        renewal.lease_expires_at = now + timedelta(seconds=self.settings.renewal_lease_seconds)
        renewal.updated_at = now

    @staticmethod
    def _metadata(renewal: Renewal, key: str) -> dict[str, str]:
        return {
            "renewal_id": renewal.id,
            "service_id": renewal.service_id,
            "customer_id": renewal.customer_id,
            "idempotency_key": key,
        }

    # --- charge -------------------------------------------------------------------------

    async def _call(self, job: ChargeJob, slot_taken: Callable[[], None]) -> Outcome:
        """The gateway's answer, or the error it raised; None means "no charge exists"."""
        async with self._gateway_slots:
            slot_taken()
            started = time.perf_counter()
            try:
                if job.lookup_only:
                    return await self.gateway.find_charge(job.idempotency_key)
                return await self.gateway.charge_off_session(
                    gateway_customer_id=job.gateway_customer_id,
                    gateway_payment_method_id=job.gateway_payment_method_id,
                    amount=job.amount,
                    currency=job.currency,
                    idempotency_key=job.idempotency_key,
                    metadata=job.metadata,
                )
            except GatewayError as error:
                return error
            except Exception as error:  # a bug or an unexpected transport error
                log.exception("gateway call failed", extra={"renewal_id": job.renewal_id})
                return OutcomeUnknown(f"unexpected error: {type(error).__name__}")
            finally:
                metrics.GATEWAY_LATENCY.observe(time.perf_counter() - started)

    async def _charge_batch(
        self, jobs: list[ChargeJob], summary: SweepSummary, all_sent: asyncio.Event
    ) -> None:
        """Charge a claimed batch and settle the answers as they arrive; `all_sent` is set
        once every job holds a gateway slot.

        Each answer is settled as soon as it is in, never held back by a slower charge of
        the same batch. Answers that arrive while a settlement transaction is running are
        settled together in the next one (group commit): with a fast gateway a batch
        settles in a few transactions instead of one per renewal.
        """
        answers: asyncio.Queue[tuple[ChargeJob, Outcome]] = asyncio.Queue()

        waiting_for_slot = len(jobs)

        def slot_taken() -> None:
            nonlocal waiting_for_slot
            waiting_for_slot -= 1
            if waiting_for_slot == 0:
                all_sent.set()

        async def charge(job: ChargeJob) -> None:
            answers.put_nowait((job, await self._call(job, slot_taken)))

        charging = asyncio.gather(*(charge(job) for job in jobs))
        try:
            unsettled = len(jobs)
            while unsettled:
                group = [await answers.get()]
                while not answers.empty() and len(group) < SETTLEMENT_GROUP_SIZE:
                    group.append(answers.get_nowait())
                await self.settle_group(group, summary)
                unsettled -= len(group)
        finally:
            # If settling failed (the database went away), let the charges in flight finish;
            # their attempts stay processing under the lease and are reconciled later.
            await charging

    # --- settle -------------------------------------------------------------------------

    async def settle_group(
        self, group: list[tuple[ChargeJob, Outcome]], summary: SweepSummary
    ) -> None:
        """Write answers in one transaction, if the leases are still ours.

        A group that fails as a whole (a deadlock, a bug in one renewal's rules) is settled
        again one answer per transaction, so one bad renewal cannot hold back the others.
        An answer that cannot be written at all leaves its attempt `processing`: when the
        lease runs out, a sweep reconciles it with the gateway by idempotency key.
        """
        try:
            tally = await self._settle_together(group)
        except Exception:
            if len(group) > 1:
                log.warning("settling a group failed; settling one by one", exc_info=True)
                for answer in group:
                    await self.settle_group([answer], summary)
            else:
                log.exception(
                    "settling a renewal failed; it will be reconciled after its lease",
                    extra={"renewal_id": group[0][0].renewal_id},
                )
            return
        summary.merge(tally)

    async def _settle_together(self, group: list[tuple[ChargeJob, Outcome]]) -> SweepSummary:
        now = self.clock.now()
        tally = SweepSummary()
        async with transaction(self.sessionmaker) as session:
            locked = await repository.lock_for_settlement(
                session, [job.attempt_id for job, _ in group]
            )
            events: list[NewEvent] = []
            for job, outcome in group:
                renewal, attempt, service = locked[job.attempt_id]
                if renewal.lease_owner != self.worker or attempt.status != "processing":
                    # Our lease ran out and another worker took the renewal over: its
                    # answer wins.
                    continue
                if job.reconcile:
                    attempt.reconciled = True
                    tally.reconciled += 1
                before = Before.of(renewal, service)
                self._apply(renewal, attempt, service, outcome, now, tally)
                await self._fall_back_or_fail(session, renewal, service, before, now, tally)
                events += transition_events(renewal, service, before)
            await emit_all(session, events, now=now)
        return tally

    def _apply(
        self,
        renewal: Renewal,
        attempt: RenewalAttempt,
        service: Service,
        outcome: Charge | GatewayError | None,
        now: datetime,
        summary: SweepSummary,
    ) -> None:
        if isinstance(outcome, Charge):
            attempt.gateway_charge_id = outcome.charge_id
            if outcome.status == "succeeded":
                self._succeed(renewal, attempt, service, now, summary)
            elif outcome.status == "requires_action":
                self._requires_action(renewal, attempt, outcome.action_url, now, summary)
            elif outcome.status == "processing":
                self._unknown(renewal, attempt, now, summary)
            else:
                self._declined(
                    renewal,
                    attempt,
                    service,
                    now,
                    summary,
                    code=outcome.failure_code or "charge_failed",
                    decline_code=outcome.decline_code,
                    hard=False,
                )
        elif outcome is None:
            # Looked up past the idempotency window and no charge exists: the attempt never
            # reached the gateway. A new attempt (new key) may be made.
            self._close_attempt(attempt, "not_sent", now, code="no_charge_found")
            self._reschedule(renewal, now, now)
        elif isinstance(outcome, CardDeclined):
            attempt.gateway_charge_id = outcome.charge_id
            self._declined(
                renewal,
                attempt,
                service,
                now,
                summary,
                code=outcome.code,
                decline_code=outcome.decline_code,
                hard=outcome.hard,
            )
        elif isinstance(outcome, AuthenticationRequired):
            attempt.gateway_charge_id = outcome.charge_id
            self._requires_action(renewal, attempt, outcome.action_url, now, summary)
        elif isinstance(outcome, RateLimited):
            # Not processed by the gateway: not the customer's fault, no dunning step.
            wait = timedelta(seconds=outcome.retry_after or 1)
            if attempt.reconciled:
                # Only the re-send was refused; the first send, whose answer was lost, may
                # have charged. The attempt stays open under its key and is reconciled
                # again once the gateway lets us: a new attempt (new key) could charge twice.
                renewal.lease_expires_at = now + wait
                renewal.updated_at = now
            else:
                self._close_attempt(attempt, "not_sent", now, code="rate_limited")
                self._reschedule(renewal, now + wait, now)
            summary.count("rate_limited")
        elif isinstance(outcome, OutcomeUnknown):
            self._unknown(renewal, attempt, now, summary)
        else:
            # Any other refusal (an unusable token, …) will not get better by itself.
            self._close_attempt(attempt, "failed", now, code=outcome.code)
            self._fail(renewal, now, summary, code=outcome.code, reason=outcome.message)

    def _succeed(
        self,
        renewal: Renewal,
        attempt: RenewalAttempt,
        service: Service,
        now: datetime,
        summary: SweepSummary,
    ) -> None:
        self._close_attempt(attempt, "succeeded", now)
        self._finish(renewal, "succeeded", now)
        # Move the expiry one period from the previous expiry, not from now, and only if
        # nobody moved it meanwhile: never extend twice for one payment.
        if service.expires_at == renewal.period_start:
            service.expires_at = renewal.period_end
            service.updated_at = now
        else:
            log.warning(
                "renewal charged but the service expiry had changed",
                extra={"renewal_id": renewal.id, "service_id": service.id},
            )
        summary.count("succeeded")

    def _declined(
        self,
        renewal: Renewal,
        attempt: RenewalAttempt,
        service: Service,
        now: datetime,
        summary: SweepSummary,
        *,
        code: str,
        decline_code: str | None,
        hard: bool,
    ) -> None:
        self._close_attempt(attempt, "failed", now, code=code)
        attempt.decline_code, attempt.hard_decline = decline_code, hard
        if hard:
            self._fail(renewal, now, summary, code=decline_code or code, reason="hard decline")
            return
        self._soft_failure(renewal, service, now, code=decline_code or code, summary=summary)

    def _soft_failure(
        self, renewal: Renewal, service: Service, now: datetime, *, code: str, summary: SweepSummary
    ) -> None:
        renewal.failed_charge_count += 1
        decision = after_soft_failure(
            failed_charges=renewal.failed_charge_count,
            now=now,
            schedule_days=self.settings.dunning_schedule_days,
            service_expires_at=service.expires_at,
            grace_days=self.settings.renewal_grace_days,
        )
        renewal.failure_code = code
        if decision.retry_at is None:
            self._fail(renewal, now, summary, code=code, reason=decision.reason)
        else:
            self._reschedule(renewal, decision.retry_at, now)
            summary.count("retry_scheduled")

    def _fail(
        self,
        renewal: Renewal,
        now: datetime,
        summary: SweepSummary,
        *,
        code: str,
        reason: str | None,
    ) -> None:
        """The renewal's method failed for good. With the fallback on, `_fall_back_or_fail`
        (run once this step is done) may still give it another method, and counts it."""
        self._finish(renewal, "failed", now, code=code, reason=reason)
        if not self.settings.renewal_fallback_enabled:
            summary.count("failed")

    # --- the optional payment-method fallback (app/renewals/fallback.py) ----------------

    async def _replace_unusable(
        self,
        session: AsyncSession,
        renewal: Renewal,
        service: Service,
        method: PaymentMethod | None,
        now: datetime,
        summary: SweepSummary,
    ) -> PaymentMethod | None:
        """With the fallback on, a method that can no longer pay (expired card, failed
        verification) is replaced before the charge, so the next method is charged at once.
        Without a replacement the unusable method waits as before (`_start_attempt`)."""
        if (
            not self.settings.renewal_fallback_enabled
            or method is None
            or _chargeable(method)
            or self._stop_reason(renewal, service, method) is not None
        ):
            return method
        replacement = await fallback.switch_to_next_method(
            session,
            renewal,
            service,
            failed_method_id=method.id,
            failure="payment_method_unusable",
            settings=self.settings,
            now=now,
        )
        if replacement is None:
            return method
        summary.count("payment_method_switched")
        return replacement

    async def _fall_back_or_fail(
        self,
        session: AsyncSession,
        renewal: Renewal,
        service: Service,
        before: Before,
        now: datetime,
        summary: SweepSummary,
    ) -> None:
        """With the fallback on, a renewal that has just failed is charged again, now, with
        the customer's next method; it stays failed only when no method is left."""
        if not self.settings.renewal_fallback_enabled:
            return
        if renewal.status != "failed" or before.status == "failed":
            return
        method = await fallback.switch_to_next_method(
            session,
            renewal,
            service,
            # The method of the attempt that failed (set when the attempt was started).
            failed_method_id=renewal.payment_method_id,
            failure=renewal.failure_code or "failed",
            settings=self.settings,
            now=now,
        )
        if method is None:
            renewal.failure_reason = f"{renewal.failure_reason or ''}"[:220] + (
                "; fallback methods exhausted"
            )
            summary.count("failed")
            return
        # A new method starts its own dunning; the grace rule in after_soft_failure still
        # bounds it, and the switch itself was only allowed within the grace.
        renewal.failed_charge_count = 0
        renewal.failure_reason, renewal.finished_at = None, None
        self._reschedule(renewal, now, now)
        summary.count("payment_method_switched")

    def _requires_action(
        self,
        renewal: Renewal,
        attempt: RenewalAttempt,
        url: str | None,
        now: datetime,
        summary: SweepSummary,
    ) -> None:
        self._close_attempt(attempt, "requires_action", now, code="authentication_required")
        renewal.status = "requires_action"
        renewal.action_url = url
        renewal.failure_code = "authentication_required"
        renewal.next_attempt_at = None
        renewal.lease_owner, renewal.lease_expires_at = None, None
        renewal.updated_at = now
        summary.count("requires_action")

    def _unknown(
        self, renewal: Renewal, attempt: RenewalAttempt, now: datetime, summary: SweepSummary
    ) -> None:
        # Leave the attempt processing under its lease: when the lease runs out, a sweep
        # reconciles it by idempotency key. Nothing is retried blind.
        renewal.updated_at = now
        summary.count("outcome_unknown")

    def _reschedule(self, renewal: Renewal, at: datetime, now: datetime) -> None:
        renewal.status = "scheduled"
        renewal.next_attempt_at = at
        renewal.lease_owner, renewal.lease_expires_at = None, None
        renewal.updated_at = now

    @staticmethod
    def _close_attempt(
        attempt: RenewalAttempt, status: str, now: datetime, *, code: str | None = None
    ) -> None:
        attempt.status = status
        attempt.failure_code = code
        attempt.finished_at = now

    @staticmethod
    def _finish(
        renewal: Renewal,
        status: str,
        now: datetime,
        *,
        code: str | None = None,
        reason: str | None = None,
    ) -> None:
        renewal.status = status
        renewal.failure_code = code if status != "succeeded" else None
        renewal.failure_reason = reason or code if status != "succeeded" else None
        renewal.next_attempt_at = None
        renewal.lease_owner, renewal.lease_expires_at = None, None
        renewal.updated_at = now
        renewal.finished_at = now


def _chargeable(method: PaymentMethod) -> bool:
    """A validated method the gateway can charge off-session."""
    return method.status == "validated" and bool(method.gateway_payment_method_id)


async def sweep_renewals(context: JobContext) -> SweepSummary:
    """The scheduled job: one sweep with this replica's gateway."""
    if context.gateway is None:
        raise RuntimeError("the renewal sweep needs a payment gateway in its job context")
    engine = RenewalEngine(context.sessionmaker, context.gateway, context.clock, context.settings)
    return await engine.sweep()
