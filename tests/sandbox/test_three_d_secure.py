"""3-D Secure end to end at the gateway level: setup → challenge page → return_url → refresh."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from app.gateways.stripe import StripeGateway

RETURN_URL = "https://customer-area.test/cards/return"


def hidden_token(page: str) -> str:
    return page.split('name="token" value="')[1].split('"')[0]


async def answer(api: httpx.AsyncClient, action_url: str, result: str) -> httpx.Response:
    page = await api.get(action_url)
    assert page.status_code == 200, page.text
    assert "text/html" in page.headers["content-type"]
    assert "Complete authentication" in page.text and "Fail authentication" in page.text
    return await api.post(
        urlsplit(action_url).path, data={"token": hidden_token(page.text), "result": result}
    )


async def test_complete_the_challenge(
    gateway: StripeGateway, flows: Any, api: httpx.AsyncClient
) -> None:
    setup = await flows.register("4000002500003155", "reg-3ds")
    assert setup.status == "requires_action"
    assert setup.action_url is not None and setup.action_url.startswith("http://testserver/3ds/")
    assert (await gateway.refresh_setup(setup.setup_id)).status == "requires_action"

    redirect = await answer(api, setup.action_url, "complete")
    assert redirect.status_code == 303
    target = urlsplit(redirect.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == RETURN_URL
    query = parse_qs(target.query)
    assert query == {
        "setup_intent": [setup.setup_id],
        "setup_intent_client_secret": query["setup_intent_client_secret"],
        "redirect_status": ["succeeded"],
    }
    assert query["setup_intent_client_secret"][0].startswith(f"{setup.setup_id}_secret_")

    refreshed = await gateway.refresh_setup(setup.setup_id)
    assert refreshed.status == "succeeded" and refreshed.action_url is None
    assert refreshed.gateway_payment_method_id == setup.gateway_payment_method_id
    # Stripe: this card needs authentication off-session only until it has been set up.
    charge = await flows.charge(refreshed, "ren_9-attempt-1")
    assert charge.status == "succeeded"


async def test_fail_the_challenge(
    gateway: StripeGateway, flows: Any, api: httpx.AsyncClient
) -> None:
    setup = await flows.register("4000002760003184", "reg-3ds-fail")
    redirect = await answer(api, setup.action_url, "fail")
    assert parse_qs(urlsplit(redirect.headers["location"]).query)["redirect_status"] == ["failed"]
    refreshed = await gateway.refresh_setup(setup.setup_id)
    assert refreshed.status == "failed"
    assert refreshed.failure_code == "setup_intent_authentication_failure"


async def test_the_page_needs_its_token_and_answers_once(
    flows: Any, api: httpx.AsyncClient
) -> None:
    setup = await flows.register("4000002760003184", "reg-3ds-once")
    path = urlsplit(setup.action_url).path
    assert (await api.get(path, params={"token": "wrong"})).status_code == 404
    forged = await api.post(path, data={"token": "wrong", "result": "complete"})
    assert forged.status_code == 404
    assert (await answer(api, setup.action_url, "complete")).status_code == 303
    # Answered: the link is dead, whoever holds it.
    assert (await api.get(setup.action_url)).status_code == 404


async def test_the_mounted_sandbox_builds_urls_under_public_base_url(
    make_app: Any, auth: Any
) -> None:
    app = make_app(public_base_url="https://billing.example.test")
    # The mounted sandbox's ledger lives for the whole run: keys must be new each time.
    run = uuid.uuid4().hex
    async with app.router.lifespan_context(app):
        gateway = app.state.gateway
        token = await gateway.tokenize_card(
            number="4000002760003184", exp_month=12, exp_year=2030, cvc=None
        )
        customer = await gateway.ensure_customer(customer_ref=f"c-{run}", existing_id=None)
        setup = await gateway.set_up_card(
            gateway_customer_id=customer,
            payment_method_token=token,
            return_url=RETURN_URL,
            idempotency_key=f"reg-{run}",
        )
        assert setup.action_url.startswith("https://billing.example.test/sandbox/3ds/seti_")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://billing.example.test"
        ) as browser:
            page = await browser.get(setup.action_url)
            assert page.status_code == 200
            done = await browser.post(
                urlsplit(setup.action_url).path,
                data={"token": hidden_token(page.text), "result": "complete"},
            )
            assert done.status_code == 303
        assert (await gateway.refresh_setup(setup.setup_id)).status == "succeeded"
