"""A renewal sweep against a slow, rate-limited gateway, and what it does to the API.

    .venv/bin/python -m bench.gateway_sweep [--count 1500] [--api-rate 20] [--idle 15]

Three processes: the sandbox gateway (`autorenew sandbox-gateway`: log-normal latency with
a 300 ms median, 25 requests/s, then 429 + Retry-After), the app under uvicorn (scheduler
off, gateway = that sandbox, AUTORENEW_GATEWAY_MAX_REQUESTS_PER_SECOND=25 for the client
throttle where it exists), and this load generator. N renewals are due (seeded as
bench/renewals.py does, 50 customers with a validated card each); the sweep is started with
`POST /v1/admin/renewals/run`, again until every renewal succeeded (rate-limited ones are
rescheduled a second or so later).

Figures:
- renewals/s over the sweep, against the gateway's 25/s (aim: ratio >= 0.9);
- 429s the sandbox answered (its /_ledger/summary `rate_limited`) and the engine counted;
- p99 of `GET /v1/services` at a fixed open-loop rate while idle and during the sweep
  (aim: during/idle <= 1.5).

The cards are registered first through a sandbox process without latency or limit on the
same ledger, so set-up does not eat the rate limit. Needs PostgreSQL
(AUTORENEW_BENCH_DATABASE_URL); its databases are created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.core.auth import mint_token
from app.core.settings import Settings
from app.gateways.stripe import StripeGateway, default_timeout
from bench.common import migrated_database, scratch_database, server_url
from bench.loadgen import LoadResult, Requests, fixed_rate
from bench.renewals import API_KEY, CARDS, count_succeeded, seed, seed_cards
from tests import processes

GATEWAY_RATE = 25.0
THROTTLE_SETTING = "AUTORENEW_GATEWAY_MAX_REQUESTS_PER_SECOND"


@contextmanager
def app_process(folder: Path, database_url: str, workers: int, **env: str) -> Iterator[str]:
    """The product under uvicorn as its own process; yields its base URL."""
    port = processes.free_port()
    log = folder / "app.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port),
             "--workers", str(workers), "--log-level", "warning"],
            env={**os.environ, "AUTORENEW_DATABASE_URL": database_url,
                 "AUTORENEW_SANDBOX_DATABASE_URL": f"sqlite:///{folder}/sandbox.db", **env},
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        processes.wait_until_listening(process, port, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        processes.stop([process])


def services_requests(base: str) -> Requests:
    now = datetime.now(UTC)
    settings = Settings()
    tokens = [
        {"Authorization": "Bearer " + mint_token(settings, subject=f"cus_{c}", now=now)}
        for c in range(CARDS)
    ]
    return lambda index: (f"{base}/v1/services", tokens[index % len(tokens)])


def merged(results: list[LoadResult]) -> LoadResult:
    total = LoadResult(sent=0, seconds=0.0)
    for result in results:
        total.sent += result.sent
        total.seconds += result.seconds
        total.latencies += result.latencies
        total.errors += result.errors
        total.error_kinds += result.error_kinds
        total.late += result.late
    total.client_cpu = max((r.client_cpu for r in results), default=0.0)
    return total


async def sweep_until_done(
    base: str, database_url: str, count: int, budget: float
) -> dict[str, Any]:
    """POST /run until all N renewals succeeded (or the budget of seconds ran out); the
    engine's counts summed, and `seconds` from the first call to the last renewal."""
    started = time.monotonic()
    deadline = started + budget
    admin = Settings()
    headers = {
        "Authorization": "Bearer "
        + mint_token(admin, subject="bench-ops", admin=True, now=datetime.now(UTC))
    }
    totals: dict[str, Any] = {"runs": 0}
    async with httpx.AsyncClient(timeout=budget) as client:
        while time.monotonic() < deadline:
            response = await client.post(f"{base}/v1/admin/renewals/run", headers=headers)
            response.raise_for_status()
            totals["runs"] += 1
            for key, value in response.json().items():
                if key != "duration_seconds":
                    totals[key] = totals.get(key, 0) + value
            totals["seconds"] = time.monotonic() - started
            if await count_succeeded(database_url) >= count:
                break
            await asyncio.sleep(0.5)  # the rate-limited ones come due again shortly
    return totals


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1500, help="due renewals")
    parser.add_argument("--api-rate", type=float, default=20.0, help="GET /v1/services rps")
    parser.add_argument("--idle", type=float, default=15.0, help="seconds of idle API load")
    parser.add_argument("--concurrency", type=int, default=16, help="renewal concurrency")
    args = parser.parse_args()
    server = server_url()
    throttle = os.environ.get(THROTTLE_SETTING, str(int(GATEWAY_RATE)))
    async with AsyncExitStack() as stack:
        database_url = await stack.enter_async_context(migrated_database(server))
        ledger_url = await stack.enter_async_context(scratch_database(server))
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        ledger = {"ledger": folder / "unused.db"}
        ledger_env = {"AUTORENEW_SANDBOX_DATABASE_URL": ledger_url}

        with processes.sandbox_gateway(
            folder, name="sandbox-setup", **ledger, **ledger_env
        ) as setup_url:
            adapter = StripeGateway(
                api_key=API_KEY, base_url=setup_url, timeout=default_timeout(read=30)
            )
            cards = await seed_cards(adapter)
            await adapter.aclose()
        await seed(database_url, cards, args.count)

        sandbox_url = stack.enter_context(
            processes.sandbox_gateway(
                folder, name="sandbox", **ledger, **ledger_env,
                AUTORENEW_SANDBOX_LATENCY_MS="300", AUTORENEW_SANDBOX_LATENCY_MODE="random",
                AUTORENEW_SANDBOX_RATE_LIMIT_PER_SECOND=str(GATEWAY_RATE),
            )
        )  # fmt: skip
        base = stack.enter_context(
            app_process(
                folder, database_url, 1,
                AUTORENEW_SCHEDULER_ENABLED="false", AUTORENEW_MIGRATE_ON_START="false",
                AUTORENEW_GATEWAY="sandbox", AUTORENEW_SANDBOX_MOUNTED="false",
                AUTORENEW_GATEWAY_BASE_URL=sandbox_url,
                AUTORENEW_GATEWAY_API_KEY=API_KEY,
                AUTORENEW_RENEWAL_BATCH_SIZE="100",
                AUTORENEW_RENEWAL_CONCURRENCY=str(args.concurrency),
                **{THROTTLE_SETTING: throttle},
            )
        )  # fmt: skip
        known = THROTTLE_SETTING.removeprefix("AUTORENEW_").lower() in Settings.model_fields
        state = "a setting of this app" if known else "unknown here: no client throttle"
        print(f"{args.count} due renewals, {CARDS} customers; sandbox: 300 ms median "
              f"(log-normal), {GATEWAY_RATE:.0f} req/s then 429; renewal concurrency "
              f"{args.concurrency}; {THROTTLE_SETTING}={throttle} "
              f"({state})")  # fmt: skip

        requests = services_requests(base)
        idle = await fixed_rate(requests, rate=args.api_rate, duration=args.idle)
        print(f"GET /v1/services idle         {idle.line()}")

        budget = 3 * args.count / GATEWAY_RATE + 60
        sweep = asyncio.create_task(sweep_until_done(base, database_url, args.count, budget))
        during: list[LoadResult] = []
        while not sweep.done():
            during.append(await fixed_rate(requests, rate=args.api_rate, duration=5))
        totals = await sweep
        seconds = totals["seconds"]
        busy = merged(during)
        print(f"GET /v1/services during sweep {busy.line()}")

        succeeded = await count_succeeded(database_url)
        async with httpx.AsyncClient(auth=(API_KEY, "")) as client:
            summary = (await client.get(f"{sandbox_url}/_ledger/summary")).json()
        rate = succeeded / seconds
        print(f"sweep: {succeeded}/{args.count} renewed in {seconds:.1f}s = {rate:.1f}/s "
              f"({totals['runs']} runs of POST /run)")  # fmt: skip
        print(f"renewals/s vs the gateway's {GATEWAY_RATE:.0f}/s: {rate / GATEWAY_RATE:.2f} "
              f"(aim >= 0.9)")  # fmt: skip
        print(f"429s: sandbox answered {summary.get('rate_limited', 'n/a')}, engine counted "
              f"{totals.get('rate_limited', 0)} rate-limited attempts")  # fmt: skip
        print(f"p99 during/idle: {busy.p99 * 1000:.1f} / {idle.p99 * 1000:.1f} ms = "
              f"{busy.p99 / idle.p99:.2f} (aim <= 1.5)")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
