"""The sandbox in its own uvicorn processes (`autorenew sandbox-gateway`), over real HTTP.

Two processes share one ledger file, as a load or crash test would run them: they must agree
on idempotency keys. Each process is bounded: it is stopped at the end of the test, and a
test that cannot reach it in time fails instead of waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.gateways.port import OutcomeUnknown
from app.gateways.stripe import StripeGateway, default_timeout
from tests import processes

API_KEY = "sk_test_process_tests"


@pytest.fixture
def sandboxes(tmp_path: Path) -> Iterator[list[str]]:
    """Two sandbox processes sharing one ledger file."""
    ledger = tmp_path / "shared-ledger.db"
    with ExitStack() as stack:
        # One at a time: the first creates the ledger's tables and secret.
        urls = [
            stack.enter_context(
                processes.sandbox_gateway(
                    tmp_path,
                    name=f"sandbox-{n}",
                    ledger=ledger,
                    AUTORENEW_SANDBOX_FAULT_HANG_SECONDS="1",
                )
            )
            for n in range(2)
        ]
        yield urls


@pytest.mark.slow
async def test_two_processes_one_ledger(sandboxes: list[str]) -> None:
    adapters = [
        StripeGateway(api_key=API_KEY, base_url=url, timeout=default_timeout(read=0.5))
        for url in sandboxes
    ]
    first, second = adapters
    try:
        customer = await first.ensure_customer(customer_ref="c-proc", existing_id=None)
        token = await second.tokenize_card(
            number="4000002500003155", exp_month=12, exp_year=2031, cvc="321"
        )
        setup = await first.set_up_card(
            gateway_customer_id=customer,
            payment_method_token=token,
            return_url="https://customer-area.test/return",
            idempotency_key="reg-proc",
        )
        # The page URL comes from the request: where this process was reached.
        assert setup.action_url is not None and setup.action_url.startswith(sandboxes[0])
        async with httpx.AsyncClient() as browser:
            page = await browser.get(setup.action_url)
            token_value = page.text.split('name="token" value="')[1].split('"')[0]
            done = await browser.post(
                setup.action_url.split("?")[0], data={"token": token_value, "result": "complete"}
            )
        assert done.status_code == 303
        assert urlsplit(done.headers["location"]).netloc == "customer-area.test"
        assert (await second.refresh_setup(setup.setup_id)).status == "succeeded"

        async def charge(adapter: StripeGateway, key: str) -> str:
            result = await adapter.charge_off_session(
                gateway_customer_id=customer,
                gateway_payment_method_id=setup.gateway_payment_method_id,
                amount=4200,
                currency="EUR",
                idempotency_key=key,
                metadata={},
            )
            return result.charge_id

        results = await asyncio.gather(
            *(charge(adapters[n % 2], "ren_p-attempt-1") for n in range(8)),
            return_exceptions=True,
        )
        # Each got the one charge, or 409 idempotency_key_in_use (outcome unknown) while the
        # first was still running; then the key replays the charge.
        ids = {result for result in results if isinstance(result, str)}
        assert len(ids) == 1, results
        assert all(isinstance(r, OutcomeUnknown) for r in results if not isinstance(r, str))
        assert await charge(first, "ren_p-attempt-1") == ids.pop()
    finally:
        for adapter in adapters:
            await adapter.aclose()


@pytest.mark.slow
async def test_a_timeout_after_the_charge_is_reconciled_by_resending(
    sandboxes: list[str], fault_once: Any
) -> None:
    url = sandboxes[0]
    transport = fault_once(httpx.AsyncHTTPTransport())
    adapter = StripeGateway(
        api_key=API_KEY,
        base_url=url,
        transport=transport,
        timeout=default_timeout(connect=2, read=0.3),
    )
    try:
        customer = await adapter.ensure_customer(customer_ref="c-hang", existing_id=None)
        setup = await adapter.set_up_card(
            gateway_customer_id=customer,
            payment_method_token="pm_card_visa",
            return_url="https://r.test",
            idempotency_key="reg-hang",
        )
        kwargs = {
            "gateway_customer_id": customer,
            "gateway_payment_method_id": setup.gateway_payment_method_id,
            "amount": 1000,
            "currency": "EUR",
            "idempotency_key": "ren_h-attempt-1",
            "metadata": {},
        }
        transport.fault = "hang_after"
        with pytest.raises(OutcomeUnknown):
            await adapter.charge_off_session(**kwargs)  # type: ignore[arg-type]
        resent = await adapter.charge_off_session(**kwargs)  # type: ignore[arg-type]
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}
        ) as api:
            charges = (await api.get("/_ledger/charges")).json()["data"]
        assert [charge["id"] for charge in charges] == [resent.charge_id]
    finally:
        await adapter.aclose()
