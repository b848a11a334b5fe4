"""HTTP load for benchmarks: a fixed-rate open-loop run and a saturation run.

Open loop (`fixed_rate`): request i is due at `start + i / rate`, whatever happened to the
requests before it. Each request runs in its own task, so a slow answer never delays the
next send, and its latency is measured from when it was *due*, not from when it actually
left. A closed-loop client (send, wait, send) stops sending while the server stalls and so
hides the stall from its own figures ("coordinated omission"); measuring from the due time
charges every queued request with the wait it really had. `late` counts requests that left
more than `LATE_SECONDS` after their due time: when it is large the load generator itself
could not keep up (the machine is saturated), and the figures say more about the client.

Saturation (`max_throughput`): C workers each send the next request as soon as their last
one is answered, for D seconds; the completed requests per second is the throughput the
server sustains with C requests in flight. C (default 32) is well above what one event
loop needs to stay busy, so the server, not the client, is the bottleneck. Latency from
this run is meaningless (it is whatever queueing C requests costs); use `fixed_rate` at a
rate below the maximum for latency.

    result = await fixed_rate(same(url, headers), rate=200, duration=10)
    print(result.line())

`requests` is a function of the request's index giving its URL and headers, so a run can
spread over many customers: `lambda i: (f"{base}/v1/services", tokens[i % len(tokens)])`.
`client_cpu` is the share of one core the load generator itself used: near 1.0 it, not
the server, may be the bottleneck.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

LATE_SECONDS = 0.005

Headers = Mapping[str, str] | None
Requests = Callable[[int], tuple[str, Headers]]


def same(url: str, headers: Headers = None) -> Requests:
    """Every request to one URL with the same headers."""
    return lambda _index: (url, headers)


@dataclass
class LoadResult:
    """What one run measured. Latencies in seconds, from each request's due time."""

    sent: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    # What the errors were: an HTTP status ("503") or a transport error's class name.
    error_kinds: Counter[str] = field(default_factory=Counter)
    late: int = 0
    client_cpu: float = 0.0

    @property
    def rps(self) -> float:
        """Answered requests (any status) per second of wall time."""
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))
        return ordered[index]

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p90(self) -> float:
        return self.percentile(90)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    @property
    def max(self) -> float:
        return max(self.latencies) if self.latencies else math.nan

    def line(self) -> str:
        def ms(seconds: float) -> str:
            return f"{seconds * 1000:7.1f}"

        return (
            f"{self.rps:7.0f} rps  p50 {ms(self.p50)} ms  p90 {ms(self.p90)} ms  "
            f"p99 {ms(self.p99)} ms  max {ms(self.max)} ms  "
            f"errors {self.errors}{self._kinds()}  late {self.late}/{self.sent}  "
            f"client cpu {self.client_cpu:.0%}"
        )

    def _kinds(self) -> str:
        if not self.error_kinds:
            return ""
        return " (" + ", ".join(f"{k} x{n}" for k, n in self.error_kinds.most_common()) + ")"

    def record(self, latency: float, error: str | None) -> None:
        self.latencies.append(latency)
        if error is not None:
            self.errors += 1
            self.error_kinds[error] += 1


def _client(connections: int, timeout: float) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(limits=limits, timeout=timeout)


async def _failed(
    client: httpx.AsyncClient,
    url: str,
    headers: Headers,
    ok: Callable[[int], bool],
) -> str | None:
    """Send one GET; what went wrong (a refused status or a transport error), or None."""
    try:
        response = await client.get(url, headers=headers)
    except httpx.HTTPError as error:
        return type(error).__name__
    return None if ok(response.status_code) else str(response.status_code)


def _2xx(status: int) -> bool:
    return 200 <= status < 300


async def fixed_rate(
    requests: Requests,
    *,
    rate: float,
    duration: float,
    connections: int = 256,
    request_timeout: float = 30.0,
    ok: Callable[[int], bool] = _2xx,
) -> LoadResult:
    """GET `requests(i)` at `rate` requests per second for `duration` seconds (open loop).

    A request that fails (transport error, timeout, or a status `ok` refuses) counts as an
    error; its latency is still recorded, so errors cannot make the figures look better.
    """
    total = max(1, int(rate * duration))
    interval = 1.0 / rate
    result = LoadResult(sent=total, seconds=0.0)
    loop = asyncio.get_running_loop()

    async with _client(connections, request_timeout) as client:

        async def one(index: int, due: float) -> None:
            if loop.time() - due > LATE_SECONDS:
                result.late += 1
            url, headers = requests(index)
            failed = await _failed(client, url, headers, ok)
            result.record(loop.time() - due, failed)

        tasks = []
        cpu = time.process_time()
        start = loop.time() + 0.05
        for index in range(total):
            due = start + index * interval
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(index, due)))
        await asyncio.gather(*tasks)
        result.seconds = loop.time() - start
        result.client_cpu = (time.process_time() - cpu) / result.seconds
    return result


async def max_throughput(
    requests: Requests,
    *,
    duration: float,
    workers: int = 32,
    request_timeout: float = 30.0,
    ok: Callable[[int], bool] = _2xx,
) -> LoadResult:
    """Closed-loop saturation: `workers` clients back to back for `duration` seconds."""
    result = LoadResult(sent=0, seconds=0.0)
    async with _client(workers, request_timeout) as client:
        # One untimed request per connection first, so connection set-up is not measured.
        await asyncio.gather(*(_failed(client, *requests(i), ok) for i in range(workers)))
        cpu = time.process_time()
        started = time.perf_counter()
        deadline = started + duration

        async def worker() -> None:
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                url, headers = requests(result.sent)
                result.sent += 1
                failed = await _failed(client, url, headers, ok)
                result.record(time.perf_counter() - sent, failed)

        await asyncio.gather(*(worker() for _ in range(workers)))
        result.seconds = time.perf_counter() - started
        result.client_cpu = (time.process_time() - cpu) / result.seconds
    return result
