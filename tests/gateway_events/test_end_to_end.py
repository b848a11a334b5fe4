"""The whole loop with real processes: `autorenew serve` with its sandbox sending Stripe's
events to the service's own webhook route, signed as Stripe signs them. The sandbox's test
triggers act as the card networks do (the card updater, a chargeback); the service hears of
it only through the signed webhook, as it would from Stripe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.processes import free_port, start, stop, wait_until_listening

pytestmark = pytest.mark.slow

SANDBOX_KEY = ("sk_test_end_to_end", "")
WAIT_SECONDS = 20


@contextmanager
def service_with_sandbox_webhooks(database_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    env = {
        "AUTORENEW_DATABASE_URL": database_url,
        "AUTORENEW_MIGRATE_ON_START": "false",
        "AUTORENEW_SCHEDULER_ENABLED": "false",
        "AUTORENEW_PUBLIC_BASE_URL": base,
        "AUTORENEW_SANDBOX_DATABASE_URL": f"sqlite:///{tmp_path / 'sandbox.db'}",
        # The sandbox signs with its development secret, which the route verifies with.
        "AUTORENEW_SANDBOX_WEBHOOK_URL": f"{base}/v1/gateway-webhooks/stripe",
    }
    process = start(["serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
    try:
        wait_until_listening(process, port, log)
        yield base
    finally:
        stop([process])


@pytest.fixture
async def live(
    database_url: str, tmp_path: Path, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    # `sessionmaker` empties the tables once the process has stopped: later tests share
    # this database.
    with service_with_sandbox_webhooks(database_url, tmp_path) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            yield client


async def eventually(check: Callable[[], Awaitable[Any]]) -> Any:
    """What `check` returns once it is truthy: the sandbox sends after its request."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(0.1)  # waiting on another process, not on business time
    raise AssertionError("the webhook's effect never showed")


async def test_card_updater_and_chargeback_reach_the_service_through_signed_webhooks(
    live: httpx.AsyncClient, token_for: Callable[..., str]
) -> None:
    me = {"Authorization": f"Bearer {token_for('cus_e2e')}"}
    admin = {"Authorization": f"Bearer {token_for('ops', admin=True)}"}
    tokenized = await live.post(
        "/sandbox/v1/payment_methods",
        auth=SANDBOX_KEY,
        data={
            "type": "card",
            "card[number]": "4242424242424242",
            "card[exp_month]": "12",
            "card[exp_year]": "2030",
            "card[cvc]": "123",
        },
    )
    pm = tokenized.json()["id"]
    card = await live.post(
        "/v1/payment-methods", json={"type": "card", "card": {"token": pm}}, headers=me
    )
    assert card.json()["status"] == "validated", card.text
    method_id = card.json()["id"]

    # The card network reissues the card: the service learns it from the signed event.
    updated = await live.post(
        f"/sandbox/_test/payment_methods/{pm}/card_updater",
        auth=SANDBOX_KEY,
        data={"exp_month": "3", "exp_year": "2034", "last4": "1881"},
    )
    assert updated.status_code == 200, updated.text

    async def new_card() -> dict[str, Any] | None:
        shown = (await live.get(f"/v1/payment-methods/{method_id}", headers=me)).json()
        return shown if shown["card"]["last4"] == "1881" else None

    shown = await eventually(new_card)
    assert (shown["card"]["exp_month"], shown["card"]["exp_year"]) == (3, 2034)

    # A renewal charged to it, then disputed by the cardholder's bank.
    expires = datetime.now(UTC) + timedelta(days=5)
    registered = await live.put(
        "/v1/admin/services/host-e2e",
        json={
            "customer_id": "cus_e2e",
            "kind": "hosting",
            "name": "Hosting Pro",
            "expires_at": expires.isoformat(),
            "period_months": 12,
            "price": {"amount": 1299, "currency": "EUR"},
        },
        headers=admin,
    )
    assert registered.status_code == 201, registered.text
    assigned = await live.put(
        "/v1/services/host-e2e/payment-method", json={"payment_method_id": method_id}, headers=me
    )
    assert assigned.status_code == 200, assigned.text
    await live.patch("/v1/services/host-e2e", json={"auto_renew": True}, headers=me)
    run = await live.post("/v1/admin/renewals/run", headers=admin)
    # The sandbox's payment_intent.succeeded can beat the charge call's own answer.
    assert run.json()["succeeded"] + run.json()["settled_elsewhere"] == 1, run.text
    [renewal] = (await live.get("/v1/services/host-e2e/renewals", headers=me)).json()["data"]
    assert renewal["status"] == "succeeded", renewal
    intent = renewal["attempts"][0]["gateway_charge_id"]
    charge = (await live.get(f"/sandbox/v1/payment_intents/{intent}", auth=SANDBOX_KEY)).json()
    disputed = await live.post(
        f"/sandbox/_test/charges/{charge['latest_charge']}/dispute",
        auth=SANDBOX_KEY,
        data={"reason": "fraudulent"},
    )
    assert disputed.status_code == 200, disputed.text

    async def dispute_shown() -> dict[str, Any] | None:
        rows = (await live.get("/v1/services/host-e2e/renewals", headers=me)).json()["data"]
        return rows[0] if rows[0]["dispute"] else None

    shown_renewal = await eventually(dispute_shown)
    assert shown_renewal["status"] == "succeeded"  # nothing reversed: provisioning decides
    assert shown_renewal["dispute"]["reason"] == "fraudulent"
    history = await live.get("/v1/admin/events?type=renewal.disputed", headers=admin)
    assert [e["resource_id"] for e in history.json()["data"]] == [renewal["id"]]
