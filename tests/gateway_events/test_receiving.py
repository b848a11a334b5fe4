"""POST /v1/gateway-webhooks/stripe: the signature decides, each event id counts once, and a
type the service does not act on is acknowledged."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import FrozenClock
from tests import factories
from tests.gateway_events.stripe_webhooks import (
    URL,
    body,
    card_payment_method,
    count_outbox,
    deliver,
    event,
    outbox,
    received,
    signature,
)


def _webhook_count(event_type: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "autorenew_gateway_webhook_events_total", {"type": event_type, "outcome": outcome}
    )
    return value or 0.0


async def test_a_signed_event_of_a_type_we_do_not_act_on_is_acknowledged(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    before = _webhook_count("other", "unhandled")
    document = event("customer.created", {"id": "cus_gateway", "object": "customer"})
    response = await deliver(client, document)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": document["id"],
        "type": "customer.created",
        "outcome": "unhandled",
        "replayed": False,
    }
    [row] = await received(session)
    assert (row.id, row.type, row.object_id, row.outcome) == (
        document["id"],
        "customer.created",
        "cus_gateway",
        "unhandled",
    )
    assert _webhook_count("other", "unhandled") == before + 1


@pytest.mark.parametrize(
    "tamper",
    ["wrong_secret", "stale", "missing", "body_changed", "no_v1", "garbage"],
)
async def test_a_bad_signature_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, clock: FrozenClock, tamper: str
) -> None:
    method = await factories.card_method(
        session, "cus_1", now=clock.now(), gateway_pm="pm_sig", exp=(12, 2030)
    )
    await session.commit()
    document = event("payment_method.updated", card_payment_method("pm_sig", last4="1881"))
    payload = body(document)
    header: str | None = signature(payload)
    sent = payload
    if tamper == "wrong_secret":
        header = signature(payload, secret="whsec_someone_else")
    elif tamper == "stale":
        # Five minutes is the tolerance: a delivery captured and replayed later is refused.
        header = signature(payload, timestamp=int(time.time()) - 301)
    elif tamper == "missing":
        header = None
    elif tamper == "body_changed":
        sent = payload.replace(b"1881", b"0000")
    elif tamper == "no_v1":
        header = str(header).split(",")[0]
    else:
        header = "not a signature at all"
    before = _webhook_count("unknown", "rejected")
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    response = await client.post(URL, content=sent, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_signature"
    assert _webhook_count("unknown", "rejected") == before + 1
    assert await received(session) == []
    assert await count_outbox(session) == 0
    await session.refresh(method)
    assert method.card_last4 == "4242"


async def test_a_fresh_signature_inside_the_tolerance_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    document = event("customer.updated", {"id": "cus_gateway"})
    response = await deliver(client, document, timestamp=int(time.time()) - 290)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'{"id": "evt_1"}', b"\xff\xfe"])
async def test_a_signed_body_that_is_not_an_event_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, payload: bytes
) -> None:
    response = await client.post(
        URL,
        content=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature(payload)},
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] in ("invalid_event", "invalid_signature")
    assert await received(session) == []


async def test_a_replayed_event_is_acknowledged_and_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, clock: FrozenClock
) -> None:
    method = await factories.card_method(
        session, "cus_1", now=clock.now(), gateway_pm="pm_replay", exp=(12, 2030)
    )
    await session.commit()
    document = event(
        "payment_method.automatically_updated", card_payment_method("pm_replay", exp=(1, 2032))
    )
    first = await deliver(client, document)
    assert first.json()["outcome"] == "applied" and not first.json()["replayed"]

    # The customer's card changes again meanwhile; a late redelivery of the first event
    # must not bring the old details back.
    method.card_exp_year = 2033
    await session.commit()
    before = _webhook_count("payment_method.automatically_updated", "replayed")
    again = await deliver(client, document)  # signed anew, as Stripe's retries are
    assert again.status_code == 200
    assert again.json() == {**first.json(), "replayed": True}
    assert _webhook_count("payment_method.automatically_updated", "replayed") == before + 1
    await session.refresh(method)
    assert method.card_exp_year == 2033
    assert len(await outbox(session, "payment_method.updated")) == 1
    assert len(await received(session)) == 1


async def test_stripe_json_passes_the_edge_even_with_an_escaped_nul_in_customer_data(
    client: httpx.AsyncClient, session: AsyncSession, clock: FrozenClock
) -> None:
    await factories.card_method(session, "cus_1", now=clock.now(), gateway_pm="pm_nul")
    await session.commit()
    obj: dict[str, Any] = card_payment_method("pm_nul", last4="5555")
    obj["billing_details"]["name"] = "María\u0000Núñez"  # escaped by json.dumps as \\u0000
    response = await deliver(client, event("payment_method.updated", obj))
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "applied"


async def test_an_oversized_body_is_refused_before_it_is_read(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    document = event("customer.updated", {"id": "cus_gateway", "padding": "x" * 70_000})
    response = await deliver(client, document)
    assert response.status_code == 413
    assert await received(session) == []


async def test_without_a_secret_on_stripe_every_event_is_refused(
    make_app: Callable[..., FastAPI], session: AsyncSession
) -> None:
    app = make_app(gateway="stripe", gateway_api_key=SecretStr("sk_test_0123456789"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await deliver(client, event("customer.updated", {"id": "cus_x"}))
    assert response.status_code == 503
    assert response.json()["code"] == "gateway_webhooks_not_configured"
    assert await received(session) == []


async def test_the_route_takes_no_bearer_token_and_needs_none(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    # A customer's token does not replace the signature.
    response = await client.post(
        URL, json={"id": "evt_x", "type": "customer.updated"}, headers=auth("cus_1")
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_signature"
