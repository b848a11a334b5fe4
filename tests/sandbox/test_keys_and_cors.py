"""Publishable keys where Stripe takes them, secret keys everywhere else, CORS for the SPA."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr

from app.core.clock import FrozenClock
from app.core.settings import ConfigurationError, Settings
from app.core.settings_checks import check_settings
from app.payment_methods.views import card_setup_out
from app.sandbox.app import Sandbox
from app.sandbox.config import SandboxConfig
from tests.sandbox.conftest import API_KEY, PUBLISHABLE_KEY, card_form

SERVER_ONLY = [
    ("POST", "/v1/customers"),
    ("GET", "/v1/customers/cus_x"),
    ("GET", "/v1/payment_methods/pm_x"),
    ("POST", "/v1/payment_methods/pm_x"),
    ("POST", "/v1/payment_methods/pm_card_visa/attach"),
    ("POST", "/v1/payment_methods/pm_x/detach"),
    ("POST", "/v1/setup_intents"),
    ("POST", "/v1/payment_intents"),
    ("GET", "/v1/payment_intents/search?query=status:'succeeded'"),
    ("GET", "/v1/charges/ch_x"),
    ("POST", "/v1/refunds"),
    ("GET", "/v1/events"),
    ("GET", "/v1/events/evt_x"),
    ("POST", "/_test/payment_methods/pm_x/card_updater"),
    ("POST", "/_test/charges/ch_x/dispute"),
    ("GET", "/_ledger/charges"),
    ("GET", "/_ledger/summary"),
]


async def test_a_publishable_key_tokenizes_a_card(browser: httpx.AsyncClient) -> None:
    response = await browser.post("/v1/payment_methods", data=card_form("4242424242424242"))
    assert response.status_code == 200
    assert response.json()["id"].startswith("pm_")
    assert response.json()["card"]["last4"] == "4242"


@pytest.mark.parametrize(("method", "path"), SERVER_ONLY)
async def test_a_publishable_key_is_refused_on_server_routes(
    browser: httpx.AsyncClient, api: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await browser.request(method, path, data={"customer": "cus_x"})
    assert response.status_code == 403
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "secret_key_required")
    assert "publishable API key" in error["message"]
    summary = (await api.get("/_ledger/summary")).json()
    assert summary["customers"] == summary["payment_methods"] == 0


@pytest.mark.parametrize("key", ["pk_live_real", "pk_test_", "rk_test_x", "sk_live_x"])
async def test_other_keys_are_401(sandbox: Sandbox, key: str) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox.app), base_url="http://s"
    ) as client:
        response = await client.post(
            "/v1/payment_methods",
            data=card_form("4242424242424242"),
            headers={"Authorization": f"Bearer {key}"},
        )
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_intents_open_to_a_publishable_key_with_their_client_secret(
    api: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    customer = (await api.post("/v1/customers")).json()["id"]
    intent = (await api.post("/v1/setup_intents", data={"customer": customer})).json()
    assert intent["status"] == "requires_payment_method"
    secret = intent["client_secret"]
    assert secret.startswith(f"{intent['id']}_secret_")
    path = f"/v1/setup_intents/{intent['id']}"
    for params in ({}, {"client_secret": intent["id"] + "_secret_guess"}):
        refused = await browser.get(path, params=params)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "setup_intent_invalid_parameter"
    seen = await browser.get(path, params={"client_secret": secret})
    assert seen.status_code == 200 and seen.json()["id"] == intent["id"]

    method = (await browser.post("/v1/payment_methods", data=card_form("4242424242424242"))).json()
    wrong = await browser.post(
        f"{path}/confirm", data={"payment_method": method["id"], "client_secret": "x"}
    )
    assert wrong.status_code == 400
    confirmed = await browser.post(
        f"{path}/confirm", data={"payment_method": method["id"], "client_secret": secret}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "succeeded"
    attached = (await api.get(f"/v1/payment_methods/{method['id']}")).json()
    assert attached["customer"] == customer


@pytest.fixture
async def cors_sandbox(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Sandbox]:
    config = SandboxConfig(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/cors.db",
        cors_origins=("https://shop.test",),
    )
    instance = Sandbox(config, clock=clock)
    await instance.start()
    yield instance
    await instance.stop()


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }


async def test_cors_answers_the_configured_origins(cors_sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=cors_sandbox.app), base_url="http://s"
    ) as client:
        allowed = await client.options(
            "/v1/payment_methods", headers=preflight("https://shop.test")
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://shop.test"
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        other = await client.options("/v1/payment_methods", headers=preflight("https://evil.test"))
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers
        made = await client.post(
            "/v1/payment_methods",
            data=card_form("4242424242424242"),
            headers={"Origin": "https://shop.test", "Authorization": f"Bearer {PUBLISHABLE_KEY}"},
        )
        assert made.status_code == 200
        assert made.headers["access-control-allow-origin"] == "https://shop.test"
        assert "request-id" in made.headers["access-control-expose-headers"].lower()


async def test_the_mounted_sandbox_answers_its_own_cors_and_the_spa_learns_its_key(
    make_app: Any, auth: Any
) -> None:
    app = make_app(
        cors_origins=["https://spa.test"],
        sandbox_cors_origins=["https://shop.test"],
        public_base_url="https://billing.example.test",
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://billing.example.test"
        ) as client,
    ):
        setup = await client.get("/v1/payment-methods/setup", headers=auth("cus_cors"))
        assert setup.status_code == 200
        assert setup.json() == {
            "gateway": "sandbox",
            "publishable_key": "pk_test_autorenew_sandbox",
            "sandbox_url": "https://billing.example.test/sandbox",
        }
        sandbox_path = urlsplit(setup.json()["sandbox_url"]).path + "/v1/payment_methods"
        for origin in ("https://shop.test", "https://spa.test"):
            answer = await client.options(sandbox_path, headers=preflight(origin))
            assert answer.status_code == 200, origin
            assert answer.headers["access-control-allow-origin"] == origin
        refused = await client.options(sandbox_path, headers=preflight("https://evil.test"))
        assert refused.status_code == 400
        # The service's own routes keep the service's list.
        own = await client.options("/v1/payment-methods", headers=preflight("https://shop.test"))
        assert own.status_code == 400
        made = await client.post(
            sandbox_path,
            data=card_form("4242424242424242"),
            headers={
                "Origin": "https://spa.test",
                "Authorization": f"Bearer {setup.json()['publishable_key']}",
            },
        )
        assert made.status_code == 200 and made.json()["id"].startswith("pm_")
        assert (await client.get("/v1/payment-methods/setup")).status_code == 401


def test_the_setup_answer_follows_the_gateway() -> None:
    stripe = Settings(
        gateway="stripe",
        gateway_api_key=SecretStr("sk_live_abc"),
        gateway_publishable_key="pk_live_abc",
    )
    assert card_setup_out(stripe).model_dump() == {
        "gateway": "stripe",
        "publishable_key": "pk_live_abc",
        "sandbox_url": None,
    }
    apart = Settings(sandbox_mounted=False, gateway_base_url="http://sandbox.internal:8150/")
    assert card_setup_out(apart).sandbox_url == "http://sandbox.internal:8150"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gateway_publishable_key": API_KEY}, "must be a publishable key"),
        (
            {
                "gateway": "stripe",
                "gateway_api_key": SecretStr("sk_live_abc"),
                "gateway_publishable_key": "pk_test_abc",
            },
            "different modes",
        ),
        ({"gateway_publishable_key": "pk_live_abc"}, "test keys only"),
        (
            {
                "env": "production",
                "gateway": "stripe",
                "gateway_api_key": SecretStr("sk_live_abc"),
            },
            "GATEWAY_PUBLISHABLE_KEY is needed",
        ),
    ],
)
def test_publishable_key_settings_are_checked(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        check_settings(Settings(**overrides))
