"""On-session payments: a PaymentIntent confirmed with a return_url and no off_session goes
through the 3-D Secure page when the card needs it, then charges (or not), and the browser
comes back to the return_url with Stripe's parameters."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.sandbox.conftest import RETURN_URL, card_form


async def customer_with(api: httpx.AsyncClient, number: str) -> tuple[str, str]:
    customer = (await api.post("/v1/customers")).json()["id"]
    method = (await api.post("/v1/payment_methods", data=card_form(number))).json()["id"]
    attach = await api.post(f"/v1/payment_methods/{method}/attach", data={"customer": customer})
    assert attach.status_code == 200
    return customer, method


async def pay_on_session(
    api: httpx.AsyncClient, customer: str, method: str, **extra: str
) -> httpx.Response:
    return await api.post(
        "/v1/payment_intents",
        data={
            "amount": "2500",
            "currency": "eur",
            "customer": customer,
            "payment_method": method,
            "confirm": "true",
            "return_url": RETURN_URL,
            **extra,
        },
        headers={"Idempotency-Key": f"pay-{method}-{len(extra)}"},
    )


async def answer(api: httpx.AsyncClient, intent: dict[str, Any], result: str) -> dict[str, Any]:
    """The customer on the 3-D Secure page; returns the query the return_url got."""
    redirect = intent["next_action"]["redirect_to_url"]
    assert redirect["return_url"] == RETURN_URL
    page = await api.get(redirect["url"])
    assert page.status_code == 200
    assert "25.00 EUR" in page.text
    token = page.text.split('name="token" value="')[1].split('"')[0]
    done = await api.post(urlsplit(redirect["url"]).path, data={"token": token, "result": result})
    assert done.status_code == 303
    target = urlsplit(done.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == RETURN_URL
    return {key: values[0] for key, values in parse_qs(target.query).items()}


async def event_types(api: httpx.AsyncClient) -> list[str]:
    events = (await api.get("/v1/events", params={"limit": 100})).json()["data"]
    return [event["type"] for event in reversed(events)]


@pytest.mark.parametrize("number", ["4000002500003155", "4000002760003184", "4000000000003220"])
async def test_authenticate_then_paid(api: httpx.AsyncClient, number: str) -> None:
    customer, method = await customer_with(api, number)
    waiting = await pay_on_session(api, customer, method)
    assert waiting.status_code == 200
    intent = waiting.json()
    assert intent["status"] == "requires_action"
    assert (intent["latest_charge"], intent["amount_received"]) == (None, 0)
    back = await answer(api, intent, "complete")
    assert back == {
        "payment_intent": intent["id"],
        "payment_intent_client_secret": intent["client_secret"],
        "redirect_status": "succeeded",
    }
    paid = (await api.get(f"/v1/payment_intents/{intent['id']}")).json()
    assert (paid["status"], paid["amount_received"], paid["next_action"]) == (
        "succeeded",
        2500,
        None,
    )
    charge = (await api.get(f"/v1/charges/{paid['latest_charge']}")).json()
    assert charge["status"] == "succeeded" and charge["paid"]
    assert charge["payment_method_details"]["card"]["three_d_secure"]["result"] == "authenticated"
    assert "payment_intent.succeeded" in await event_types(api)


async def test_failed_authentication_charges_nothing(api: httpx.AsyncClient) -> None:
    customer, method = await customer_with(api, "4000002500003155")
    intent = (await pay_on_session(api, customer, method)).json()
    back = await answer(api, intent, "fail")
    assert back["redirect_status"] == "failed"
    failed = (await api.get(f"/v1/payment_intents/{intent['id']}")).json()
    assert failed["status"] == "requires_payment_method"
    assert failed["last_payment_error"]["code"] == "payment_intent_authentication_failure"
    assert failed["latest_charge"] is None
    assert (await api.get("/_ledger/summary")).json()["charges_by_status"] == {
        "requires_payment_method": {"count": 1, "amount": 2500}
    }
    assert (await event_types(api))[-1] == "payment_intent.payment_failed"
    # The link is spent.
    assert (await api.get(intent["next_action"]["redirect_to_url"]["url"])).status_code == 404


async def test_authenticated_but_declined(api: httpx.AsyncClient) -> None:
    customer, method = await customer_with(api, "4000008260003178")
    intent = (await pay_on_session(api, customer, method)).json()
    assert intent["status"] == "requires_action"
    assert (await answer(api, intent, "complete"))["redirect_status"] == "failed"
    declined = (await api.get(f"/v1/payment_intents/{intent['id']}")).json()
    assert declined["status"] == "requires_payment_method"
    assert declined["last_payment_error"]["decline_code"] == "insufficient_funds"
    charge = (await api.get(f"/v1/charges/{declined['latest_charge']}")).json()
    assert (charge["status"], charge["failure_code"]) == ("failed", "card_declined")


async def test_cards_without_3ds_pay_at_once(api: httpx.AsyncClient) -> None:
    customer, method = await customer_with(api, "4242424242424242")
    paid = await pay_on_session(api, customer, method)
    assert paid.status_code == 200 and paid.json()["status"] == "succeeded"
    again = await api.post(
        f"/v1/payment_intents/{paid.json()['id']}/confirm", data={"return_url": RETURN_URL}
    )
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "payment_intent_unexpected_state"


async def test_a_3ds_card_without_return_url_is_a_400(api: httpx.AsyncClient) -> None:
    customer, method = await customer_with(api, "4000002760003184")
    response = await api.post(
        "/v1/payment_intents",
        data={
            "amount": "2500",
            "currency": "eur",
            "customer": customer,
            "payment_method": method,
            "confirm": "true",
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "return_url"


async def test_the_spa_confirms_with_the_publishable_key(
    api: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    """The server creates the intent; the browser, holding only the publishable key and the
    client secret, confirms it and reads it back."""
    customer, method = await customer_with(api, "4000002500003155")
    created = await api.post(
        "/v1/payment_intents",
        data={"amount": "2500", "currency": "eur", "customer": customer},
    )
    intent = created.json()
    assert intent["status"] == "requires_payment_method"
    confirmed = await browser.post(
        f"/v1/payment_intents/{intent['id']}/confirm",
        data={
            "payment_method": method,
            "return_url": RETURN_URL,
            "client_secret": intent["client_secret"],
            "expand[0]": "payment_method",
        },
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["payment_method"]["id"] == method
    await answer(api, confirmed.json(), "complete")
    seen = await browser.get(
        f"/v1/payment_intents/{intent['id']}", params={"client_secret": intent["client_secret"]}
    )
    assert seen.json()["status"] == "succeeded"


async def test_back_on_session_after_an_off_session_authentication_decline(
    api: httpx.AsyncClient,
) -> None:
    """Stripe's recovery for authentication_required: the customer confirms the same
    PaymentIntent on-session; one charge succeeds in the end."""
    customer, method = await customer_with(api, "4000002760003184")
    declined = await api.post(
        "/v1/payment_intents",
        data={
            "amount": "2500",
            "currency": "eur",
            "customer": customer,
            "payment_method": method,
            "confirm": "true",
            "off_session": "true",
        },
    )
    assert declined.json()["error"]["code"] == "authentication_required"
    intent_id = declined.json()["error"]["payment_intent"]["id"]
    waiting = await api.post(
        f"/v1/payment_intents/{intent_id}/confirm", data={"return_url": RETURN_URL}
    )
    assert waiting.json()["status"] == "requires_action"
    assert (await answer(api, waiting.json(), "complete"))["redirect_status"] == "succeeded"
    charges = (await api.get("/_ledger/summary")).json()["charges_by_status"]
    assert charges == {"succeeded": {"count": 1, "amount": 2500}}


async def test_confirming_again_while_3ds_waits_voids_the_first_page(
    api: httpx.AsyncClient,
) -> None:
    """Another confirmation (the customer paying again, maybe with another card) starts
    over: only the newest page can pay, so an old tab cannot take the money twice."""
    customer, method = await customer_with(api, "4000002760003184")
    first = (await pay_on_session(api, customer, method)).json()
    old_page = first["next_action"]["redirect_to_url"]["url"]
    again = await api.post(
        f"/v1/payment_intents/{first['id']}/confirm", data={"return_url": RETURN_URL}
    )
    assert again.status_code == 200 and again.json()["status"] == "requires_action"
    assert again.json()["next_action"]["redirect_to_url"]["url"] != old_page
    assert (await api.get(old_page)).status_code == 404
    assert (await answer(api, again.json(), "complete"))["redirect_status"] == "succeeded"
    assert (await api.get("/_ledger/summary")).json()["charges_by_status"] == {
        "succeeded": {"count": 1, "amount": 2500}
    }
