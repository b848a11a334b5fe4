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
from app.gateways.factory import IN_PROCESS_SANDBOX_URL, build_gateway, build_sandbox
from app.gateways.stripe import STRIPE_API_BASE, StripeGateway

SANDBOX_AUTH = {"Authorization": f"Bearer {DEV_GATEWAY_API_KEY}"}
FORM = "application/x-www-form-urlencoded"


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
        assert (await client.get("/probe/gateway")).json() == {"type": "StripeGateway"}
        # The in-process adapter reaches the mounted sandbox, no network involved.
        assert await app.state.gateway.ensure_customer(customer_ref="c-w", existing_id=None)


async def test_unmounted_sandbox_is_reached_by_url(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(sandbox_mounted=False, gateway_base_url="http://127.0.0.1:9/")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        assert (await client.get("/sandbox/v1/customers/x")).status_code == 404
        gateway: StripeGateway = app.state.gateway
        assert str(gateway._client.base_url) == "http://127.0.0.1:9"


async def test_factory_targets() -> None:
    live = Settings(gateway="stripe", gateway_api_key=SecretStr("sk_live_abc"))
    assert build_sandbox(live) is None  # no sandbox beside the real Stripe
    stripe = build_gateway(live)
    assert str(stripe._client.base_url) == STRIPE_API_BASE
    assert stripe._client.timeout.read == 30
    await stripe.aclose()
    settings = Settings(gateway_timeout_seconds=3)
    sandbox = build_sandbox(settings)
    assert sandbox is not None
    assert sandbox.config.public_url == "http://127.0.0.1:8000/sandbox"
    local = build_gateway(settings, sandbox=sandbox)
    assert str(local._client.base_url) == IN_PROCESS_SANDBOX_URL
    assert local._client.timeout.read == 3
    await local.aclose()
    with pytest.raises(ConfigurationError):
        build_gateway(settings, sandbox=None)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gateway": "stripe"}, "Stripe secret key"),
        ({"gateway": "stripe", "gateway_api_key": SecretStr("pk_live_x")}, "Stripe secret key"),
        ({"sandbox_mounted": False}, "GATEWAY_BASE_URL"),
    ],
)
def test_gateway_settings_are_checked(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings(**overrides).check()


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
