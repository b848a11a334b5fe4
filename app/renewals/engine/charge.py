"""Charge: the claimed jobs go to the gateway outside any transaction, a bounded number at once.

Runs after claim has committed. Every answer, or the error the gateway raised, is handed on
to settle as soon as it arrives; answers that arrive while a settlement is being written
are settled together in the next one (group commit), so a fast gateway costs a few
transactions per batch instead of one per renewal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.gateways.port import (
    AuthenticationRequired,
    CardDeclined,
    Charge,
    GatewayError,
    GatewayUnavailable,
    OutcomeUnknown,
    PaymentGateway,
)
from app.renewals import metrics
from app.renewals.engine.job import ChargeJob, Outcome

log = logging.getLogger("autorenew.renewals")

# At most this many answers settle in one transaction: short enough for its row locks to
# be held briefly, long enough to make the commit cost per renewal small.
SETTLEMENT_GROUP_SIZE = 50

Answer = tuple[ChargeJob, Outcome]

# Answers only a gateway that accepted our API key gives (a lookup's None included).
_REAL_ANSWERS = (Charge, CardDeclined, AuthenticationRequired)


@dataclass
class GatewayState:
    """What one sweep has learnt about the gateway as a whole.

    The first GatewayUnavailable (our API key refused) stops the sweep: every job still
    waiting for a gateway slot comes back unsent with the same refusal, instead of
    spending the batch on answers that cannot differ, and no further batch is claimed."""

    refused: GatewayUnavailable | None = None
    answered: bool = False

    def saw(self, outcome: Outcome) -> None:
        if isinstance(outcome, GatewayUnavailable):
            self.refused = self.refused or outcome
        elif outcome is None or isinstance(outcome, _REAL_ANSWERS):
            self.answered = True


async def call_gateway(
    gateway: PaymentGateway,
    job: ChargeJob,
    slots: asyncio.Semaphore,
    slot_taken: Callable[[], None],
    state: GatewayState,
) -> Outcome:
    """The gateway's answer, or the error it raised; None means "no charge found"."""
    async with slots:
        slot_taken()
        if state.refused is not None:
            return GatewayUnavailable(f"Not sent: {state.refused.message}")
        started = time.perf_counter()
        outcome = await send(gateway, job)
        metrics.GATEWAY_LATENCY.observe(time.perf_counter() - started)
        state.saw(outcome)
        return outcome


async def send(gateway: PaymentGateway, job: ChargeJob) -> Outcome:
    """One job to the gateway (a charge, a confirmation or a lookup); its error as a value."""
    try:
        if job.lookup_only and job.charge_id is not None:
            return await gateway.get_charge(job.charge_id)
        if job.lookup_only:
            return await gateway.find_charge(job.idempotency_key)
        if job.mode == "confirm" and job.charge_id is not None:
            return await gateway.confirm_on_session(
                job.charge_id,
                return_url=job.return_url,
                idempotency_key=job.idempotency_key,
                gateway_payment_method_id=job.gateway_payment_method_id,
            )
        if job.mode == "on_session":
            return await gateway.charge_on_session(
                gateway_customer_id=job.gateway_customer_id,
                gateway_payment_method_id=job.gateway_payment_method_id,
                amount=job.amount,
                currency=job.currency,
                idempotency_key=job.idempotency_key,
                return_url=job.return_url,
                metadata=job.metadata,
            )
        return await gateway.charge_off_session(
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


async def charge_batch(
    jobs: list[ChargeJob],
    *,
    call: Callable[[ChargeJob, Callable[[], None]], Awaitable[Outcome]],
    settle: Callable[[list[Answer]], Awaitable[None]],
    all_sent: asyncio.Event,
) -> None:
    """Charge a claimed batch with `call` and hand the answers to `settle` as they arrive;
    `all_sent` is set once every job holds a gateway slot.

    Each answer is settled as soon as it is in, never held back by a slower charge of the
    same batch.
    """
    answers: asyncio.Queue[Answer] = asyncio.Queue()
    waiting_for_slot = len(jobs)

    def slot_taken() -> None:
        nonlocal waiting_for_slot
        waiting_for_slot -= 1
        if waiting_for_slot == 0:
            all_sent.set()

    async def charge(job: ChargeJob) -> None:
        answers.put_nowait((job, await call(job, slot_taken)))

    charging = asyncio.gather(*(charge(job) for job in jobs))
    try:
        unsettled = len(jobs)
        while unsettled:
            group = [await answers.get()]
            while not answers.empty() and len(group) < SETTLEMENT_GROUP_SIZE:
                group.append(answers.get_nowait())
            await settle(group)
            unsettled -= len(group)
    finally:
        # If settling failed (the database went away), let the charges in flight finish;
        # their attempts stay processing under the lease and are reconciled later.
        await charging
