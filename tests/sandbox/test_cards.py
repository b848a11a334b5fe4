"""Stripe's test cards through the adapter and the in-process sandbox."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.gateways.port import (
    AuthenticationRequired,
    CardDeclined,
    InvalidCardRequest,
)
from app.gateways.stripe import StripeGateway
from tests.sandbox.conftest import card_form

RETURN_URL = "https://customer-area.test/cards/return"


async def test_4242_sets_up_and_charges(gateway: StripeGateway, flows: Any) -> None:
    setup = await flows.register("4242424242424242", "reg-ok")
    assert setup.status == "succeeded" and setup.action_url is None
    assert (setup.card.brand, setup.card.last4, setup.card.exp_year) == ("visa", "4242", 2030)
    assert setup.card.fingerprint and setup.card.country == "US"

    made = await flows.charge(setup, "ren_1-attempt-1")
    found = await gateway.find_charge("ren_1-attempt-1")
    assert found == made
    assert found is not None and found.status == "succeeded" and found.amount == 1299
    assert found.currency == "EUR" and found.metadata["renewal_id"] == "ren_1"
    assert await gateway.find_charge("never-used") is None


async def test_same_card_same_fingerprint(flows: Any) -> None:
    first = await flows.register("4242424242424242", "reg-a")
    second = await flows.register("4242424242424242", "reg-b")
    other = await flows.register("5555555555554444", "reg-c")
    assert first.card.fingerprint == second.card.fingerprint != other.card.fingerprint
    assert other.card.brand == "mastercard"


async def test_stripe_test_payment_method_ids(gateway: StripeGateway) -> None:
    customer = await gateway.ensure_customer(customer_ref="c-pm", existing_id=None)
    setup = await gateway.set_up_card(
        gateway_customer_id=customer,
        payment_method_token="pm_card_visa",
        return_url=RETURN_URL,
        idempotency_key="reg-pm",
    )
    assert setup.status == "succeeded" and setup.gateway_payment_method_id != "pm_card_visa"


@pytest.mark.parametrize(
    ("number", "code", "decline_code", "hard"),
    [
        ("4000000000000002", "card_declined", "generic_decline", False),
        ("4000000000000069", "expired_card", "expired_card", True),
        ("4000000000000127", "incorrect_cvc", "incorrect_cvc", True),
        ("4000000000009987", "card_declined", "lost_card", True),
    ],
)
async def test_cards_declined_at_setup(
    flows: Any, number: str, code: str, decline_code: str, hard: bool
) -> None:
    with pytest.raises(CardDeclined) as caught:
        await flows.register(number, f"reg-{number}")
    assert (caught.value.code, caught.value.decline_code, caught.value.hard) == (
        code,
        decline_code,
        hard,
    )


async def test_insufficient_funds_sets_up_but_declines_charges(
    gateway: StripeGateway, flows: Any
) -> None:
    setup = await flows.register("4000000000009995", "reg-poor")
    assert setup.status == "succeeded"
    with pytest.raises(CardDeclined) as caught:
        await flows.charge(setup, "ren_2-attempt-1")
    assert caught.value.decline_code == "insufficient_funds" and not caught.value.hard
    assert caught.value.charge_id is not None
    found = await gateway.find_charge("ren_2-attempt-1")
    assert found is not None and found.charge_id == caught.value.charge_id
    assert found.status == "failed" and found.decline_code == "insufficient_funds"


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("4242424242424241", "incorrect_number"),
        ("4242 4242 4242 4242", None),
    ],
)
async def test_tokenize_checks_the_number(
    gateway: StripeGateway, number: str, message: str | None
) -> None:
    if message is None:
        assert await gateway.tokenize_card(number=number, exp_month=1, exp_year=2031, cvc=None)
        return
    with pytest.raises(CardDeclined) as caught:
        await gateway.tokenize_card(number=number, exp_month=1, exp_year=2031, cvc=None)
    assert caught.value.code == message


async def test_tokenize_refuses_a_past_expiry(gateway: StripeGateway) -> None:
    # The sandbox runs on the test clock: 2026-11-24.
    with pytest.raises(CardDeclined) as caught:
        await gateway.tokenize_card(
            number="4242424242424242", exp_month=10, exp_year=2026, cvc=None
        )
    assert caught.value.code == "invalid_expiry_year"


async def test_unknown_ids_are_invalid_requests(gateway: StripeGateway) -> None:
    with pytest.raises(InvalidCardRequest) as caught:
        await gateway.refresh_setup("seti_missing")
    assert caught.value.code == "resource_missing"
    customer = await gateway.ensure_customer(customer_ref="c-x", existing_id=None)
    with pytest.raises(InvalidCardRequest):
        await gateway.set_up_card(
            gateway_customer_id=customer,
            payment_method_token="pm_nope",
            return_url=RETURN_URL,
            idempotency_key="reg-x",
        )


async def test_off_session_charge_of_a_card_that_always_authenticates(
    gateway: StripeGateway, flows: Any, api: httpx.AsyncClient
) -> None:
    # Stripe: 4000002760003184 "requires authentication on all transactions, regardless of
    # how the card is set up": even after a completed setup, off-session charges need it.
    setup = await flows.register("4000002760003184", "reg-3ds-always")
    assert setup.action_url is not None
    page = await api.get(setup.action_url)
    token = page.text.split('name="token" value="')[1].split('"')[0]
    await api.post(f"/3ds/{setup.setup_id}", data={"token": token, "result": "complete"})
    assert (await gateway.refresh_setup(setup.setup_id)).status == "succeeded"
    with pytest.raises(AuthenticationRequired) as caught:
        await flows.charge(setup, "ren_3-attempt-1")
    assert caught.value.charge_id is not None


# --- The cards added for Stripe's declines, Radar, 3DS2 and disputes (raw API) -------------


async def tokenized(api: httpx.AsyncClient, number: str, cvc: str | None = "123") -> Any:
    response = await api.post("/v1/payment_methods", data=card_form(number, cvc))
    assert response.status_code == 200, response.text
    return response.json()


async def attached(api: httpx.AsyncClient, number: str, cvc: str | None = "123") -> Any:
    customer = (await api.post("/v1/customers")).json()["id"]
    method = await tokenized(api, number, cvc)
    return await api.post(f"/v1/payment_methods/{method['id']}/attach", data={"customer": customer})


async def charge_off_session(api: httpx.AsyncClient, method: dict[str, Any]) -> httpx.Response:
    return await api.post(
        "/v1/payment_intents",
        data={
            "amount": "2500",
            "currency": "eur",
            "customer": method["customer"],
            "payment_method": method["id"],
            "confirm": "true",
            "off_session": "recurring",
        },
    )


async def test_velocity_exceeded_cannot_be_attached(api: httpx.AsyncClient) -> None:
    response = await attached(api, "4000000000006975")
    assert response.status_code == 402
    error = response.json()["error"]
    assert (error["code"], error["decline_code"]) == ("card_declined", "card_velocity_exceeded")


async def test_radar_blocks_every_charge_of_4100(api: httpx.AsyncClient) -> None:
    method = (await attached(api, "4100000000000019")).json()
    assert method["customer"] is not None  # attaching is not a payment: Radar lets it be
    response = await charge_off_session(api, method)
    assert response.status_code == 402
    error = response.json()["error"]
    assert (error["code"], error["decline_code"]) == ("card_declined", "fraudulent")
    charge = (await api.get(f"/v1/charges/{error['charge']}")).json()
    assert charge["outcome"]["type"] == "blocked"
    assert charge["outcome"]["risk_level"] == "highest"
    assert charge["outcome"]["network_status"] == "not_sent_to_network"


async def test_3ds2_required_until_set_up(api: httpx.AsyncClient) -> None:
    method = (await attached(api, "4000000000003220")).json()
    assert method["card"]["country"] == "IE"
    unset = await charge_off_session(api, method)
    assert unset.json()["error"]["code"] == "authentication_required"
    setup = await api.post(
        "/v1/setup_intents",
        data={
            "customer": method["customer"],
            "payment_method": method["id"],
            "confirm": "true",
            "return_url": RETURN_URL,
        },
    )
    intent = setup.json()
    assert intent["status"] == "requires_action"
    url = intent["next_action"]["redirect_to_url"]["url"]
    page = await api.get(url)
    token = page.text.split('name="token" value="')[1].split('"')[0]
    await api.post(f"/3ds/{intent['id']}", data={"token": token, "result": "complete"})
    paid = await charge_off_session(api, method)
    assert paid.status_code == 200 and paid.json()["status"] == "succeeded"


async def test_0259_is_disputed_after_the_charge(api: httpx.AsyncClient) -> None:
    method = (await attached(api, "4000000000000259")).json()
    paid = (await charge_off_session(api, method)).json()
    assert paid["status"] == "succeeded"
    charge = (await api.get(f"/v1/charges/{paid['latest_charge']}")).json()
    assert charge["disputed"] is True
    [event] = (await api.get("/v1/events", params={"type": "charge.dispute.created"})).json()[
        "data"
    ]
    dispute = event["data"]["object"]
    assert (dispute["charge"], dispute["payment_intent"]) == (charge["id"], paid["id"])
    assert (dispute["reason"], dispute["status"], dispute["amount"]) == (
        "fraudulent",
        "needs_response",
        2500,
    )


async def test_0101_fails_its_cvc_check_only_when_given_one(api: httpx.AsyncClient) -> None:
    with_cvc = await tokenized(api, "4000000000000101", cvc="123")
    assert with_cvc["card"]["checks"]["cvc_check"] == "fail"
    refused = await attached(api, "4000000000000101", cvc="123")
    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "incorrect_cvc"

    without = (await attached(api, "4000000000000101", cvc=None)).json()
    assert without["card"]["checks"]["cvc_check"] is None
    assert (await charge_off_session(api, without)).json()["status"] == "succeeded"
    assert (await tokenized(api, "4242424242424242"))["card"]["checks"]["cvc_check"] == "pass"
