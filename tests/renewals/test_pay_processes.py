"""Pay now and 3-D Secure with real processes on PostgreSQL: API replicas (`autorenew
serve`), renewal workers (`autorenew renew`) and a sandbox gateway process, talking HTTP.

- A renewal whose card needs 3-D Secure is authenticated through the sandbox's page, as a
  browser would (the renewal's link, the page's form, the return route): one charge in the
  sandbox ledger, the service one period further.
- Every renewal is paid with two clicks at once, each to another replica, while workers
  sweep: each is charged exactly once, whoever wins.

Only on PostgreSQL (SQLite runs one replica). Real time, every wait bounded.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.gateways.stripe import StripeGateway, default_timeout
from app.payment_methods.models import PaymentMethod
from app.renewals.models import Renewal
from app.services.models import Service
from app.services.periods import add_months
from tests import processes
from tests.renewal_runs import read_outcome, seed_cards, seed_services

pytestmark = pytest.mark.slow

API_KEY = "sk_test_pay_processes"
# This suite's own ports (parallel runs of other suites pick theirs elsewhere).
PORTS = range(8350, 8400)
Auth = Callable[..., dict[str, str]]


@pytest.fixture(autouse=True)
def _postgresql_only(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("several replicas need PostgreSQL's row locks")


def port() -> int:
    for candidate in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return candidate
    raise RuntimeError("no free port in 8350-8399")


@contextmanager
def sandbox(tmp_path: Path) -> Iterator[str]:
    number, log = port(), tmp_path / "sandbox.log"
    env = {"AUTORENEW_SANDBOX_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    process = processes.start(["sandbox-gateway", "--port", str(number)], env, log)
    try:
        processes.wait_until_listening(process, number, log)
        yield f"http://127.0.0.1:{number}"
    finally:
        processes.stop([process])


def service_env(database_url: str, gateway_url: str) -> dict[str, str]:
    return {
        "AUTORENEW_DATABASE_URL": database_url,
        "AUTORENEW_MIGRATE_ON_START": "false",
        "AUTORENEW_SCHEDULER_ENABLED": "false",
        "AUTORENEW_GATEWAY": "sandbox",
        "AUTORENEW_SANDBOX_MOUNTED": "false",
        "AUTORENEW_GATEWAY_BASE_URL": gateway_url,
        "AUTORENEW_GATEWAY_API_KEY": API_KEY,
        "AUTORENEW_RENEWAL_NOTICE_DAYS": "0",
        "AUTORENEW_RENEWAL_INTERVAL_SECONDS": "1",
        "AUTORENEW_RENEWAL_LEASE_SECONDS": "40",
        "AUTORENEW_GATEWAY_TIMEOUT_SECONDS": "10",
        "AUTORENEW_GATEWAY_RATE_LIMIT_MAX_WAIT_SECONDS": "0",
        "AUTORENEW_RENEWAL_PAY_RATE_LIMIT": "1000",
        "AUTORENEW_DB_POOL_SIZE": "4",
        "AUTORENEW_LOG_LEVEL": "WARNING",
    }


@contextmanager
def api_replica(
    tmp_path: Path, env: dict[str, str], name: str, number: int | None = None
) -> Iterator[str]:
    number, log = number or port(), tmp_path / f"{name}.log"
    url = f"http://127.0.0.1:{number}"
    process = processes.start(
        ["serve", "--port", str(number)],
        {**env, "AUTORENEW_PUBLIC_BASE_URL": url},
        log,
    )
    try:
        processes.wait_until_serving(process, log)
        yield url
    finally:
        processes.stop([process])


async def authenticated_card(gateway_url: str) -> tuple[str, str]:
    """A card that needs 3-D Secure on every payment (Stripe's 3184), set up for off-session
    use: its own setup is authenticated through the sandbox's page first."""
    adapter = StripeGateway(api_key=API_KEY, base_url=gateway_url, timeout=default_timeout())
    try:
        customer = await adapter.ensure_customer(customer_ref="cus_3ds", existing_id=None)
        token = await adapter.tokenize_card(
            number="4000002760003184", exp_month=12, exp_year=2031, cvc="123"
        )
        setup = await adapter.set_up_card(
            gateway_customer_id=customer,
            payment_method_token=token,
            return_url="https://customer-area.test/cards",
            idempotency_key="seed-3ds",
        )
        assert setup.status == "requires_action" and setup.action_url is not None
        async with httpx.AsyncClient(timeout=10) as browser:
            await complete_page(browser, setup.action_url)
        assert (await adapter.refresh_setup(setup.setup_id)).status == "succeeded"
        return customer, setup.gateway_payment_method_id
    finally:
        await adapter.aclose()


async def complete_page(browser: httpx.AsyncClient, page_url: str) -> httpx.Response:
    """Press "Complete authentication" on the sandbox's 3-D Secure page."""
    page = await browser.get(page_url)
    assert page.status_code == 200, page.text
    action = re.search(r'action="([^"]+)"', page.text)
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert action is not None and token is not None
    return await browser.post(
        urljoin(page_url, action.group(1).replace("&amp;", "&")),
        data={"token": token.group(1), "result": "complete"},
    )


async def test_a_renewal_authenticated_at_the_sandbox_page_is_charged_once(
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    auth: Auth,
) -> None:
    with sandbox(tmp_path) as gateway_url:
        customer, card = await authenticated_card(gateway_url)
        now = datetime.now(UTC).replace(microsecond=0)
        expires_at = now + timedelta(days=3)
        async with sessionmaker() as session, session.begin():
            await session.execute(
                insert(PaymentMethod),
                [
                    {
                        "id": "pm_3ds",
                        "customer_id": "cus_3ds",
                        "type": "card",
                        "status": "validated",
                        "is_default": False,
                        "created_at": now,
                        "updated_at": now,
                        "gateway_customer_id": customer,
                        "gateway_payment_method_id": card,
                        "card_brand": "visa",
                        "card_last4": "3184",
                        "card_exp_month": 12,
                        "card_exp_year": 2031,
                    }
                ],
            )
            await session.execute(
                insert(Service),
                [
                    {
                        "id": "host-3ds",
                        "customer_id": "cus_3ds",
                        "kind": "hosting",
                        "name": "Hosting 3DS",
                        "status": "active",
                        "expires_at": expires_at,
                        "expiry_anchor_day": expires_at.day,
                        "period_months": 12,
                        "price_amount": 1299,
                        "price_currency": "EUR",
                        "auto_renew": True,
                        "payment_method_id": "pm_3ds",
                        "created_at": now,
                        "updated_at": now,
                    }
                ],
            )
        env = service_env(database_url, gateway_url)
        env["AUTORENEW_PAYMENT_RETURN_URL"] = "https://customer-area.test/billing"
        # Every process of the service knows where browsers reach it: the sweep writes the
        # renewal's link with it.
        api_port = port()
        env["AUTORENEW_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{api_port}"
        sweep = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app.cli",
            "renew",
            "--once",
            env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE,
        )
        output, _ = await asyncio.wait_for(sweep.communicate(), timeout=120)
        assert b'"requires_action": 1' in output, output
        with api_replica(tmp_path, env, "api", api_port) as api:
            async with httpx.AsyncClient(base_url=api, timeout=30) as client:
                shown = await client.get("/v1/services/host-3ds", headers=auth("cus_3ds"))
                action = shown.json()["current_renewal"]["next_action"]
                assert action["type"] == "authenticate_payment"
                assert action["url"].startswith(api)
                # The browser: the link → the gateway's page → complete → back to us →
                # the customer area.
                followed = await client.get(action["url"])
                assert followed.status_code == 303, followed.text
                assert followed.headers["location"].startswith(f"{gateway_url}/3ds/")
                answered = await complete_page(client, followed.headers["location"])
                assert answered.status_code == 303
                back = answered.headers["location"]
                assert back.startswith(f"{api}/v1/renewals/")
                landed = await client.get(back)
                assert landed.status_code == 303
                where = urlsplit(landed.headers["location"])
                assert where.netloc == "customer-area.test"
                assert parse_qs(where.query)["status"] == ["succeeded"]
        async with sessionmaker() as session:
            service = await session.get_one(Service, "host-3ds")
            assert service.expires_at == add_months(expires_at, 12)
        verdict = await read_outcome(sessionmaker, gateway_url, API_KEY, {"host-3ds": expires_at})
        assert verdict.renewals_by_status == {"succeeded": 1}, verdict
        assert verdict.charges_by_status["succeeded"] == 1, verdict
        assert verdict.clean, verdict


async def due_renewals(
    sessionmaker: async_sessionmaker[AsyncSession], expiries: dict[str, datetime]
) -> list[tuple[str, str]]:
    """Plan each service's renewal, due now: (renewal id, customer id)."""
    now = datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        services = (await session.scalars(select(Service))).all()
        rows = [
            {
                "id": f"ren_pay_{index:04d}",
                "service_id": service.id,
                "customer_id": service.customer_id,
                "period_start": service.expires_at,
                "period_end": add_months(service.expires_at, service.period_months),
                "amount": service.price_amount,
                "currency": service.price_currency,
                "payment_method_id": service.payment_method_id,
                "status": "scheduled",
                "due_at": now,
                "next_attempt_at": now,
                "attempt_count": 0,
                "failed_charge_count": 0,
                "created_at": now,
                "updated_at": now,
            }
            for index, service in enumerate(services)
        ]
        await session.execute(insert(Renewal), rows)
    assert len(rows) == len(expiries)
    return [(row["id"], row["customer_id"]) for row in rows]


async def test_two_clicks_on_two_replicas_while_workers_sweep_charge_once(
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    auth: Auth,
) -> None:
    with sandbox(tmp_path) as gateway_url:
        cards = await seed_cards(gateway_url, API_KEY, 5)
        expiries = await seed_services(sessionmaker, cards, 40)
        renewals = await due_renewals(sessionmaker, expiries)
        env = service_env(database_url, gateway_url)
        with api_replica(tmp_path, env, "api-a") as a, api_replica(tmp_path, env, "api-b") as b:
            log = tmp_path / "workers.log"
            workers = [processes.start(["renew"], env, log) for _ in range(2)]
            try:
                async with (
                    httpx.AsyncClient(base_url=a, timeout=60) as first,
                    httpx.AsyncClient(base_url=b, timeout=60) as second,
                ):

                    async def click(client: httpx.AsyncClient, renewal: str, who: str) -> int:
                        url = f"/v1/renewals/{renewal}/pay"
                        answer = await client.post(url, headers=auth(who))
                        assert answer.status_code in (200, 409), answer.text
                        if answer.status_code == 409:
                            assert answer.json()["code"] in (
                                "renewal_payment_in_progress",
                                "renewal_not_payable",
                            )
                        return answer.status_code

                    answers = await asyncio.gather(
                        *(
                            click(client, renewal, who)
                            for renewal, who in renewals
                            for client in (first, second)
                        )
                    )
                await wait_until_final(sessionmaker, len(renewals))
            finally:
                processes.stop(workers)
        # Some clicks won, the others found a payment under way or done.
        assert 200 in answers and 409 in answers
        verdict = await read_outcome(sessionmaker, gateway_url, API_KEY, expiries)
        assert verdict.renewals_by_status == {"succeeded": len(renewals)}, verdict
        assert verdict.charges_by_status["succeeded"] == len(renewals), verdict
        assert verdict.clean, verdict


async def wait_until_final(sessionmaker: async_sessionmaker[AsyncSession], count: int) -> None:
    for _ in range(240):
        async with sessionmaker() as session:
            done = (
                await session.scalars(select(Renewal.id).where(Renewal.status == "succeeded"))
            ).all()
        if len(done) == count:
            return
        await asyncio.sleep(0.5)  # other processes at work, not business time
    raise AssertionError(f"only {len(done)} of {count} renewals succeeded")
