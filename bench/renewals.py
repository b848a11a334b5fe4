"""Renewal sweep throughput: the engine against a strong hand-written loop, same data, same run.

    .venv/bin/python -m bench.renewals [--count 50000] [--gateway sandbox|null] [--rounds 3]
                                       [--before DIR]

All sides start from the same state: N due renewals already planned (one per service),
each service paid by a validated card. The data is seeded once into a template database and
every run gets a fresh copy of it (CREATE DATABASE … TEMPLATE). Each side claims renewals in
batches, commits a processing attempt, calls the gateway with bounded concurrency, then
settles: attempt succeeded, renewal succeeded, service extended, two events
(renewal.succeeded, service.renewed) with their per-resource sequence numbers.

- `engine`: app.renewals.engine.RenewalEngine, the code the service runs.
- `raw`: bench/raw_sweep.py, a two-phase asyncpg loop doing the same writes with every
  guarantee a careful hand-written loop keeps (lease check, expiry guard, full events), in
  batched statements: about 13 per 100 renewals.
- `before` (with `--before DIR`, a checkout of another commit, e.g. `git worktree add`):
  that commit's engine, in a process of its own, on the same data.

Rounds are interleaved (engine, raw, before; engine, raw, before; …), every contender with
the garbage collector tuned as in the service's own processes (app/core/collector.py).
Each run prints renewals/s, the Python CPU time per renewal (the process's CPU time over
the run) and PostgreSQL's (its processes' CPU time over the run, from /proc: the database
is on this machine); the summary gives the medians, the ratio engine/raw and the load
average, since the machine may be shared.

Gateways: `sandbox` (default) is the project's Stripe-compatible sandbox as its own
process with zero added latency, called through the Stripe adapter by both sides; `null`
answers every charge instantly in-process, which isolates the database and engine cost.

Needs PostgreSQL: AUTORENEW_BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1/test);
the benchmark creates and drops databases of its own there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from app.core.clock import SystemClock
from app.core.collector import settle_garbage_collector
from app.core.database import create_engine, create_sessionmaker
from app.core.settings import Settings
from app.gateways.port import Charge, PaymentGateway
from app.gateways.stripe import StripeGateway, default_timeout
from app.payment_methods.models import PaymentMethod
from app.renewals.engine.sweep import RenewalEngine
from app.renewals.models import Renewal
from app.services.models import Service
from app.services.periods import add_months
from bench import raw_sweep
from bench.common import migrated_database, postgres_cpu_seconds, scratch_database, server_url
from tests import processes

API_KEY = "sk_test_bench"
BATCH = 100
CONCURRENCY = 16
CARDS = 50


class NullGateway:
    """Every charge succeeds at once; keeps nothing (the database is what is measured)."""

    async def charge_off_session(
        self, *, amount: int, currency: str, idempotency_key: str, **_: Any
    ) -> Charge:
        return Charge(f"pi_{uuid.uuid4().hex[:16]}", "succeeded", amount, currency, idempotency_key)

    async def aclose(self) -> None:
        return None


@dataclass
class Result:
    name: str
    count: int
    seconds: float
    cpu_seconds: float
    event_bytes: float
    database_seconds: float | None  # PostgreSQL's CPU time over the run (bench/common.py)

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.cpu_seconds / self.count * 1000

    @property
    def database_ms(self) -> float:
        return (self.database_seconds or 0.0) / self.count * 1000


# --- the database ------------------------------------------------------------------------


async def seed(database_url: str, cards: list[tuple[str, str]], count: int) -> None:
    """Empty the tables, then N services due now, each with its planned renewal."""
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "TRUNCATE renewal_attempts, renewals, service_changes, services, "
                    "payment_methods, events, event_sequences CASCADE"
                )
            )
            await connection.execute(
                insert(PaymentMethod),
                [
                    {
                        "id": f"pm_bench_{i}",
                        "customer_id": f"cus_{i}",
                        "type": "card",
                        "status": "validated",
                        "is_default": False,
                        "created_at": now,
                        "updated_at": now,
                        "gateway_customer_id": customer,
                        "gateway_payment_method_id": method,
                        "card_brand": "visa",
                        "card_last4": "4242",
                        "card_exp_month": 12,
                        "card_exp_year": 2031,
                    }
                    for i, (customer, method) in enumerate(cards)
                ],
            )
            for start in range(0, count, 5000):
                services, renewals = [], []
                for index in range(start, min(start + 5000, count)):
                    card = index % len(cards)
                    expires = (now + timedelta(days=3, seconds=index)).replace(microsecond=0)
                    service_id = f"svc-{index:07d}"
                    services.append({
                        "id": service_id, "customer_id": f"cus_{card}", "kind": "hosting",
                        "name": f"hosting {index}", "status": "active", "expires_at": expires,
                        "expiry_anchor_day": expires.day, "period_months": 12,
                        "price_amount": 1299, "price_currency": "EUR", "auto_renew": True,
                        "payment_method_id": f"pm_bench_{card}", "payment_method_type": "card",
                        "created_at": now,
                        "updated_at": now,
                        # Planned already (the renewal below): nothing for planning to do.
                        "renewal_notice_at": None, "expiry_reminder_at": None,
                    })  # fmt: skip
                    renewals.append({
                        "id": f"ren_bench{index:07d}", "service_id": service_id,
                        "customer_id": f"cus_{card}", "period_start": expires,
                        "period_end": add_months(expires, 12), "amount": 1299,
                        "currency": "EUR", "payment_method_id": f"pm_bench_{card}",
                        "status": "scheduled", "due_at": now, "next_attempt_at": now,
                        "attempt_count": 0, "failed_charge_count": 0, "created_at": now,
                        "updated_at": now,
                    })  # fmt: skip
                await connection.execute(insert(Service), services)
                await connection.execute(insert(Renewal), renewals)
            for statement in HISTORY:
                await connection.execute(text(statement))
            await connection.execute(text("ANALYZE"))
    finally:
        await engine.dispose()


# Last year's renewal of every service, charged once and announced by two events, as a
# book in production has. Without it the attempt and event tables are empty when ANALYZE
# runs, and every connection's cached (generic) plans are made for tables of a few rows that
# then grow by the thousand: a sequential scan per statement, on either side.
HISTORY = (
    """
    INSERT INTO renewals (id, service_id, customer_id, period_start, period_end, amount,
        currency, payment_method_id, status, due_at, attempt_count, failed_charge_count,
        created_at, updated_at, finished_at)
    SELECT 'ren_past' || substr(id, 10), service_id, customer_id,
        period_start - interval '1 year', period_start, amount, currency, payment_method_id,
        'succeeded', due_at - interval '1 year', 1, 0, created_at - interval '1 year',
        created_at - interval '1 year', created_at - interval '1 year'
    FROM renewals
    """,
    """
    INSERT INTO renewal_attempts (id, renewal_id, number, idempotency_key, payment_method_id,
        amount, currency, status, on_session, gateway_charge_id, hard_decline, reconciled,
        started_at, finished_at)
    SELECT 'att_past' || substr(id, 9), id, 1, concat_ws(chr(58), 'renewal', id, 'attempt', '1'),
        payment_method_id, amount, currency, 'succeeded', false, 'pi_past' || substr(id, 9),
        false, false, finished_at, finished_at
    FROM renewals WHERE status = 'succeeded'
    """,
    """
    INSERT INTO events (id, type, schema_version, customer_id, resource_type, resource_id,
        sequence, data, created_at)
    SELECT 'evt_past' || kind || substr(r.id, 9), kind || '.' || verb, 1, r.customer_id,
        kind, CASE kind WHEN 'renewal' THEN r.id ELSE r.service_id END, 1,
        json_build_object('id', r.id, 'amount', r.amount, 'currency', r.currency),
        r.finished_at
    FROM renewals r,
        (VALUES ('renewal', 'succeeded'), ('service', 'renewed')) AS e(kind, verb)
    WHERE r.status = 'succeeded'
    """,
    """
    INSERT INTO event_sequences (resource_type, resource_id, last_sequence)
    SELECT resource_type, resource_id, max(sequence) FROM events
    GROUP BY resource_type, resource_id
    """,
)


async def count_succeeded(database_url: str) -> int:
    return (await outcome(database_url))[0]


async def outcome(database_url: str) -> tuple[int, float]:
    """Renewals succeeded, and the mean size of an event's payload (the same work on each side)."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            succeeded = await connection.scalar(
                text(
                    "SELECT count(*) FROM renewals WHERE status = 'succeeded' "
                    "AND id NOT LIKE 'ren_past%'"
                )
            )
            size = await connection.scalar(
                text(
                    "SELECT avg(octet_length(data::text)) FROM events WHERE id NOT LIKE 'evt_past%'"
                )
            )
            return int(succeeded or 0), float(size or 0)
    finally:
        await engine.dispose()


# --- the contenders ----------------------------------------------------------------------


def engine_settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        renewal_batch_size=BATCH,
        renewal_concurrency=CONCURRENCY,
        db_pool_size=CONCURRENCY,
    )


async def run_engine(database_url: str, gateway: PaymentGateway) -> tuple[float, float]:
    """Wall and CPU seconds of one engine sweep over everything due."""
    engine = create_engine(database_url, pool_size=CONCURRENCY)
    renewer = RenewalEngine(
        create_sessionmaker(engine), gateway, SystemClock(), engine_settings(database_url)
    )
    started, cpu = time.perf_counter(), time.process_time()
    await renewer.sweep()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    await engine.dispose()
    return seconds, cpu


async def run_raw(database_url: str, gateway: PaymentGateway) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    await raw_sweep.run(database_url, gateway, batch=BATCH, concurrency=CONCURRENCY)
    return time.perf_counter() - started, time.process_time() - cpu


# The engine of another checkout, in a process of its own (its `app` package, not ours).
# The null gateway only: the sandbox's cards are not worth passing across.
BEFORE = """
import asyncio, gc, json, sys, time, uuid
from app.core.clock import SystemClock
from app.core.database import create_engine, create_sessionmaker
from app.core.settings import Settings
from app.gateways.port import Charge
from app.renewals.engine.sweep import RenewalEngine

class NullGateway:
    async def charge_off_session(self, *, amount, currency, idempotency_key, **_):
        return Charge(f"pi_{uuid.uuid4().hex[:16]}", "succeeded", amount, currency,
                      idempotency_key)
    async def aclose(self):
        return None

async def main(url, batch, concurrency):
    gc.collect(); gc.freeze(); gc.set_threshold(50_000, 20, 20)  # as app/core/collector.py
    settings = Settings(database_url=url, renewal_batch_size=batch,
                        renewal_concurrency=concurrency, db_pool_size=concurrency)
    engine = create_engine(url, pool_size=concurrency)
    renewer = RenewalEngine(create_sessionmaker(engine), NullGateway(), SystemClock(), settings)
    started, cpu = time.perf_counter(), time.process_time()
    await renewer.sweep()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    await engine.dispose()
    print(json.dumps([seconds, cpu]))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


async def run_before(folder: Path, database_url: str) -> tuple[float, float]:
    command = [sys.executable, "-c", BEFORE, database_url, str(BATCH), str(CONCURRENCY)]
    environment = {**os.environ, "PYTHONPATH": str(folder)}
    finished = await asyncio.to_thread(
        subprocess.run, command, cwd=folder, env=environment, capture_output=True, text=True
    )
    if finished.returncode != 0:
        raise RuntimeError(f"the engine of {folder} failed:\n{finished.stderr}")
    seconds, cpu = json.loads(finished.stdout.strip().splitlines()[-1])
    return float(seconds), float(cpu)


# --- the gateways --------------------------------------------------------------------------


async def seed_cards(adapter: StripeGateway) -> list[tuple[str, str]]:
    cards = []
    for index in range(CARDS):
        customer = await adapter.ensure_customer(customer_ref=f"bench-{index}", existing_id=None)
        token = await adapter.tokenize_card(
            number="4242424242424242", exp_month=12, exp_year=2031, cvc="123"
        )
        setup = await adapter.set_up_card(
            gateway_customer_id=customer,
            payment_method_token=token,
            return_url="https://customer-area.test/return",
            idempotency_key=f"bench-setup-{index}",
        )
        cards.append((customer, setup.gateway_payment_method_id))
    return cards


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--gateway", choices=["sandbox", "null"], default="sandbox")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, help="a checkout whose engine runs as `before`")
    args = parser.parse_args()
    if args.before is not None and args.gateway != "null":
        parser.error("--before runs with --gateway null only")
    server = server_url()
    async with AsyncExitStack() as stack:
        template = await stack.enter_async_context(migrated_database(server))

        gateway: PaymentGateway
        if args.gateway == "sandbox":
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            ledger_url = await stack.enter_async_context(scratch_database(server))
            url = stack.enter_context(
                processes.sandbox_gateway(
                    folder,
                    name="sandbox",
                    ledger=folder / "unused.db",
                    AUTORENEW_SANDBOX_DATABASE_URL=ledger_url,
                )
            )
            adapter = StripeGateway(
                api_key=API_KEY, base_url=url, timeout=default_timeout(read=30),
                max_connections=CONCURRENCY,
            )  # fmt: skip
            stack.push_async_callback(adapter.aclose)
            cards = await seed_cards(adapter)
            gateway = adapter
        else:
            cards = [(f"gcus_{i}", f"gpm_{i}") for i in range(CARDS)]
            gateway = NullGateway()  # type: ignore[assignment]
        await seed(template, cards, args.count)
        # Every contender runs in a process tuned as the service's are (the API server and
        # the renewal worker both sweep): what the benchmark set up is frozen, young
        # collections run every 50,000 allocations.
        settle_garbage_collector()

        contenders = {
            "engine": lambda url: run_engine(url, gateway),
            "raw": lambda url: run_raw(url, gateway),
        }
        if args.before is not None:
            before = args.before.resolve()
            contenders["before"] = lambda url: run_before(before, url)
        results: dict[str, list[Result]] = {name: [] for name in contenders}
        for round_number in range(1, args.rounds + 1):
            for name, contender in contenders.items():
                copy = scratch_database(server, template=make_url(template).database)
                async with copy as url:
                    database_before = postgres_cpu_seconds()
                    seconds, cpu = await contender(url)
                    database_after = postgres_cpu_seconds()
                    count, size = await outcome(url)
                database = (
                    database_after - database_before
                    if database_before is not None and database_after is not None
                    else None
                )
                result = Result(name, count, seconds, cpu, size, database)
                assert count == args.count, f"{name} renewed {count} of {args.count}"
                results[name].append(result)
                print(f"round {round_number} {name:>6}: {count} renewals in {seconds:.1f}s "
                      f"= {result.rate:.0f}/s, {result.cpu_ms:.2f} ms CPU per renewal, "
                      f"PostgreSQL {result.database_ms:.2f} ms, events {size:.0f} bytes",
                      flush=True)  # fmt: skip

        def median(name: str, figure: str) -> float:
            return statistics.median(getattr(r, figure) for r in results[name])

        setup = f"gateway {args.gateway}, batch {BATCH}, concurrency {CONCURRENCY}, PostgreSQL"
        print(f"medians over {args.rounds} rounds ({args.count} renewals, {setup}):")
        for name in contenders:
            print(f"  {name:>6}: {median(name, 'rate'):.0f} renewals/s, "
                  f"{median(name, 'cpu_ms'):.2f} ms CPU per renewal, "
                  f"PostgreSQL {median(name, 'database_ms'):.2f} ms")  # fmt: skip
        print(f"  ratio engine/raw = {median('engine', 'rate') / median('raw', 'rate'):.2f}")
        if "before" in contenders:
            print(f"  ratio before/raw = {median('before', 'rate') / median('raw', 'rate'):.2f}")
        print(f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
              f"on {os.cpu_count()} CPUs (the machine may be shared)")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
