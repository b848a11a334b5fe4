"""Several renewal workers, as real processes, against one PostgreSQL and one sandbox gateway
process that is slow and fails a fifth of its calls: every renewal is charged exactly once,
ends in a final state, and moves its service exactly one period. Then the same with workers
killed (SIGKILL) mid-sweep: the survivors take over their leases, nothing is charged twice,
nothing is left behind.

Only on PostgreSQL: SQLite runs a single replica by design. Real time is used here, because
real processes cannot share a frozen clock; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.renewals.models import FINAL_STATUSES, Renewal
from tests import processes
from tests.renewal_runs import read_outcome, seed_cards, seed_services

pytestmark = pytest.mark.slow

API_KEY = "sk_test_replica_tests"
CARDS = 20


@pytest.fixture(autouse=True)
def _postgresql_only(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("several replicas need PostgreSQL's row locks")


def worker_env(database_url: str, gateway_url: str, lease_seconds: int) -> dict[str, str]:
    return {
        "AUTORENEW_DATABASE_URL": database_url,
        "AUTORENEW_GATEWAY": "sandbox",
        "AUTORENEW_SANDBOX_MOUNTED": "false",
        "AUTORENEW_GATEWAY_BASE_URL": gateway_url,
        "AUTORENEW_GATEWAY_API_KEY": API_KEY,
        "AUTORENEW_GATEWAY_TIMEOUT_SECONDS": "1.5",
        "AUTORENEW_GATEWAY_CONNECT_TIMEOUT_SECONDS": "1",
        "AUTORENEW_RENEWAL_INTERVAL_SECONDS": "1",
        # The services are seeded days before expiry: charged at once, without a notice.
        "AUTORENEW_RENEWAL_NOTICE_DAYS": "0",
        "AUTORENEW_RENEWAL_LEASE_SECONDS": str(lease_seconds),
        # No rate limit here; a short lease need not cover the throttle's wait.
        "AUTORENEW_GATEWAY_RATE_LIMIT_MAX_WAIT_SECONDS": "0",
        "AUTORENEW_RENEWAL_BATCH_SIZE": "25",
        "AUTORENEW_RENEWAL_CONCURRENCY": "8",
        "AUTORENEW_DB_POOL_SIZE": "4",
        "AUTORENEW_LOG_LEVEL": "WARNING",
    }


async def open_renewals(sessionmaker: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    async with sessionmaker() as session:
        total = await session.scalar(select(func.count()).select_from(Renewal))
        unfinished = await session.scalar(
            select(func.count()).select_from(Renewal).where(Renewal.status.not_in(FINAL_STATUSES))
        )
    return int(total or 0), int(unfinished or 0)


async def wait_for_all_final(
    sessionmaker: async_sessionmaker[AsyncSession],
    expected: int,
    limit_seconds: float,
    workers: list[subprocess.Popen[bytes]],
    log: Path,
) -> None:
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        if all(worker.poll() is not None for worker in workers):
            output = log.read_text()[-3000:]  # noqa: ASYNC240 (a failing test's last words)
            raise AssertionError(f"every worker exited:\n{output}")
        total, unfinished = await open_renewals(sessionmaker)
        if total == expected and unfinished == 0:
            return
        await asyncio.sleep(0.5)  # waiting on other processes, not on business time
    raise AssertionError(f"not done in {limit_seconds}s: {await open_renewals(sessionmaker)}")


async def check_exactly_once(
    sessionmaker: async_sessionmaker[AsyncSession], gateway_url: str, expiries: dict[str, datetime]
) -> None:
    verdict = await read_outcome(sessionmaker, gateway_url, API_KEY, expiries)
    assert verdict.renewals_by_status == {"succeeded": len(expiries)}, verdict
    assert verdict.clean, verdict


async def test_four_workers_charge_two_thousand_renewals_exactly_once(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.db"
    with processes.sandbox_gateway(tmp_path, name="seeder", ledger=ledger) as calm:
        cards = await seed_cards(calm, API_KEY, CARDS)
    expiries = await seed_services(sessionmaker, cards, 2000)
    faults = {
        "AUTORENEW_SANDBOX_LATENCY_MS": "15",
        "AUTORENEW_SANDBOX_LATENCY_MODE": "random",
        "AUTORENEW_SANDBOX_FAULT_RATE": "0.2",
        "AUTORENEW_SANDBOX_FAULT_HANG_SECONDS": "2",
    }
    with processes.sandbox_gateway(tmp_path, name="faulty", ledger=ledger, **faults) as gateway:
        log = tmp_path / "workers.log"
        env = worker_env(database_url, gateway, lease_seconds=4)
        workers = [processes.start(["renew"], env, log) for _ in range(4)]
        try:
            await wait_for_all_final(sessionmaker, 2000, 300, workers, log)
        finally:
            processes.stop(workers)
        await check_exactly_once(sessionmaker, gateway, expiries)


async def test_workers_killed_mid_sweep_leave_nothing_charged_twice_or_stuck(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.db"
    with processes.sandbox_gateway(tmp_path, name="seeder", ledger=ledger) as calm:
        cards = await seed_cards(calm, API_KEY, CARDS)
    expiries = await seed_services(sessionmaker, cards, 600)
    chance = random.Random(20261124)
    with processes.sandbox_gateway(
        tmp_path, name="slow", ledger=ledger, AUTORENEW_SANDBOX_LATENCY_MS="40"
    ) as gateway:
        log = tmp_path / "workers.log"
        env = worker_env(database_url, gateway, lease_seconds=3)
        workers: list[subprocess.Popen[bytes]] = [
            processes.start(["renew"], env, log) for _ in range(3)
        ]
        try:
            # Three times: let the workers get going, then kill one at a random moment and
            # start a fresh one, as an orchestrator would after a crash.
            for _ in range(3):
                await asyncio.sleep(chance.uniform(1.0, 3.0))
                victim = workers.pop(chance.randrange(len(workers)))
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=10)
                workers.append(processes.start(["renew"], env, log))
            await wait_for_all_final(sessionmaker, 600, 240, workers, log)
        finally:
            processes.stop(workers)
        await check_exactly_once(sessionmaker, gateway, expiries)
