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

from app.gateways.port import GatewayError, OutcomeUnknown, PaymentGateway
from app.renewals import metrics
from app.renewals.engine.job import ChargeJob, Outcome

log = logging.getLogger("autorenew.renewals")

# At most this many answers settle in one transaction: short enough for its row locks to
# be held briefly, long enough to make the commit cost per renewal small.
SETTLEMENT_GROUP_SIZE = 50

Answer = tuple[ChargeJob, Outcome]


async def call_gateway(
    gateway: PaymentGateway,
    job: ChargeJob,
    slots: asyncio.Semaphore,
    slot_taken: Callable[[], None],
) -> Outcome:
    """The gateway's answer, or the error it raised; None means "no charge exists"."""
    async with slots:
        slot_taken()
        started = time.perf_counter()
        try:
            if job.lookup_only:
                return await gateway.find_charge(job.idempotency_key)
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
        finally:
            metrics.GATEWAY_LATENCY.observe(time.perf_counter() - started)


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
