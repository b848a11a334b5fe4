"""Settings → gateway: the factory, the mounted sandbox, GatewayDep, the CLI command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import SecretStr

from app.cli import build_parser
from app.core.deps import GatewayDep
from app.core.settings import DEV_GATEWAY_API_KEY, ConfigurationError, Settings
from app.core.settings_checks import check_settings
from app.gateways.factory import IN_PROCESS_SANDBOX_URL, build_gateway, build_sandbox
from app.gateways.port import PaymentGateway
from app.gateways.stripe import STRIPE_API_BASE, StripeGateway
from app.gateways.throttle import ThrottledGateway

SANDBOX_AUTH = {"Authorization": f"Bearer {DEV_GATEWAY_API_KEY}"}
FORM = "application/x-www-form-urlencoded"


def adapter_of(gateway: PaymentGateway) -> StripeGateway:
    """The Stripe adapter inside the throttle the factory wraps it in."""
    assert isinstance(gateway, ThrottledGateway)
    assert isinstance(gateway.inner, StripeGateway)
    return gateway.inner


async def test_the_mounted_sandbox_takes_stripe_forms_through_the_edge(
    client: httpx.AsyncClient,
) -> None:
    body = "type=card&card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2030"
    response = await client.post(
        "/sandbox/v1/payment_methods",
        content=body,
        headers={**SANDBOX_AUTH, "content-type": FORM, "Idempotency-Key": "wiring-pm"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "payment_method"
    assert response.json()["card"]["last4"] == "4242"
    assert "x-request-id" in response.headers  # the edge still wraps it
    # The service's own routes stay JSON-only.
    refused = await client.post("/v1/me", content="a=1", headers={"content-type": FORM})
    assert refused.status_code == 415


async def test_gateway_dependency(make_app: Callable[..., FastAPI]) -> None:
    probe = APIRouter()

    @probe.get("/probe/gateway")
    async def which(gateway: GatewayDep) -> dict[str, str]:
        return {"type": type(gateway).__name__}

    app = make_app()
    app.include_router(probe)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        assert (await client.get("/probe/gateway")).json() == {"type": "ThrottledGateway"}
        # The in-process adapter reaches the mounted sandbox, no network involved.
        assert await app.state.gateway.ensure_customer(customer_ref="c-w", existing_id=None)


async def test_unmounted_sandbox_is_reached_by_url(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(sandbox_mounted=False, gateway_base_url="http://127.0.0.1:9/")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        assert (await client.get("/sandbox/v1/customers/x")).status_code == 404
        gateway = adapter_of(app.state.gateway)
        assert str(gateway._client.base_url) == "http://127.0.0.1:9"


async def test_factory_targets() -> None:
    live = Settings(gateway="stripe", gateway_api_key=SecretStr("sk_live_abc"))
    assert build_sandbox(live) is None  # no sandbox beside the real Stripe
    stripe = adapter_of(build_gateway(live))
    assert str(stripe._client.base_url) == STRIPE_API_BASE
    assert stripe._client.timeout.read == 30
    await stripe.aclose()
    settings = Settings(gateway_timeout_seconds=3)
    sandbox = build_sandbox(settings)
    assert sandbox is not None
    assert sandbox.config.public_url == "http://127.0.0.1:8000/sandbox"
    local = adapter_of(build_gateway(settings, sandbox=sandbox))
    assert str(local._client.base_url) == IN_PROCESS_SANDBOX_URL
    assert local._client.timeout.read == 3
    await local.aclose()
    with pytest.raises(ConfigurationError):
        build_gateway(settings, sandbox=None)


async def test_factory_throttle() -> None:
    live = {"gateway": "stripe", "gateway_api_key": SecretStr("sk_live_abc")}
    paced = build_gateway(
        Settings(
            **live, gateway_max_requests_per_second=12.5, gateway_rate_limit_max_wait_seconds=9
        )
    )
    assert isinstance(paced, ThrottledGateway)
    assert (paced.max_pace, paced.max_wait_seconds) == (12.5, 9)
    await paced.aclose()
    # Neither a pace nor a budget: the wrapper would do nothing, so there is none.
    bare = build_gateway(Settings(**live, gateway_rate_limit_max_wait_seconds=0))
    assert isinstance(bare, StripeGateway)
    await bare.aclose()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gateway": "stripe"}, "Stripe secret key"),
        ({"gateway": "stripe", "gateway_api_key": SecretStr("pk_live_x")}, "Stripe secret key"),
        ({"sandbox_mounted": False}, "GATEWAY_BASE_URL"),
        # The lease must cover the throttle's wait on top of the timeouts (5 + 30 + 90).
        ({"gateway_rate_limit_max_wait_seconds": 90}, "RATE_LIMIT_MAX_WAIT_SECONDS"),
    ],
)
def test_gateway_settings_are_checked(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        check_settings(Settings(**overrides))


def test_sandbox_gateway_command_line() -> None:
    args = build_parser().parse_args(["sandbox-gateway", "--port", "8765"])
    assert (args.command, args.port, args.host, args.public_url) == (
        "sandbox-gateway",
        8765,
        "127.0.0.1",
        None,
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sandbox-gateway"])
