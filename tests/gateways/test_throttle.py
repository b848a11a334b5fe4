"""The gateway throttle: pacing, 429 pauses shared by every caller, the wait budget.

Time is virtual: the throttle and the scripted gateway sleep on `VirtualTime`, which moves
the clock to the next sleeper's deadline once every task is blocked. Only the last test uses
real time, against a rate-limited sandbox process.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import Counter
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from app.gateways.port import Charge, PaymentGateway, RateLimited, StoredPaymentMethod
from app.gateways.stripe import StripeGateway, default_timeout
from app.gateways.throttle import ThrottledGateway
from tests import processes
from tests.renewals.fake_gateway import FakeGateway


class VirtualTime:
    """A clock the test drives: sleepers wake in deadline order, one at a time, each once
    everything else is blocked."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), woken))
        await woken

    async def run(self, *calls: Coroutine[Any, Any, Any]) -> list[Any]:
        """Run the calls to the end; their results, or the exceptions they raised."""
        tasks = [asyncio.ensure_future(call) for call in calls]
        while True:
            for _ in range(50):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
            if all(task.done() for task in tasks):
                return await asyncio.gather(*tasks, return_exceptions=True)
            assert self._sleepers, "every task is blocked and nobody sleeps"
            self.now, _, woken = heapq.heappop(self._sleepers)
            woken.set_result(None)


@dataclass
class ScriptedGateway(FakeGateway):
    """Answers after `latency` virtual seconds; a key listed in `refusals` is answered with
    429s first, one per listed Retry-After. `sent`: (virtual time, key) of every request."""

    time: VirtualTime = field(default_factory=VirtualTime)
    latency: float = 0.0
    refusals: dict[str, list[float | None]] = field(default_factory=dict)
    sent: list[tuple[float, str]] = field(default_factory=list)

    async def _answer(self, key: str) -> None:
        self.sent.append((self.time.now, key))
        if self.latency:
            await self.time.sleep(self.latency)
        if self.refusals.get(key):
            raise RateLimited("slow down", retry_after=self.refusals[key].pop(0))

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
        await self._answer(idempotency_key)
        return Charge(f"pi_{idempotency_key}", "succeeded", amount, currency, idempotency_key)

    async def find_charge(self, idempotency_key: str) -> Charge | None:
        await self._answer(idempotency_key)
        return None

    async def ensure_customer(self, *, customer_ref: str, existing_id: str | None) -> str:
        await self._answer(customer_ref)
        return f"cus_{customer_ref}"

    async def charge_on_session(self, **kwargs: Any) -> Charge:
        await self._answer(kwargs["idempotency_key"])
        return await super().charge_on_session(**kwargs)

    async def get_payment_method(self, gateway_payment_method_id: str) -> StoredPaymentMethod:
        await self._answer(gateway_payment_method_id)
        return StoredPaymentMethod(gateway_payment_method_id, "card", "cus_1", None)


def charge(gateway: PaymentGateway, key: str) -> Awaitable[Charge]:
    return gateway.charge_off_session(
        gateway_customer_id="cus_1",
        gateway_payment_method_id="pm_1",
        amount=1000,
        currency="EUR",
        idempotency_key=key,
        metadata={},
    )


def throttled(
    time: VirtualTime, inner: PaymentGateway, *, rate: float = 0.0, max_wait: float = 30.0
) -> ThrottledGateway:
    return ThrottledGateway(
        inner,
        max_requests_per_second=rate,
        max_wait_seconds=max_wait,
        monotonic=time.monotonic,
        sleep=time.sleep,
    )


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def started_at(gateway: ScriptedGateway) -> list[float]:
    return [at for at, _key in gateway.sent]


async def test_pacing_spaces_calls_at_one_over_the_rate() -> None:
    time = VirtualTime()
    inner = ScriptedGateway(time=time, latency=0.05)
    gateway = throttled(time, inner, rate=10)
    results = await time.run(*(charge(gateway, f"k{n}") for n in range(5)))
    assert all(isinstance(result, Charge) for result in results)
    assert started_at(inner) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


async def test_no_pacing_when_the_rate_is_zero() -> None:
    time = VirtualTime()
    inner = ScriptedGateway(time=time, latency=0.05)
    gateway = throttled(time, inner, rate=0)
    results = await time.run(*(charge(gateway, f"k{n}") for n in range(10)))
    assert all(isinstance(result, Charge) for result in results)
    assert started_at(inner) == [0.0] * 10


async def test_a_429_pauses_every_caller_and_the_same_call_is_retried() -> None:
    time = VirtualTime()
    # k0 leaves at 0 and its 429 (Retry-After 2) comes back at 0.25, while k1 and k2 are in
    # flight and k3… are waiting for their slots.
    inner = ScriptedGateway(time=time, latency=0.25, refusals={"k0": [2.0]})
    gateway = throttled(time, inner, rate=10)
    refused_before = metric("autorenew_gateway_rate_limited_total", call="off_session")

    results = await time.run(*(charge(gateway, f"k{n}") for n in range(6)))

    assert [result.idempotency_key for result in results] == [f"k{n}" for n in range(6)]
    # Nobody left while the gate was shut: the 429 answered at 0.25 paused everyone to 2.25.
    assert not [at for at in started_at(inner) if 0.25 < at < 2.25]
    assert [at for at, key in inner.sent if key == "k0"] == pytest.approx([0.0, 2.25])
    # After the pause, calls leave one at a time, at the lowered pace or slower.
    after = sorted(at for at in started_at(inner) if at >= 2.25)
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(after))
    assert 5 <= gateway.pace < 10  # halved once, creeping back with each success
    assert metric("autorenew_gateway_rate_limited_total", call="off_session") == refused_before + 1


async def test_a_429_without_retry_after_pauses_one_second() -> None:
    time = VirtualTime()
    inner = ScriptedGateway(time=time, refusals={"k0": [None]})
    gateway = throttled(time, inner)
    [result] = await time.run(charge(gateway, "k0"))
    assert isinstance(result, Charge)
    assert started_at(inner) == [0.0, 1.0]


async def test_past_the_wait_budget_rate_limited_reaches_the_caller() -> None:
    time = VirtualTime()
    inner = ScriptedGateway(time=time, refusals={"k0": [10.0] * 10})
    gateway = throttled(time, inner, max_wait=30)
    gave_up_before = metric("autorenew_gateway_throttle_gave_up_total")
    waited_before = metric("autorenew_gateway_throttle_wait_seconds_sum")

    [result] = await time.run(charge(gateway, "k0"))

    assert isinstance(result, RateLimited)
    assert result.retry_after == pytest.approx(10)
    # Sent at 0, 10, 20 and 30; the next turn (40) is past the budget, so no waiting for it.
    assert started_at(inner) == [0.0, 10.0, 20.0, 30.0]
    assert time.now == 30.0
    assert metric("autorenew_gateway_throttle_gave_up_total") == gave_up_before + 1
    assert metric("autorenew_gateway_throttle_wait_seconds_sum") == waited_before + 30


async def test_a_retry_after_longer_than_the_budget_is_handed_back_at_once() -> None:
    time = VirtualTime()
    inner = ScriptedGateway(time=time, refusals={"k0": [60.0]})
    [result] = await time.run(charge(throttled(time, inner, max_wait=30), "k0"))
    assert isinstance(result, RateLimited)
    assert result.retry_after == pytest.approx(60)
    assert started_at(inner) == [0.0]


async def test_a_queue_longer_than_the_budget_is_not_sent() -> None:
    time = VirtualTime()
    inner = ScriptedGateway(time=time)
    gateway = throttled(time, inner, rate=1, max_wait=2)
    results = await time.run(*(charge(gateway, f"k{n}") for n in range(5)))
    assert [type(result) for result in results] == [Charge] * 3 + [RateLimited] * 2
    assert started_at(inner) == [0.0, 1.0, 2.0]
    # The engine reschedules them for when their turn would have come.
    assert [result.retry_after for result in results[3:]] == pytest.approx([3.0, 3.0])


async def test_lookups_are_paced_like_charges() -> None:
    time = VirtualTime()
    inner = ScriptedGateway(time=time)
    gateway = throttled(time, inner, rate=4)
    await time.run(*(gateway.find_charge(f"k{n}") for n in range(3)))
    assert started_at(inner) == [0.0, 0.25, 0.5]


async def test_import_lookups_are_paced_and_wait_out_429s() -> None:
    time = VirtualTime()
    inner = ScriptedGateway(time=time, refusals={"pm_1": [1.0]})
    gateway = throttled(time, inner, rate=4)
    found = await time.run(*(gateway.get_payment_method(f"pm_{n}") for n in range(3)))
    assert [item.gateway_payment_method_id for item in found] == ["pm_0", "pm_1", "pm_2"]
    # pm_1's 429 at 0.25 shuts the gate for a second; the pace is halved after it.
    assert [at for at, key in inner.sent if key == "pm_1"] == pytest.approx([0.25, 1.25])
    assert max(started_at(inner)) >= 1.25


async def test_customer_calls_skip_the_queue_but_their_429_pauses_the_sweep() -> None:
    time = VirtualTime()
    inner = ScriptedGateway(time=time, refusals={"c-late": [5.0]})
    gateway = throttled(time, inner, rate=1)

    async def registrations() -> str:
        # k0 has the slot at 0 and k1 the one at 1; a customer does not wait for either.
        first = await gateway.ensure_customer(customer_ref="c-now", existing_id=None)
        with pytest.raises(RateLimited):  # not retried: the customer is told at once
            await gateway.ensure_customer(customer_ref="c-late", existing_id=None)
        return first

    results = await time.run(charge(gateway, "k0"), charge(gateway, "k1"), registrations())

    assert results[2] == "cus_c-now"
    assert inner.sent[:4] == [(0.0, "k0"), (0.0, "c-now"), (0.0, "c-late"), (5.0, "k1")]


async def test_on_session_payments_skip_the_queue() -> None:
    """A customer paying now is not queued behind the sweep, nor retried on a 429 (told at
    once); the on-session calls reach the gateway unchanged."""
    time = VirtualTime()
    inner = ScriptedGateway(time=time, refusals={"pay-late": [4.0]}, behaviours={"pm_3ds": "auth"})
    gateway = throttled(time, inner, rate=1)

    async def customer() -> Charge:
        def pay(key: str) -> Awaitable[Charge]:
            return gateway.charge_on_session(
                gateway_customer_id="cus_1",
                gateway_payment_method_id="pm_3ds",
                amount=1000,
                currency="EUR",
                idempotency_key=key,
                return_url="https://r.test",
                metadata={},
            )

        paid = await pay("pay-now")
        with pytest.raises(RateLimited):
            await pay("pay-late")
        return paid

    results = await time.run(charge(gateway, "k0"), charge(gateway, "k1"), customer())
    assert inner.sent[:4] == [(0.0, "k0"), (0.0, "pay-now"), (0.0, "pay-late"), (4.0, "k1")]
    waiting = results[2]
    assert (waiting.status, waiting.action_url) == ("requires_action", "https://gw/3ds/pi_1")
    confirmed = await gateway.confirm_on_session(
        waiting.charge_id, return_url="https://r.test", idempotency_key="c-1"
    )
    assert confirmed == waiting
    inner.complete_authentication(waiting.charge_id)
    assert (await gateway.get_charge(waiting.charge_id)).status == "succeeded"


@pytest.mark.slow
async def test_a_paced_burst_against_a_rate_limited_sandbox_process(tmp_path: Path) -> None:
    """30 charges at once against a sandbox allowing 10 requests per second (bursts of 10):
    bare, many are refused; through the throttle at 10 per second, all succeed, each charged
    once, with at most a few 429s (the bare burst has just emptied the sandbox's bucket)."""
    with processes.sandbox_gateway(
        tmp_path,
        name="rate-limited",
        ledger=tmp_path / "ledger.db",
        AUTORENEW_SANDBOX_RATE_LIMIT_PER_SECOND="10",
    ) as url:
        adapter = StripeGateway(api_key="sk_test_throttle", base_url=url, timeout=default_timeout())
        gateway = ThrottledGateway(adapter, max_requests_per_second=10, max_wait_seconds=20)
        try:
            customer = await gateway.ensure_customer(customer_ref="c-burst", existing_id=None)
            setup = await gateway.set_up_card(
                gateway_customer_id=customer,
                payment_method_token="pm_card_visa",
                return_url="https://r.test",
                idempotency_key="reg-burst",
            )

            def charge_card(through: PaymentGateway, key: str) -> Awaitable[Charge]:
                return through.charge_off_session(
                    gateway_customer_id=customer,
                    gateway_payment_method_id=setup.gateway_payment_method_id,
                    amount=500,
                    currency="EUR",
                    idempotency_key=key,
                    metadata={},
                )

            bare = await asyncio.gather(
                *(charge_card(adapter, f"bare-{n}") for n in range(30)), return_exceptions=True
            )
            # Only 7 tokens were left, but a loaded machine sends the burst slowly and the
            # bucket refills meanwhile: "many" is kept modest.
            assert sum(isinstance(result, RateLimited) for result in bare) >= 5

            refused_before = metric("autorenew_gateway_rate_limited_total", call="off_session")
            paced = await asyncio.gather(*(charge_card(gateway, f"paced-{n}") for n in range(30)))
            assert all(result.status == "succeeded" for result in paced)
            refused = metric("autorenew_gateway_rate_limited_total", call="off_session")
            assert refused - refused_before <= 3

            await asyncio.sleep(1)  # the ledger view is behind the same rate limit
            async with httpx.AsyncClient(
                base_url=url, headers={"Authorization": "Bearer sk_test_throttle"}
            ) as api:
                charges = (await api.get("/_ledger/charges")).json()["data"]
            keys = Counter(str(made["idempotency_key"]) for made in charges)
            assert {key: keys[key] for key in keys if key.startswith("paced-")} == {
                f"paced-{n}": 1 for n in range(30)
            }
            bare_made = sum(isinstance(result, Charge) for result in bare)
            assert sum(1 for key in keys if key.startswith("bare-")) == bare_made
        finally:
            await gateway.aclose()
