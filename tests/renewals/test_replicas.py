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
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.gateways.port import GatewayError
from app.gateways.stripe import StripeGateway, default_timeout
from app.payment_methods.models import PaymentMethod
from app.renewals.models import FINAL_STATUSES, Renewal
from app.services.models import Service
from app.services.periods import add_months
from tests import processes

pytestmark = pytest.mark.slow

API_KEY = "sk_test_replica_tests"
CARDS = 20


@pytest.fixture(autouse=True)
def _postgresql_only(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("several replicas need PostgreSQL's row locks")


async def _retry(call, attempts: int = 20):  # type: ignore[no-untyped-def]
    """Seeding through a faulty gateway: the idempotency keys make retries safe."""
    for _ in range(attempts):
        try:
            return await call()
        except GatewayError:
            await asyncio.sleep(0.05)
    raise AssertionError("the sandbox kept failing while seeding")


async def seed_cards(url: str) -> list[tuple[str, str]]:
    """(gateway customer, gateway payment method) for cards set up for off-session use."""
    adapter = StripeGateway(api_key=API_KEY, base_url=url, timeout=default_timeout(read=5))
    cards = []
    try:
        for index in range(CARDS):
            customer = await _retry(
                lambda i=index: adapter.ensure_customer(customer_ref=f"cus_{i}", existing_id=None)
            )
            token = await _retry(
                lambda: adapter.tokenize_card(
                    number="4242424242424242", exp_month=12, exp_year=2031, cvc="123"
                )
            )
            setup = await _retry(
                lambda c=customer, t=token, i=index: adapter.set_up_card(
                    gateway_customer_id=c,
                    payment_method_token=t,
                    return_url="https://customer-area.test/return",
                    idempotency_key=f"seed-{i}",
                )
            )
            assert setup.status == "succeeded"
            cards.append((customer, setup.gateway_payment_method_id))
    finally:
        await adapter.aclose()
    return cards


async def seed_services(
    sessionmaker: async_sessionmaker[AsyncSession], cards: list[tuple[str, str]], count: int
) -> dict[str, datetime]:
    """`count` services due now (expiring in three days, card lead seven), spread over the
    cards. Returns each service's expiry before the run."""
    now = datetime.now(UTC)
    methods, services, expiries = [], [], {}
    for index, (gateway_customer, gateway_method) in enumerate(cards):
        methods.append(
            {
                "id": f"pm_replica_{index}",
                "customer_id": f"cus_{index}",
                "type": "card",
                "status": "validated",
                "is_default": False,
                "created_at": now,
                "updated_at": now,
                "gateway_customer_id": gateway_customer,
                "gateway_payment_method_id": gateway_method,
                "card_brand": "visa",
                "card_last4": "4242",
                "card_exp_month": 12,
                "card_exp_year": 2031,
            }
        )
    for index in range(count):
        card = index % len(cards)
        expires_at = (now + timedelta(days=3, minutes=index)).replace(microsecond=0)
        service_id = f"svc-{index:05d}"
        expiries[service_id] = expires_at
        services.append(
            {
                "id": service_id,
                "customer_id": f"cus_{card}",
                "kind": "hosting",
                "name": f"hosting {index}",
                "status": "active",
                "expires_at": expires_at,
                "expiry_anchor_day": expires_at.day,
                "period_months": 12,
                "price_amount": 1000 + index,
                "price_currency": "EUR",
                "auto_renew": True,
                "payment_method_id": f"pm_replica_{card}",
                "created_at": now,
                "updated_at": now,
            }
        )
    async with sessionmaker() as session, session.begin():
        await session.execute(insert(PaymentMethod), methods)
        await session.execute(insert(Service), services)
    return expiries


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
    async with httpx.AsyncClient(
        base_url=gateway_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
    ) as client:
        ledger = (await client.get("/_ledger/charges", params={"limit": 100000})).json()["data"]
    succeeded = [charge for charge in ledger if charge["status"] == "succeeded"]
    per_renewal = Counter(charge["metadata"]["renewal_id"] for charge in succeeded)
    async with sessionmaker() as session:
        renewals = (await session.execute(select(Renewal))).scalars().all()
        services = (await session.execute(select(Service))).scalars().all()
    assert len(renewals) == len(expiries)
    assert {r.status for r in renewals} == {"succeeded"}
    assert set(per_renewal) == {r.id for r in renewals}
    assert max(per_renewal.values()) == 1, "a renewal was charged twice"
    for service in services:
        assert service.expires_at == add_months(expiries[service.id], 12), service.id
    amounts = {r.id: r.amount for r in renewals}
    for charge in succeeded:
        assert charge["amount"] == amounts[charge["metadata"]["renewal_id"]]


async def test_four_workers_charge_two_thousand_renewals_exactly_once(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.db"
    with processes.sandbox_gateway(tmp_path, name="seeder", ledger=ledger) as calm:
        cards = await seed_cards(calm)
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
        cards = await seed_cards(calm)
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
