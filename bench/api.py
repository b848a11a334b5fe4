"""API cost: two customer reads through the product against a minimal raw-asyncpg app.

    .venv/bin/python -m bench.api [--duration 10] [--rounds 3] [--load 0.5] [--customers 1000]

Two uvicorn processes (one worker each, scheduler off) on one scratch PostgreSQL database
seeded with N customers, each with a card, every second one a SEPA debit with its mandate,
and 8 services (domains and hosting):

- real: the product (`app.main:app`): `GET /v1/payment-methods/{id}`, `GET /v1/services`;
- raw: bench/raw_routes.py, a minimal FastAPI app doing the same token check (PyJWT) and the
  same reads over plain asyncpg, answering the same JSON (tests/test_bench_mode.py).

The load generator is `wrk` (installed from apt when missing), pinned to CPU 0; both servers
are pinned to CPU 1 (PostgreSQL is not pinned). Requests rotate over the customers, one
token each. For each endpoint, three rounds (`--rounds`), the two sides interleaved:

1. max: closed loop, 32 connections, `--duration` seconds per side;
2. fixed: both sides at the same rate, `--load` x the lower of the two maxima of that round
   (below both saturation points), 16 connections pacing themselves with wrk's `delay()`
   (a connection waits 16/rate s between a response and its next request, so the rate
   achieved is a little below the target; it is printed).

Each line gives rps, p50/p99 latency (wrk's, from the send of each request), the server's
CPU per request (utime+stime from /proc/<pid>/stat before and after, over requests; the
PostgreSQL backends' CPU is not in it) and the 1-minute load average when the run ended: a
load average above ~1.5 on this 2-core machine means something else ran too, and the figures
are noisy. The summary gives the medians over rounds and the ratios against the aims (issue
19: real/raw throughput >= 0.5, p99 at the same rate <= 2x raw's, CPU per request < 1 ms).

Needs PostgreSQL: AUTORENEW_BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/test); the database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text

from app.core.auth import mint_token
from app.core.database import create_engine
from app.core.settings import Settings
from app.payment_methods.models import Mandate, PaymentMethod
from app.services.models import Service
from bench.common import migrated_database, server_url
from tests import processes

SERVICES_PER_CUSTOMER = 8
ENDPOINTS = (
    ("payment method", "/v1/payment-methods/{pm}", "/bench/raw/payment-methods/{pm}"),
    ("services list", "/v1/services", "/bench/raw/services"),
)
REAL_APP = ("app.main:app",)
RAW_APP = ("--factory", "bench.raw_routes:create_raw_app")
LOAD_CPU, SERVER_CPU = "0", "1"
MAX_CONNECTIONS, FIXED_CONNECTIONS = 32, 16
AIM_THROUGHPUT, AIM_P99, AIM_CPU_MS = 0.5, 2.0, 1.0
TICKS = os.sysconf("SC_CLK_TCK")


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
            sepa = c % 2 == 0 and s % 3 == 0
            services.append({
                "id": f"svc-{c:05d}-{s}", "customer_id": customer, "kind": kind,
                "name": f"{kind} {s} of {customer}", "status": "active", "expires_at": expires,
                "expiry_anchor_day": expires.day, "period_months": 12,
                "price_amount": 1299 + 100 * s, "price_currency": "EUR",
                "auto_renew": s % 4 != 3,
                "payment_method_id": f"pm_sepa_{c:05d}" if sepa else f"pm_card_{c:05d}",
                "payment_method_type": "sepa_debit" if sepa else "card",
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


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        print("wrk is missing: apt-get install -y wrk", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)
        found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk could not be installed")
    return found


@contextmanager
def server(folder: Path, name: str, database_url: str, app: tuple[str, ...]) -> Iterator[Server]:
    """An app under uvicorn (one worker, in-process), pinned to SERVER_CPU."""
    port = processes.free_port()
    log = folder / f"{name}.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, sys.executable, "-m", "uvicorn", *app,
             "--port", str(port), "--log-level", "warning"],
            env={**os.environ, "AUTORENEW_DATABASE_URL": database_url,
                 "AUTORENEW_SANDBOX_DATABASE_URL": f"sqlite:///{folder}/sandbox.db",
                 "AUTORENEW_SCHEDULER_ENABLED": "false", "AUTORENEW_MIGRATE_ON_START": "false",
                 # The access log is on, as in production; it goes to a file, not a terminal.
                 "AUTORENEW_LOG_LEVEL": "info"},
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        processes.wait_until_listening(process, port, log)
        yield Server(name, f"http://127.0.0.1:{port}", process.pid, log)
    finally:
        processes.stop([process])


@dataclass(frozen=True)
class Server:
    name: str
    url: str
    pid: int  # taskset execs uvicorn: the same process
    log: Path

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


# wrk's Lua: every request from a table built here (one customer's token and path each, a
# prime stride so neighbours differ); `delay` paces a fixed-rate run; `done` prints one line.
LUA = """
local requests, count, index = {}, %(count)d, 0
%(requests)s
request = function()
  index = index + 1
  return requests[(index * 7919) %% count]
end
done = function(summary, latency, _)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests,
    summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def lua_script(folder: Path, name: str, template: str, customers: int) -> Path:
    settings, now = Settings(), datetime.now(UTC)
    lines = []
    for c in range(customers):
        token = mint_token(settings, subject=f"cus_{c:05d}", now=now, ttl=timedelta(hours=6))
        path = template.format(pm=f"pm_card_{c:05d}")
        lines.append(
            f'requests[{c}] = wrk.format("GET", "{path}", {{Authorization = "Bearer {token}"}})'
        )
    script = folder / f"{name}.lua"
    script.write_text(LUA % {"count": customers, "requests": "\n".join(lines)})
    return script


@dataclass(frozen=True)
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float  # server CPU per request
    non_2xx: int
    socket_errors: int
    load: float

    def line(self) -> str:
        errors = ""
        if self.non_2xx or self.socket_errors:
            errors = f"  ERRORS non-2xx {self.non_2xx} socket {self.socket_errors}"
        return (
            f"{self.rps:7.0f} rps  p50 {self.p50_ms:6.1f} ms  p99 {self.p99_ms:6.1f} ms  "
            f"cpu {self.cpu_ms:5.2f} ms/req  load {self.load:4.1f}{errors}"
        )


def run_wrk(
    wrk: str, target: Server, script: Path, duration: float, connections: int, rate: float = 0
) -> Run:
    if rate:
        paced = script.with_suffix(f".{rate:.0f}.lua")
        delay = f"delay = function() return {1000 * connections / rate:.3f} end"
        paced.write_text(
            script.read_text().replace(
                "\nrequest = function()", delay + "\n" + "request = function()", 1
            )
        )
        script = paced
    before = target.cpu_seconds()
    output = subprocess.run(
        ["taskset", "-c", LOAD_CPU, wrk, "-t1", f"-c{connections}", f"-d{duration:.0f}s",
         "--timeout", "10s", "-s", str(script), target.url],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    cpu = target.cpu_seconds() - before
    line = next(line for line in output.splitlines() if line.startswith("RESULT"))
    requests, micros, status, sockets, p50, p99 = (int(v) for v in line.split()[1:])
    return Run(
        rps=requests / (micros / 1e6),
        p50_ms=p50 / 1000,
        p99_ms=p99 / 1000,
        cpu_ms=1000 * cpu / max(requests, 1),
        non_2xx=status,
        socket_errors=sockets,
        load=os.getloadavg()[0],
    )


def median(runs: list[Run], field: str) -> float:
    return statistics.median(getattr(run, field) for run in runs)


def measure(
    wrk: str, name: str, sides: dict[str, tuple[Server, Path]], args: argparse.Namespace
) -> None:
    peaks: dict[str, list[Run]] = {"raw": [], "real": []}
    fixed: dict[str, list[Run]] = {"raw": [], "real": []}
    rates = []
    for number in range(1, args.rounds + 1):
        order = ("raw", "real") if number % 2 else ("real", "raw")
        for side in order:
            target, script = sides[side]
            run = run_wrk(wrk, target, script, args.duration, MAX_CONNECTIONS)
            peaks[side].append(run)
            print(f"{name:>14} round {number} {side:>4} max        {run.line()}", flush=True)
        rate = args.load * min(peaks["raw"][-1].rps, peaks["real"][-1].rps)
        rates.append(rate)
        for side in order:
            target, script = sides[side]
            run = run_wrk(wrk, target, script, args.duration, FIXED_CONNECTIONS, rate)
            fixed[side].append(run)
            print(f"{name:>14} round {number} {side:>4} @{rate:<5.0f} rps {run.line()}", flush=True)
    throughput = median(peaks["real"], "rps") / median(peaks["raw"], "rps")
    p99 = median(fixed["real"], "p99_ms") / median(fixed["raw"], "p99_ms")
    cpu_real, cpu_raw = median(peaks["real"], "cpu_ms"), median(peaks["raw"], "cpu_ms")
    print(
        f"{name:>14} medians: max rps raw {median(peaks['raw'], 'rps'):.0f} / real "
        f"{median(peaks['real'], 'rps'):.0f} = {throughput:.2f} "
        f"(aim >= {AIM_THROUGHPUT}: {'met' if throughput >= AIM_THROUGHPUT else 'NOT met'}); "
        f"p99 at ~{statistics.median(rates):.0f} rps raw {median(fixed['raw'], 'p99_ms'):.1f} / "
        f"real {median(fixed['real'], 'p99_ms'):.1f} ms = {p99:.2f}x "
        f"(aim <= {AIM_P99}: {'met' if p99 <= AIM_P99 else 'NOT met'}); "
        f"cpu/req raw {cpu_raw:.2f} / real {cpu_real:.2f} ms "
        f"(stretch < {AIM_CPU_MS} ms: {'met' if cpu_real < AIM_CPU_MS else 'not met'})",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", type=float, default=0.5, help="fixed rate / lower max")
    parser.add_argument("--customers", type=int, default=1000)
    args = parser.parse_args()
    wrk = ensure_wrk()
    async with AsyncExitStack() as stack:
        database_url = await stack.enter_async_context(migrated_database(server_url()))
        await seed(database_url, args.customers)
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        real = stack.enter_context(server(folder, "real", database_url, REAL_APP))
        raw = stack.enter_context(server(folder, "raw", database_url, RAW_APP))
        print(
            f"{args.customers} customers x {SERVICES_PER_CUSTOMER} services; one uvicorn "
            f"worker per side on CPU {SERVER_CPU}, wrk on CPU {LOAD_CPU}; {args.duration:.0f}s "
            f"per run; {os.cpu_count()} cores; load average now {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        for name, real_path, raw_path in ENDPOINTS:
            sides = {
                "real": (real, lua_script(folder, f"real{len(name)}", real_path, args.customers)),
                "raw": (raw, lua_script(folder, f"raw{len(name)}", raw_path, args.customers)),
            }
            for target, script in sides.values():  # warm up: connections, prepared statements
                run_wrk(wrk, target, script, 2, MAX_CONNECTIONS)
            measure(wrk, name, sides, args)
        for target in (real, raw):
            server_errors(target.log)


def server_errors(log: Path) -> None:
    """What a server logged as errors during the run, if anything (first few)."""
    lines = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if '"level": "ERROR"' in line or "Error" in line
    ]
    if lines:
        print(f"{log.stem} logged {len(lines)} error lines; the first ones:")
        for line in lines[:5]:
            print("   ", line[:300])


if __name__ == "__main__":
    asyncio.run(main())
