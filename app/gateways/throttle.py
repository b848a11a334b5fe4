"""A client-side throttle in front of the card gateway: pace the sweep, honour 429s.

A renewal sweep sends charges as fast as its concurrency allows; Stripe (and the sandbox)
answer past their limit with 429 and Retry-After. Without a throttle every renewal that got a
429 is deferred on its own while the calls still in flight keep hitting the limit: a cascade
of 429s. `ThrottledGateway` wraps any PaymentGateway, one instance shared by the whole process:

    pace    off-session calls leave at most `max_requests_per_second`, evenly spaced: each
            reserves the next free slot of a schedule and sleeps until it (GCRA-like, no
            burst), so nothing polls;
    pause   a 429 shuts a gate for every off-session caller until now + Retry-After, and
            halves the pace, which creeps back up with each success (AIMD);
    retry   the refused call is sent again, same arguments, same idempotency key (a 429 means
            the gateway did nothing), while the call's total wait stays within
            `max_wait_seconds`; past that budget the caller gets RateLimited as without the
            throttle, and the renewal engine reschedules the renewal.

Which calls are throttled: off-session ones only (`charge_off_session`, `find_charge`), the
sweep's traffic, and `get_payment_method`, an import's bulk card checks (app/imports). Card
registration, on-session payments and the rest are a customer waiting on an HTTP request:
queueing them behind a sweep of thousands of renewals would stall the customer area for
minutes. They go straight through and are never retried here (the customer gets 429 with
Retry-After at once), but a 429 they receive still shuts the gate for the sweep: the limit is
the account's. Leave headroom for them when choosing the pace.

With the renewal engine: a call waiting here holds one of the engine's
`renewal_concurrency` slots, which is what we want (the slots bound calls in flight *or* in
line). The renewal's lease is taken before the call, so it must outlive the longest wait
plus the call's timeouts; `check_settings` insists on that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from app.gateways import metrics
from app.gateways.port import (
    CardSetup,
    Charge,
    PaymentGateway,
    RateLimited,
    StoredPaymentMethod,
)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

# A 429 without Retry-After, or with 0 (re-sending at once would only hammer the gateway):
# wait this long before the next off-session call.
DEFAULT_RETRY_AFTER_SECONDS = 1.0
# AIMD: a 429 halves the pace, never below this share of the configured one; each success
# gives back this share, so a single halving is undone after ten successes.
MIN_PACE_SHARE = 1 / 8
RECOVERY_SHARE = 1 / 20


class ThrottledGateway:
    """PaymentGateway that paces off-session calls and waits out the gateway's 429s."""

    def __init__(
        self,
        inner: PaymentGateway,
        *,
        max_requests_per_second: float = 0.0,
        max_wait_seconds: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.inner = inner
        self.max_pace = max_requests_per_second
        self.max_wait_seconds = max_wait_seconds
        # The pace in force: the configured one, lowered for a while after a 429. 0 = unpaced.
        self.pace = max_requests_per_second
        self._monotonic = monotonic
        self._sleep = sleep
        # The schedule: the next off-session call leaves no earlier than both.
        self._next_slot = float("-inf")
        self._paused_until = float("-inf")
        metrics.THROTTLE_PACE.set(self.pace)

    # --- the throttle -------------------------------------------------------------------

    async def _off_session(self, send: Callable[[], Awaitable[T]]) -> T:
        started = self._monotonic()
        deadline = started + self.max_wait_seconds
        sending = 0.0  # time spent in the gateway itself, not waiting
        try:
            while True:
                await self._wait_for_turn(deadline)
                sent = self._monotonic()
                try:
                    result = await send()
                except RateLimited as refused:
                    self._pause(refused, call="off_session")
                    continue
                finally:
                    sending += self._monotonic() - sent
                self._recover()
                return result
        finally:
            metrics.THROTTLE_WAIT.observe(self._monotonic() - started - sending)

    async def _wait_for_turn(self, deadline: float) -> None:
        """Sleep until this call may leave. RateLimited if the turn would come after
        `deadline`: the caller is better off rescheduling than holding on."""
        while True:
            now = self._monotonic()
            turn = max(now, self._paused_until, self._next_slot)
            if turn > deadline:
                metrics.THROTTLE_GAVE_UP.inc()
                raise RateLimited(
                    "The gateway's rate limit leaves no turn for this call within "
                    f"{self.max_wait_seconds:g}s.",
                    retry_after=turn - now,
                )
            if self.pace > 0:
                # Reserved before sleeping: concurrent callers line up one interval apart.
                self._next_slot = turn + 1 / self.pace
            if turn <= now:
                return
            await self._sleep(turn - now)
            if self._paused_until <= turn:
                return
            # A 429 shut the gate past our slot while we slept: it is void, line up again.

    def _pause(self, refused: RateLimited, *, call: str) -> None:
        metrics.RATE_LIMITED.labels(call).inc()
        now = self._monotonic()
        retry_after = refused.retry_after or DEFAULT_RETRY_AFTER_SECONDS
        # Calls in flight when the limit was hit come back with 429s too: one slowdown for
        # one episode, not one per answer.
        if self._paused_until <= now and self.max_pace > 0:
            self.pace = max(self.pace / 2, self.max_pace * MIN_PACE_SHARE)
            metrics.THROTTLE_PACE.set(self.pace)
        self._paused_until = max(self._paused_until, now + retry_after)

    def _recover(self) -> None:
        if self.pace < self.max_pace:
            self.pace = min(self.max_pace, self.pace + self.max_pace * RECOVERY_SHARE)
            metrics.THROTTLE_PACE.set(self.pace)

    async def _customer_facing(self, send: Callable[[], Awaitable[T]]) -> T:
        try:
            return await send()
        except RateLimited as refused:
            self._pause(refused, call="customer")
            raise

    # --- the port -----------------------------------------------------------------------

    async def charge_off_session(
        self,
        *,
        gateway_customer_id: str,
        gateway_payment_method_id: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> Charge:
        return await self._off_session(
            lambda: self.inner.charge_off_session(
                gateway_customer_id=gateway_customer_id,
                gateway_payment_method_id=gateway_payment_method_id,
                amount=amount,
                currency=currency,
                idempotency_key=idempotency_key,
                metadata=metadata,
            )
        )

    async def find_charge(self, idempotency_key: str) -> Charge | None:
        return await self._off_session(lambda: self.inner.find_charge(idempotency_key))

    async def get_payment_method(self, gateway_payment_method_id: str) -> StoredPaymentMethod:
        # An import checks thousands of cards in a row, nobody waiting on each: paced and
        # patient with 429s like the sweep, never crowding out customers' registrations.
        return await self._off_session(
            lambda: self.inner.get_payment_method(gateway_payment_method_id)
        )

    async def ensure_customer(self, *, customer_ref: str, existing_id: str | None) -> str:
        return await self._customer_facing(
            lambda: self.inner.ensure_customer(customer_ref=customer_ref, existing_id=existing_id)
        )

    async def set_up_card(
        self,
        *,
        gateway_customer_id: str,
        payment_method_token: str,
        return_url: str,
        idempotency_key: str,
    ) -> CardSetup:
        return await self._customer_facing(
            lambda: self.inner.set_up_card(
                gateway_customer_id=gateway_customer_id,
                payment_method_token=payment_method_token,
                return_url=return_url,
                idempotency_key=idempotency_key,
            )
        )

    async def refresh_setup(self, setup_id: str) -> CardSetup:
        return await self._customer_facing(lambda: self.inner.refresh_setup(setup_id))

    async def charge_on_session(
        self,
        *,
        gateway_customer_id: str,
        gateway_payment_method_id: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        return_url: str,
        metadata: dict[str, str],
    ) -> Charge:
        return await self._customer_facing(
            lambda: self.inner.charge_on_session(
                gateway_customer_id=gateway_customer_id,
                gateway_payment_method_id=gateway_payment_method_id,
                amount=amount,
                currency=currency,
                idempotency_key=idempotency_key,
                return_url=return_url,
                metadata=metadata,
            )
        )

    async def confirm_on_session(
        self,
        charge_id: str,
        *,
        return_url: str,
        idempotency_key: str,
        gateway_payment_method_id: str | None = None,
    ) -> Charge:
        return await self._customer_facing(
            lambda: self.inner.confirm_on_session(
                charge_id,
                return_url=return_url,
                idempotency_key=idempotency_key,
                gateway_payment_method_id=gateway_payment_method_id,
            )
        )

    async def get_charge(self, charge_id: str) -> Charge:
        return await self._customer_facing(lambda: self.inner.get_charge(charge_id))

    async def tokenize_card(
        self, *, number: str, exp_month: int, exp_year: int, cvc: str | None
    ) -> str:
        return await self._customer_facing(
            lambda: self.inner.tokenize_card(
                number=number, exp_month=exp_month, exp_year=exp_year, cvc=cvc
            )
        )

    async def aclose(self) -> None:
        await self.inner.aclose()
