"""Importing payment methods from the previous panel: records/s and peak memory by file size.

    .venv/bin/python -m bench.imports [--sizes 10000,100000] [--card-share 0.5] [--http]

For each size: a file of N records (SEPA mandates, RCUR and FRST, some lapsed, and cards
stored at the gateway; every fifth record names a service to renew), a fresh PostgreSQL
database with those services provisioned, and `autorenew import payment-methods FILE` run
as its own process against it, with the gateway = the sandbox as its own process
(`autorenew sandbox-gateway`, ledger on PostgreSQL). Figures per size: wall time,
records/s, and the import process's peak RSS (from wait4). Memory must not grow with the
file: the peak at 100,000 records is compared with the one at 10,000.

With `--http` the same files also go through `POST /v1/admin/imports/payment-methods` on an
`autorenew serve` process of their own (streamed body), and that server's peak RSS
(VmHWM) is reported the same way.

The cards are put at the gateway first (one through the sandbox's API, copied in its ledger;
not timed). Needs PostgreSQL (AUTORENEW_BENCH_DATABASE_URL); its databases are created
and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from schwifty import IBAN
from sqlalchemy import Table, insert, select

from app.core.auth import mint_token
from app.core.database import create_engine
from app.core.settings import Settings
from app.sandbox.models import Customer as SandboxCustomer
from app.sandbox.models import PaymentMethod as SandboxPaymentMethod
from app.services.models import Service
from bench.common import migrated_database, scratch_database, server_url
from tests import processes

API_KEY = "sk_test_bench"
CARDS_PER_GATEWAY_CUSTOMER = 50
SERVICE_EVERY = 5


@dataclass
class Result:
    path: str
    records: int
    seconds: float
    peak_rss_mib: float
    report: dict[str, object]

    @property
    def rate(self) -> float:
        return self.records / self.seconds


# --- the gateway's side: cards the previous panel stored ------------------------------------


async def seed_cards(sandbox_url: str, ledger_url: str, count: int) -> list[tuple[str, str]]:
    """`count` cards attached to gateway customers: (gateway customer, payment method).

    One card is stored through the sandbox's API (tokenized, attached), then copied row by
    row in its ledger: the API at a few dozen calls a second would take an hour for 50,000
    cards on a shared machine, and the copies are what the API would have written (every
    column is copied; only ids and the customer change)."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=sandbox_url, headers=headers, timeout=60) as client:
        customer = (await client.post("/v1/customers", data={"description": "old panel"})).json()
        token = await client.post(
            "/v1/payment_methods",
            data={
                "type": "card",
                "card[number]": "4242424242424242",
                "card[exp_month]": "12",
                "card[exp_year]": "2031",
            },
        )
        attached = await client.post(
            f"/v1/payment_methods/{token.json()['id']}/attach", data={"customer": customer["id"]}
        )
        attached.raise_for_status()
    engine = create_engine(ledger_url)
    customers_table = SandboxCustomer.__table__
    methods_table = SandboxPaymentMethod.__table__
    assert isinstance(customers_table, Table) and isinstance(methods_table, Table)
    async with engine.begin() as connection:
        template_customer = dict(
            (await connection.execute(select(customers_table))).mappings().one()
        )
        template_card = dict((await connection.execute(select(methods_table))).mappings().one())
        customer_ids = [f"cus_bench{n}" for n in range(-(-count // CARDS_PER_GATEWAY_CUSTOMER))]
        await connection.execute(
            insert(customers_table),
            [{**template_customer, "id": customer_id} for customer_id in customer_ids],
        )
        cards = [
            (customer_ids[index // CARDS_PER_GATEWAY_CUSTOMER], f"pm_bench{index}")
            for index in range(count)
        ]
        for start in range(0, count, 5000):
            await connection.execute(
                insert(methods_table),
                [
                    {**template_card, "id": method_id, "customer_id": customer_id}
                    for customer_id, method_id in cards[start : start + 5000]
                ],
            )
    await engine.dispose()
    return cards


# --- the file and the services it names ----------------------------------------------------


def record(index: int, cards: list[tuple[str, str]], card_share: float) -> dict[str, object]:
    customer = f"cus_{index}"
    services = [f"svc-{index}"] if index % SERVICE_EVERY == 0 else None
    every = round(1 / card_share) if card_share else 0
    if every and index % every == 0:
        gateway_customer, payment_method = cards[index // every]
        return {
            "type": "card",
            "customer_id": customer,
            "gateway_customer_id": gateway_customer,
            "gateway_payment_method_id": payment_method,
            "services": services,
        }
    iban = IBAN.generate("NL", bank_code="ABNA", account_code=str(1_000_000 + index))
    used = index % 3 != 0
    lapsed = index % 97 == 1
    return {
        "type": "sepa_debit",
        "customer_id": customer,
        "iban": str(iban),
        "account_holder_name": f"Kunde Nummer {index}",
        "mandate": {
            "reference": f"OLD-{index:08d}",
            "signed_at": "2019-02-01" if lapsed else "2024-03-14",
            "last_collected_at": ("2021-01-05" if lapsed else "2026-10-05") if used else None,
        },
        "services": None if lapsed else services,
    }


def write_file(path: Path, count: int, cards: list[tuple[str, str]], card_share: float) -> None:
    with path.open("w") as out:
        for index in range(count):
            out.write(json.dumps(record(index, cards, card_share)) + "\n")


async def provision_services(database_url: str, count: int) -> None:
    """The services the file names, as provisioning registered them: EUR, a year ahead."""
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    rows = [
        {
            "id": f"svc-{index}",
            "customer_id": f"cus_{index}",
            "kind": "hosting",
            "name": f"Hosting {index}",
            "status": "active",
            "expires_at": now + timedelta(days=200),
            "expiry_anchor_day": (now + timedelta(days=200)).day,
            "period_months": 12,
            "price_amount": 1299,
            "price_currency": "EUR",
            "auto_renew": False,
            "created_at": now,
            "updated_at": now,
        }
        for index in range(0, count, SERVICE_EVERY)
    ]
    async with engine.begin() as connection:
        for start in range(0, len(rows), 5000):
            await connection.execute(insert(Service), rows[start : start + 5000])
    await engine.dispose()


# --- the two ways in ---------------------------------------------------------------------


def run_cli(file: Path, count: int, env: dict[str, str]) -> Result:
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "import", "payment-methods", str(file)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    report = json.loads(output)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"import failed: {report.get('refusals', [])[:5]}")
    # ru_maxrss is in KiB on Linux.
    return Result("cli", count, seconds, usage.ru_maxrss / 1024, report)


def _vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


async def _blocks(file: Path) -> AsyncIterator[bytes]:
    with file.open("rb") as handle:
        while block := handle.read(256 * 1024):
            yield block


async def run_http(file: Path, count: int, env: dict[str, str], folder: Path) -> Result:
    port = processes.free_port()
    log = folder / f"serve-{count}.log"
    server_env = {
        **env,
        "AUTORENEW_SCHEDULER_ENABLED": "false",
        "AUTORENEW_MIGRATE_ON_START": "false",
    }
    process = processes.start(["serve", "--port", str(port)], server_env, log)
    try:
        processes.wait_until_listening(process, port, log)
        token = mint_token(Settings(), subject="bench-ops", admin=True, now=datetime.now(UTC))
        started = time.perf_counter()
        async with httpx.AsyncClient(timeout=3600) as client:
            response = await client.post(
                f"http://127.0.0.1:{port}/v1/admin/imports/payment-methods",
                content=_blocks(file),
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/x-ndjson",
                },
            )
        seconds = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"import answered {response.status_code}: {response.text[:500]}")
        return Result("http", count, seconds, _vm_hwm_mib(process.pid), response.json())
    finally:
        processes.stop([process])


# --- the run -----------------------------------------------------------------------------


def show(result: Result) -> None:
    report = result.report
    print(
        f"  {result.path:4} {result.records:>7} records  {result.seconds:7.1f} s  "
        f"{result.rate:7.0f} records/s  peak RSS {result.peak_rss_mib:6.1f} MiB  "
        f"(imported {report['imported']}, lapsed {report['lapsed']}, "
        f"services {report['services_assigned']}, refused {report['refused']}; "
        f"checking {report['seconds']['checking']:.0f} s, "  # type: ignore[index]
        f"importing {report['seconds']['importing']:.0f} s)",  # type: ignore[index]
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--card-share", type=float, default=0.5)
    parser.add_argument("--http", action="store_true", help="also through the HTTP route")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    server = server_url()
    results: list[Result] = []
    async with AsyncExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        ledger_url = await stack.enter_async_context(scratch_database(server))
        sandbox_url = stack.enter_context(
            processes.sandbox_gateway(
                folder,
                name="sandbox",
                ledger=folder / "unused.db",
                AUTORENEW_SANDBOX_DATABASE_URL=ledger_url,
            )
        )
        needed = round(max(sizes) * args.card_share) + 1
        started = time.perf_counter()
        cards = await seed_cards(sandbox_url, ledger_url, needed)
        print(f"{needed} cards stored at the sandbox in {time.perf_counter() - started:.0f} s")

        for size in sizes:
            file = folder / f"import-{size}.ndjson"
            write_file(file, size, cards, args.card_share)
            megabytes = file.stat().st_size / 1024 / 1024
            print(f"{size} records, {megabytes:.1f} MiB:", flush=True)
            paths = ["cli", "http"] if args.http else ["cli"]
            for path in paths:
                async with migrated_database(server) as database_url:
                    await provision_services(database_url, size)
                    env = {
                        "AUTORENEW_DATABASE_URL": database_url,
                        "AUTORENEW_GATEWAY": "sandbox",
                        "AUTORENEW_SANDBOX_MOUNTED": "false",
                        "AUTORENEW_GATEWAY_BASE_URL": sandbox_url,
                        "AUTORENEW_GATEWAY_API_KEY": API_KEY,
                        "AUTORENEW_LOG_LEVEL": "WARNING",
                    }
                    if path == "cli":
                        result = run_cli(file, size, env)
                    else:
                        result = await run_http(file, size, env, folder)
                    results.append(result)
                    show(result)

    print("\nsummary")
    for path in ("cli", "http"):
        mine = sorted((r for r in results if r.path == path), key=lambda r: r.records)
        if len(mine) >= 2:
            small, large = mine[0], mine[-1]
            print(
                f"  {path}: {large.records / small.records:.0f}x the records → "
                f"{large.peak_rss_mib / small.peak_rss_mib:.2f}x the peak RSS "
                f"({small.peak_rss_mib:.1f} → {large.peak_rss_mib:.1f} MiB); "
                f"{small.rate:.0f} → {large.rate:.0f} records/s"
            )


if __name__ == "__main__":
    asyncio.run(main())
