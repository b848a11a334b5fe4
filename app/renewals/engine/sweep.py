"""One renewal sweep: plan → claim → charge → settle, with reconciliation of lost answers.

    plan       services whose next charge date has come get their next period's Renewal
               (insert-if-absent on (service, period_start); one period at a time)
    claim      due renewals are locked in small batches (SKIP LOCKED on PostgreSQL), each gets
               a `processing` attempt with a deterministic idempotency key and a lease, and
               the transaction commits *before* any money moves
    reconcile  claimed renewals whose lease ran out re-send their open attempt's request
               under the same key (or look it up past the gateway's idempotency window)
    charge     the gateway is called outside any transaction, with bounded concurrency; the
               next batch is claimed as soon as the last one's jobs are all in flight
    settle     each answer is written as soon as it arrives, if the lease is still ours;
               answers that arrive together share one transaction (group commit)
    authenticate  on-session payments waiting at the gateway's 3-D Secure page are asked
               for again: one the customer finished is settled even if they never came back

A gateway that refuses our API key stops the sweep at its first refusal (see
charge.GatewayState): the renewals stay due, the summary says `gateway_unavailable`, and
the process-wide GatewayAvailability (/readyz, the metric) follows.

Card renewals only: SEPA renewals are collected by pain.008 batches (app/sepa), and
app/runs runs the SEPA cycle beside this sweep.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import Clock
from app.core.settings import Settings
from app.gateways.availability import GatewayAvailability
from app.gateways.port import PaymentGateway
from app.renewals import metrics
from app.renewals.engine import authentication, claim, plan, settle
from app.renewals.engine.charge import Answer, GatewayState, call_gateway, charge_batch
from app.renewals.engine.job import ChargeJob, Outcome
from app.renewals.engine.summary import SweepSummary

log = logging.getLogger("autorenew.renewals")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class RenewalEngine:
    """One replica's renewal engine: the stages share its worker name (the lease owner),
    its gateway and its gateway slots."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        gateway: PaymentGateway,
        clock: Clock,
        settings: Settings,
        *,
        worker: str | None = None,
        availability: GatewayAvailability | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.gateway = gateway
        self.clock = clock
        self.settings = settings
        self.worker = worker or worker_name()
        # The process's view of the gateway (app.state, the job context); one of its own
        # for an engine made without it (the CLI, tests).
        self.availability = availability or GatewayAvailability()
        self._gateway_slots = asyncio.Semaphore(settings.renewal_concurrency)
        self._gateway_state = GatewayState()

    async def sweep(self, *, max_batches: int | None = None) -> SweepSummary:
        started = time.perf_counter()
        summary = SweepSummary()
        self._gateway_state = GatewayState()
        summary.planned = await self.plan(summary)
        batches = 0
        charging: list[asyncio.Task[None]] = []
        try:
            while max_batches is None or batches < max_batches:
                if self._gateway_state.refused is not None:
                    break  # charging stops; what was claimed is settled below
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
                batch = asyncio.create_task(self.charge(jobs, summary, all_sent))
                charging.append(batch)
                # The next batch is claimed as soon as every job of this one holds a gateway
                # slot: slots never idle behind a batch's slowest answer, and a claimed
                # renewal never waits long for a slot (its lease runs from the claim).
                sent = asyncio.create_task(all_sent.wait())
                await asyncio.wait([batch, sent], return_when=asyncio.FIRST_COMPLETED)
                sent.cancel()
        finally:
            await asyncio.gather(*charging)
        if self._gateway_state.refused is None:
            await authentication.settle_waiting(
                self.sessionmaker,
                self.gateway,
                self.clock.now(),
                self.settings,
                summary,
                self._gateway_slots,
            )
        self._report_gateway(summary)
        summary.duration_seconds = round(time.perf_counter() - started, 3)
        metrics.SWEEP_DURATION.observe(summary.duration_seconds)
        log.info("renewal sweep", extra={"worker": self.worker, **vars(summary)})
        return summary

    def _report_gateway(self, summary: SweepSummary) -> None:
        refused = self._gateway_state.refused
        if refused is not None:
            summary.gateway_unavailable = True
            summary.gateway_unavailable_reason = refused.message
            self.availability.mark_unavailable(refused.message, now=self.clock.now())
        elif self._gateway_state.answered:
            self.availability.mark_available()

    async def plan(self, summary: SweepSummary | None = None) -> int:
        """Plan what is due; the number of renewals planned (notices go to `summary`)."""
        planned = await plan.plan(self.sessionmaker, self.clock.now(), self.settings)
        if summary is not None:
            summary.notices += planned.notices
        return planned.renewals

    async def claim(self, summary: SweepSummary) -> list[ChargeJob]:
        jobs, tally = await claim.claim_batch(
            self.sessionmaker, self.clock.now(), worker=self.worker, settings=self.settings
        )
        summary.merge(tally)
        return jobs

    async def charge(
        self, jobs: list[ChargeJob], summary: SweepSummary, all_sent: asyncio.Event
    ) -> None:
        """Charge a claimed batch and settle its answers as they arrive."""

        async def call(job: ChargeJob, slot_taken: Callable[[], None]) -> Outcome:
            # self.gateway is read at each call: a test (or the throttle) may wrap it.
            return await call_gateway(
                self.gateway, job, self._gateway_slots, slot_taken, self._gateway_state
            )

        async def settle_answers(group: list[Answer]) -> None:
            await self.settle_group(group, summary)

        await charge_batch(jobs, call=call, settle=settle_answers, all_sent=all_sent)

    async def settle_group(self, group: list[Answer], summary: SweepSummary) -> None:
        await settle.settle_group(
            self.sessionmaker,
            group,
            summary,
            clock=self.clock,
            worker=self.worker,
            settings=self.settings,
        )
