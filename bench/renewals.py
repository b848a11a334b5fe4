"""Renewal sweep throughput: the engine against a raw-SQL two-phase loop, same data, same run.

    .venv/bin/python -m bench.renewals [--count 50000] [--gateway sandbox|null]

All sides start from the same state: N due renewals already planned (one per service),
each service paid by a validated card. Each side claims renewals in batches, commits a
processing attempt, calls the gateway with bounded concurrency, then settles: attempt
succeeded, renewal succeeded, service extended, two events (renewal.succeeded,
service.renewed) with their per-resource sequence numbers.

- `engine`: app.renewals.engine.RenewalEngine, the code the service runs (answers that
  arrive together are settled together, up to 50 per transaction).
- `raw`: the same writes as hand-written SQL over asyncpg, no ORM, no checks, one
  settlement transaction per renewal (the loop the issue names).
- `raw-grouped`: the same, with 25 settlements per transaction through executemany:
  the hand-written counterpart of the engine's grouping, so the ORM's cost shows alone.

Gateways: `sandbox` (default) is the project's Stripe-compatible sandbox as its own
process with zero added latency, called through the Stripe adapter by both sides; `null`
answers every charge instantly in-process, which isolates the database and engine cost.

Needs PostgreSQL: AUTORENEW_BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1/test);
the benchmark creates and drops a database of its own there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from app.core.clock import SystemClock
from app.core.database import create_engine, create_sessionmaker
from app.core.settings import Settings
from app.gateways.port import Charge, PaymentGateway
from app.gateways.stripe import StripeGateway, default_timeout
from app.payment_methods.models import PaymentMethod
from app.renewals.engine.sweep import RenewalEngine
from app.renewals.models import Renewal
from app.services.models import Service
from app.services.periods import add_months
from bench.common import migrated_database, scratch_database, server_url
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

    @property
    def rate(self) -> float:
        return self.count / self.seconds


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
            await connection.execute(text("ANALYZE"))
    finally:
        await engine.dispose()


async def count_succeeded(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(
                text("SELECT count(*) FROM renewals WHERE status = 'succeeded'")
            )
            return int(result.scalar_one())
    finally:
        await engine.dispose()


# --- the two contenders ------------------------------------------------------------------


async def run_engine(database_url: str, gateway: PaymentGateway, count: int) -> Result:
    settings = Settings(
        database_url=database_url,
        renewal_batch_size=BATCH,
        renewal_concurrency=CONCURRENCY,
        db_pool_size=CONCURRENCY,
    )
    engine = create_engine(database_url, pool_size=CONCURRENCY)
    renewer = RenewalEngine(create_sessionmaker(engine), gateway, SystemClock(), settings)
    started = time.perf_counter()
    await renewer.sweep()
    seconds = time.perf_counter() - started
    await engine.dispose()
    return Result("engine", await count_succeeded(database_url), seconds)


CLAIM = """
WITH due AS (
    SELECT id FROM renewals
    WHERE status = 'scheduled' AND next_attempt_at <= $1
    ORDER BY next_attempt_at, id LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE renewals r
SET status = 'processing', lease_owner = 'raw', lease_expires_at = $1 + interval '2 minutes',
    attempt_count = r.attempt_count + 1, updated_at = $1
FROM due WHERE r.id = due.id
RETURNING r.id, r.attempt_count, r.amount, r.currency, r.service_id, r.customer_id,
          r.payment_method_id
"""
ATTEMPT = """
INSERT INTO renewal_attempts (id, renewal_id, number, idempotency_key, payment_method_id,
    amount, currency, status, hard_decline, reconciled, started_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'processing', false, false, $8)
"""
SEQUENCE = """
INSERT INTO event_sequences (resource_type, resource_id, last_sequence) VALUES ($1, $2, 1)
ON CONFLICT (resource_type, resource_id)
DO UPDATE SET last_sequence = event_sequences.last_sequence + 1
RETURNING last_sequence
"""
EVENT = """
INSERT INTO events (id, type, schema_version, customer_id, resource_type, resource_id,
    sequence, data, created_at)
VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8)
"""


SEQUENCES = """
INSERT INTO event_sequences (resource_type, resource_id, last_sequence)
SELECT t, r, 1 FROM unnest($1::text[], $2::text[]) AS u(t, r)
ON CONFLICT (resource_type, resource_id)
DO UPDATE SET last_sequence = event_sequences.last_sequence + 1
RETURNING resource_type, resource_id, last_sequence
"""
# Settlements per transaction; a batch's groups commit concurrently, on several connections.
GROUP = 25


async def run_raw(
    database_url: str,
    gateway: PaymentGateway,
    cards: dict[str, tuple[str, str]],
    count: int,
    *,
    grouped: bool = False,
) -> Result:
    """`grouped`: a batch's answers settled 25 per transaction with executemany, the groups
    concurrently; otherwise one transaction per renewal."""
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    pool = await asyncpg.create_pool(dsn, min_size=4, max_size=CONCURRENCY + 2)
    slots = asyncio.Semaphore(CONCURRENCY)

    async def call(row: asyncpg.Record, key: str) -> Charge:
        customer, method = cards[row["payment_method_id"]]
        async with slots:
            return await gateway.charge_off_session(
                gateway_customer_id=customer, gateway_payment_method_id=method,
                amount=row["amount"], currency=row["currency"], idempotency_key=key,
                metadata={"renewal_id": row["id"], "service_id": row["service_id"],
                          "customer_id": row["customer_id"], "idempotency_key": key},
            )  # fmt: skip

    async def settle_group(answers: list[tuple[asyncpg.Record, str, Charge]]) -> None:
        now = datetime.now(UTC)
        async with pool.acquire() as connection, connection.transaction():
            await connection.executemany(
                "UPDATE renewal_attempts SET status = 'succeeded', gateway_charge_id = $2, "
                "finished_at = $3 WHERE id = $1",
                [(attempt_id, result.charge_id, now) for _, attempt_id, result in answers],
            )
            await connection.executemany(
                "UPDATE renewals SET status = 'succeeded', lease_owner = NULL, "
                "lease_expires_at = NULL, next_attempt_at = NULL, finished_at = $2, "
                "updated_at = $2 WHERE id = $1",
                [(row["id"], now) for row, _, _ in answers],
            )
            await connection.executemany(
                "UPDATE services SET expires_at = r.period_end, updated_at = $2 FROM renewals r "
                "WHERE r.id = $1 AND services.id = r.service_id "
                "AND services.expires_at = r.period_start",
                [(row["id"], now) for row, _, _ in answers],
            )
            resources = [
                (kind, resource_type, resource_id, row["customer_id"])
                for row, _, _ in answers
                for kind, resource_type, resource_id in (
                    ("renewal.succeeded", "renewal", row["id"]),
                    ("service.renewed", "service", row["service_id"]),
                )
            ]
            numbers = {
                (r["resource_type"], r["resource_id"]): r["last_sequence"]
                for r in await connection.fetch(
                    SEQUENCES, [r[1] for r in resources], [r[2] for r in resources]
                )
            }
            await connection.executemany(
                EVENT,
                [
                    (f"evt_{uuid.uuid4().hex[:24]}", kind, customer_id, resource_type,
                     resource_id, numbers[(resource_type, resource_id)],
                     json.dumps({"id": resource_id, "status": "succeeded"}), now)
                    for kind, resource_type, resource_id, customer_id in resources
                ],
            )  # fmt: skip

    async def charge_batch(jobs: list[tuple[asyncpg.Record, str, str]]) -> None:
        results = await asyncio.gather(*(call(row, key) for row, _, key in jobs))
        answers = [(row, attempt_id, result) for (row, attempt_id, _), result in zip(
            jobs, results, strict=True)]  # fmt: skip
        groups = [answers[start : start + GROUP] for start in range(0, len(answers), GROUP)]
        await asyncio.gather(*(settle_group(group) for group in groups))

    async def charge(row: asyncpg.Record, attempt_id: str, key: str) -> None:
        result = await call(row, key)
        now = datetime.now(UTC)
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "UPDATE renewal_attempts SET status = 'succeeded', gateway_charge_id = $2, "
                "finished_at = $3 WHERE id = $1", attempt_id, result.charge_id, now,
            )  # fmt: skip
            await connection.execute(
                "UPDATE renewals SET status = 'succeeded', lease_owner = NULL, "
                "lease_expires_at = NULL, next_attempt_at = NULL, finished_at = $2, "
                "updated_at = $2 WHERE id = $1", row["id"], now,
            )  # fmt: skip
            await connection.execute(
                "UPDATE services SET expires_at = r.period_end, updated_at = $2 FROM renewals r "
                "WHERE r.id = $1 AND services.id = r.service_id "
                "AND services.expires_at = r.period_start", row["id"], now,
            )  # fmt: skip
            for kind, resource_type, resource_id in (
                ("renewal.succeeded", "renewal", row["id"]),
                ("service.renewed", "service", row["service_id"]),
            ):
                sequence = await connection.fetchval(SEQUENCE, resource_type, resource_id)
                await connection.execute(
                    EVENT, f"evt_{uuid.uuid4().hex[:24]}", kind, row["customer_id"],
                    resource_type, resource_id, sequence,
                    json.dumps({"id": resource_id, "status": "succeeded"}), now,
                )  # fmt: skip

    started = time.perf_counter()
    while True:
        now = datetime.now(UTC)
        async with pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(CLAIM, now, BATCH)
            jobs = []
            for row in rows:
                attempt_id = f"att_{uuid.uuid4().hex[:24]}"
                key = f"renewal:{row['id']}:attempt:{row['attempt_count']}"
                await connection.execute(
                    ATTEMPT, attempt_id, row["id"], row["attempt_count"], key,
                    row["payment_method_id"], row["amount"], row["currency"], now,
                )  # fmt: skip
                jobs.append((row, attempt_id, key))
        if not jobs:
            break
        if grouped:
            await charge_batch(jobs)
        else:
            await asyncio.gather(*(charge(*job) for job in jobs))
    seconds = time.perf_counter() - started
    await pool.close()
    name = "raw-grouped" if grouped else "raw"
    return Result(name, await count_succeeded(database_url), seconds)


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
    args = parser.parse_args()
    server = server_url()
    async with AsyncExitStack() as stack:
        database_url = await stack.enter_async_context(migrated_database(server))

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
        card_of = {f"pm_bench_{i}": card for i, card in enumerate(cards)}

        results = []
        contenders: list[Callable[[], Awaitable[Result]]] = [
            lambda: run_engine(database_url, gateway, args.count),
            lambda: run_raw(database_url, gateway, card_of, args.count),
            lambda: run_raw(database_url, gateway, card_of, args.count, grouped=True),
        ]
        for contender in contenders:
            await seed(database_url, cards, args.count)
            result = await contender()
            assert result.count == args.count, f"{result.name} renewed {result.count}"
            results.append(result)
            print(f"{result.name:>11}: {result.count} renewals in {result.seconds:.1f}s "
                  f"= {result.rate:.0f} renewals/s", flush=True)  # fmt: skip
        engine_result, raw_result, grouped_result = results
        print(f"      ratio: engine/raw = {engine_result.rate / raw_result.rate:.2f}, "
              f"engine/raw-grouped = {engine_result.rate / grouped_result.rate:.2f} "
              f"(gateway: {args.gateway}, batch {BATCH}, concurrency {CONCURRENCY}, "
              f"PostgreSQL)")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
