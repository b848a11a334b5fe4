"""A sandbox with a ledger of its own per test, and the Stripe adapter pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.core.clock import FrozenClock
from app.gateways.port import CardSetup, Charge
from app.gateways.stripe import StripeGateway
from app.sandbox.app import Sandbox
from app.sandbox.config import SandboxConfig

API_KEY = "sk_test_sandbox_tests"
PUBLISHABLE_KEY = "pk_test_sandbox_tests"
PUBLIC_URL = "http://testserver"
RETURN_URL = "https://customer-area.test/cards/return"


@pytest.fixture
def sandbox_config(tmp_path: Path) -> SandboxConfig:
    return SandboxConfig(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/ledger.db", public_url=PUBLIC_URL
    )


@pytest.fixture
async def sandbox(sandbox_config: SandboxConfig, clock: FrozenClock) -> AsyncIterator[Sandbox]:
    instance = Sandbox(sandbox_config, clock=clock)
    await instance.start()
    yield instance
    await instance.stop()


def transport_for(sandbox: Sandbox) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=sandbox.app, raise_app_exceptions=False)


@pytest.fixture
async def gateway(sandbox: Sandbox) -> AsyncIterator[StripeGateway]:
    adapter = StripeGateway(
        api_key=API_KEY, base_url="http://sandbox", transport=transport_for(sandbox)
    )
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def api(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """Raw HTTP to the sandbox, for what the adapter does not show (headers, pages)."""
    async with httpx.AsyncClient(
        transport=transport_for(sandbox),
        base_url=PUBLIC_URL,
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as client:
        yield client


@pytest.fixture
async def browser(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """What an SPA holds: the publishable key only."""
    async with httpx.AsyncClient(
        transport=transport_for(sandbox),
        base_url=PUBLIC_URL,
        headers={"Authorization": f"Bearer {PUBLISHABLE_KEY}"},
    ) as client:
        yield client


def card_form(number: str, cvc: str | None = "123") -> dict[str, str]:
    form = {
        "type": "card",
        "card[number]": number,
        "card[exp_month]": "12",
        "card[exp_year]": "2030",
    }
    if cvc is not None:
        form["card[cvc]"] = cvc
    return form


class Flows:
    """The calls the card-registration and renewal code make, in the order they make them."""

    def __init__(self, gateway: StripeGateway) -> None:
        self.gateway = gateway

    async def register(self, number: str, key: str, cvc: str = "123") -> CardSetup:
        token = await self.gateway.tokenize_card(
            number=number, exp_month=12, exp_year=2030, cvc=cvc
        )
        customer = await self.gateway.ensure_customer(customer_ref=f"c-{key}", existing_id=None)
        return await self.gateway.set_up_card(
            gateway_customer_id=customer,
            payment_method_token=token,
            return_url=RETURN_URL,
            idempotency_key=key,
        )

    async def charge(self, setup: CardSetup, key: str, amount: int = 1299) -> Charge:
        return await self.gateway.charge_off_session(
            gateway_customer_id=setup.gateway_customer_id,
            gateway_payment_method_id=setup.gateway_payment_method_id,
            amount=amount,
            currency="EUR",
            idempotency_key=key,
            metadata={"renewal_id": "ren_1"},
        )


@pytest.fixture
def flows(gateway: StripeGateway) -> Flows:
    return Flows(gateway)


class FaultOnce(httpx.AsyncBaseTransport):
    """Wraps a transport; asks the sandbox for `fault` on the next request, then behaves."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.fault: str | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.fault is not None:
            request.headers["X-Sandbox-Fault"] = self.fault
            self.fault = None
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def fault_once() -> type[FaultOnce]:
    return FaultOnce
