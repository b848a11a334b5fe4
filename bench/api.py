"""API cost: two customer reads through the real stack against the same reads over raw asyncpg.

    .venv/bin/python -m bench.api [--duration 10] [--rate RPS] [--workers 1] [--customers 1000]

The app runs as a real uvicorn process (scheduler off) on a scratch PostgreSQL database
seeded with N customers, each with a card, every second one a SEPA debit with its mandate,
and 8 services (domains and hosting). Four endpoints:

- `GET /v1/payment-methods/{id}` and its baseline `GET /bench/raw/payment-methods/{id}`;
- `GET /v1/services` and its baseline `GET /bench/raw/services`.

The baselines (bench/raw_routes.py, mounted by `create_bench_app` on the app that
`create_app` builds) send the same SQL and answer the same JSON with no ORM, no dependency
injection and no pydantic; both sides pass the same HTTP edge (access log, metrics).
Requests rotate over the customers (one token each).

For each pair: the maximum throughput (closed loop, bench/loadgen.py `max_throughput`),
then the latency at one fixed rate for both sides (open loop, `fixed_rate`; default 70% of
the raw route's maximum). Aims (issue 9): real/raw throughput >= 0.5, p99 <= 3x raw's.

The load generator shares the machine with the server: its `client cpu` near 100% means it
may be what limits the figures. Needs PostgreSQL: AUTORENEW_BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/test); the database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text

from app.core.auth import mint_token
from app.core.database import create_engine
from app.core.settings import Settings
from app.payment_methods.models import Mandate, PaymentMethod
from app.services.models import Service
from bench.common import migrated_database, server_url
from bench.loadgen import LoadResult, Requests, fixed_rate, max_throughput
from tests import processes

SERVICES_PER_CUSTOMER = 8
ENDPOINTS = (
    ("payment method", "/v1/payment-methods/{pm}", "/bench/raw/payment-methods/{pm}"),
    ("services list", "/v1/services", "/bench/raw/services"),
)


async def seed(database_url: str, customers: int) -> None:
    engine = create_engine(database_url)
    now = datetime.now(UTC).replace(microsecond=0)
    cards, sepa_methods, mandates, services = [], [], [], []
    for c in range(customers):
        customer = f"cus_{c:05d}"
        created = now - timedelta(days=400) + timedelta(seconds=c)
        cards.append({
            "id": f"pm_card_{c:05d}", "customer_id": customer, "type": "card",
            "status": "validated", "is_default": True, "created_at": created,
            "updated_at": created, "validated_at": created,
            "gateway_customer_id": f"gcus_{c}", "gateway_payment_method_id": f"gpm_{c}",
            "card_brand": "visa", "card_last4": f"{c % 10000:04d}", "card_exp_month": 1 + c % 12,
            "card_exp_year": 2027 + c % 4, "card_funding": "credit", "card_country": "ES",
        })  # fmt: skip
        if c % 2 == 0:
            sepa_methods.append({
                "id": f"pm_sepa_{c:05d}", "customer_id": customer, "type": "sepa_debit",
                "status": "validated", "is_default": False, "created_at": created,
                "updated_at": created, "validated_at": created,
                "iban_masked": "ES91 **** **** **** **** 1332", "iban_last4": "1332",
                "iban_country": "ES", "bank_code": "2100", "bic": "CAIXESBBXXX",
                "bank_name": "CaixaBank", "account_holder_name": f"Customer {c}",
            })  # fmt: skip
            mandates.append({
                "id": f"man_{c:05d}", "payment_method_id": f"pm_sepa_{c:05d}",
                "customer_id": customer, "reference": f"BENCH-{c:05d}",
                "creditor_id": "ES59ZZZX1234567L", "creditor_name": "Bench SL", "scheme": "CORE",
                "mandate_type": "recurrent", "sequence_type": "RCUR", "status": "active",
                "debtor_name": f"Customer {c}", "text_version": "v1", "text_sha256": "0" * 64,
                "signer_name": f"Customer {c}", "signed_at": created, "created_at": created,
            })  # fmt: skip
        for s in range(SERVICES_PER_CUSTOMER):
            kind = "domain" if s % 2 else "hosting"
            expires = now + timedelta(days=20 + 37 * s + c % 30)
            method = f"pm_sepa_{c:05d}" if c % 2 == 0 and s % 3 == 0 else f"pm_card_{c:05d}"
            services.append({
                "id": f"svc-{c:05d}-{s}", "customer_id": customer, "kind": kind,
                "name": f"{kind} {s} of {customer}", "status": "active", "expires_at": expires,
                "expiry_anchor_day": expires.day, "period_months": 12,
                "price_amount": 1299 + 100 * s, "price_currency": "EUR",
                "auto_renew": s % 4 != 3, "payment_method_id": method,
                "created_at": created + timedelta(minutes=s), "updated_at": created,
            })  # fmt: skip
    try:
        async with engine.begin() as connection:
            # One executemany per row shape (cards and SEPA debits fill different columns).
            await connection.execute(insert(PaymentMethod), cards)
            await connection.execute(insert(PaymentMethod), sepa_methods)
            await connection.execute(insert(Mandate), mandates)
            await connection.execute(insert(Service), services)
            await connection.execute(text("ANALYZE"))
    finally:
        await engine.dispose()


# The product's app, and the same with the raw baseline routes (an app factory).
PRODUCT_APP = ("app.main:app",)
BENCH_APP = ("--factory", "bench.raw_routes:create_bench_app")


@contextmanager
def app_process(
    folder: Path, database_url: str, workers: int, app: tuple[str, ...] = PRODUCT_APP, **env: str
) -> Iterator[str]:
    """The app under uvicorn as its own process; yields its base URL."""
    port = processes.free_port()
    log = folder / "app.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", *app, "--port", str(port),
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


def customer_requests(base: str, template: str, customers: int) -> Requests:
    settings = Settings()
    now = datetime.now(UTC)
    tokens = [
        {"Authorization": "Bearer " + mint_token(settings, subject=f"cus_{c:05d}", now=now)}
        for c in range(customers)
    ]

    def request(index: int) -> tuple[str, dict[str, str]]:
        c = (index * 7919) % customers  # a prime stride: neighbours are different customers
        return base + template.format(pm=f"pm_card_{c:05d}"), tokens[c]

    return request


def ratio(real: float, raw: float) -> str:
    return f"{real / raw:.2f}" if raw else "n/a"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--rate", type=float, help="one fixed rate instead of --loads")
    parser.add_argument(
        "--loads", default="0.5,0.7", help="fixed rates as fractions of the raw route's max"
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32, help="max-throughput clients")
    args = parser.parse_args()
    async with AsyncExitStack() as stack:
        database_url = await stack.enter_async_context(migrated_database(server_url()))
        await seed(database_url, args.customers)
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        base = stack.enter_context(
            app_process(
                folder, database_url, args.workers, BENCH_APP,
                AUTORENEW_SCHEDULER_ENABLED="false", AUTORENEW_MIGRATE_ON_START="false",
            )
        )  # fmt: skip
        print(
            f"{args.customers} customers x {SERVICES_PER_CUSTOMER} services; uvicorn workers "
            f"{args.workers}; {args.duration:.0f}s per run; {os.cpu_count()} cores (shared)"
        )
        for name, real_path, raw_path in ENDPOINTS:
            real = customer_requests(base, real_path, args.customers)
            raw = customer_requests(base, raw_path, args.customers)
            peaks: dict[str, LoadResult] = {}
            for side, requests in (("raw", raw), ("real", real)):
                peaks[side] = await max_throughput(
                    requests, duration=args.duration, workers=args.concurrency
                )
                print(f"{name:>14} {side:>4} max   {peaks[side].line()}")
            print(f"{name:>14} real/raw: throughput {ratio(peaks['real'].rps, peaks['raw'].rps)} "
                  "(aim >= 0.5)")  # fmt: skip
            rates = [args.rate] if args.rate else [
                round(float(load) * peaks["raw"].rps) for load in args.loads.split(",")
            ]  # fmt: skip
            for rate in rates:
                fixed: dict[str, LoadResult] = {}
                for side, requests in (("raw", raw), ("real", real)):
                    fixed[side] = await fixed_rate(requests, rate=rate, duration=args.duration)
                    print(f"{name:>14} {side:>4} @{rate:<5.0f}{fixed[side].line()}")
                print(f"{name:>14} real/raw: p99 at {rate:.0f} rps "
                      f"({rate / peaks['real'].rps:.0%} of the real route's max) "
                      f"{ratio(fixed['real'].p99, fixed['raw'].p99)} (aim <= 3)")  # fmt: skip
        server_errors(folder / "app.log")


def server_errors(log: Path) -> None:
    """What the server logged as errors during the run, if anything (first few)."""
    lines = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if '"level": "ERROR"' in line or "Error" in line
    ]
    if lines:
        print(f"server logged {len(lines)} error lines; the first ones:")
        for line in lines[:5]:
            print("   ", line[:300])


if __name__ == "__main__":
    asyncio.run(main())
