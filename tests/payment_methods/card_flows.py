"""Card registration as the customer-area SPA does it, against the app's mounted sandbox.

The mounted sandbox keeps one ledger for the whole run (both databases), so every test
uses customer ids and keys of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.core.settings import DEV_GATEWAY_API_KEY

Auth = Callable[..., dict[str, str]]

VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
DECLINED = "4000000000000002"
EXPIRED = "4000000000000069"
# 3-D Secure on set-up and on every off-session charge too (Stripe's documented behaviour).
THREE_D_SECURE = "4000002760003184"
# 3-D Secure on set-up only: once set up, off-session charges go through.
THREE_D_SECURE_ON_SETUP = "4000002500003155"
INSUFFICIENT_FUNDS = "4000000000009995"
# Four digits that are no part of any test number, so a scan cannot find them by chance.
CVC = "7391"

SANDBOX_KEY = {"Authorization": f"Bearer {DEV_GATEWAY_API_KEY}"}


def new_customer() -> str:
    return f"cus_{uuid.uuid4().hex[:12]}"


async def tokenize(
    client: httpx.AsyncClient,
    number: str = VISA,
    *,
    exp_month: int = 12,
    exp_year: int = 2030,
    cvc: str = CVC,
) -> str:
    """What the SPA's gateway fields do: the card goes to the gateway, a token comes back."""
    response = await client.post(
        "/sandbox/v1/payment_methods",
        data={
            "type": "card",
            "card[number]": number,
            "card[exp_month]": str(exp_month),
            "card[exp_year]": str(exp_year),
            "card[cvc]": cvc,
        },
        headers={**SANDBOX_KEY, "Idempotency-Key": f"tok-{uuid.uuid4().hex}"},
    )
    assert response.status_code == 200, response.text
    token = response.json()["id"]
    assert isinstance(token, str)
    return token


async def register_card(
    client: httpx.AsyncClient, auth: Auth, customer: str, token: str, **headers: str
) -> httpx.Response:
    return await client.post(
        "/v1/payment-methods",
        json={"type": "card", "card": {"token": token}},
        headers={**auth(customer), **headers},
    )


async def add_card(
    client: httpx.AsyncClient, auth: Auth, customer: str, number: str = VISA, **card: Any
) -> httpx.Response:
    return await register_card(client, auth, customer, await tokenize(client, number, **card))


async def validate(
    client: httpx.AsyncClient, auth: Auth, customer: str, method_id: str
) -> httpx.Response:
    return await client.post(f"/v1/payment-methods/{method_id}/validate", headers=auth(customer))


async def answer_challenge(client: httpx.AsyncClient, url: str, result: str) -> httpx.Response:
    """The customer's browser on the 3-D Secure page: open it, press a button."""
    parts = urlsplit(url)
    page = await client.get(f"{parts.path}?{parts.query}")
    assert page.status_code == 200, page.text
    token = page.text.split('name="token" value="')[1].split('"')[0]
    return await client.post(parts.path, data={"token": token, "result": result})


async def ledger_charges(client: httpx.AsyncClient, gateway_customer: str) -> list[dict[str, Any]]:
    response = await client.get(
        "/sandbox/_ledger/charges", params={"limit": 100000}, headers=SANDBOX_KEY
    )
    assert response.status_code == 200, response.text
    return [c for c in response.json()["data"] if c["customer"] == gateway_customer]
