"""Cards over HTTP through the app's mounted sandbox gateway: register, 3-D Secure, declines,
expiry, duplicates, isolation, idempotency, gateway failures."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.events.models import Event
from app.gateways.port import GatewayError, OutcomeUnknown, RateLimited
from app.payment_methods.models import PaymentMethod
from tests.payment_methods.card_flows import (
    DECLINED,
    EXPIRED,
    THREE_D_SECURE,
    Auth,
    add_card,
    answer_challenge,
    new_customer,
    register_card,
    tokenize,
    validate,
)

Counter = Callable[[], Awaitable[dict[str, int]]]
NOTHING = {"payment_methods": 0, "mandates": 0, "idempotency_keys": 0}
CREATED_AND_VALIDATED = ["payment_method.created", "payment_method.validated"]


async def event_types(sessionmaker: async_sessionmaker[AsyncSession], method_id: str) -> list[str]:
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(Event.type).where(Event.resource_id == method_id).order_by(Event.sequence)
        )
        return list(rows.all())


async def test_a_good_card_is_validated(
    client: httpx.AsyncClient, auth: Auth, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    customer = new_customer()
    response = await add_card(client, auth, customer)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["type"] == "card" and body["status"] == "validated"
    assert body["card"] == {
        "brand": "visa",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": 2030,
        "funding": "credit",
        "country": "US",
    }
    assert body["next_action"] is None and body["validated_at"] is not None
    assert (await client.get(f"/v1/payment-methods/{body['id']}", headers=auth(customer))).json()[
        "status"
    ] == "validated"
    assert await event_types(sessionmaker, body["id"]) == CREATED_AND_VALIDATED


async def test_three_d_secure_then_validate(
    client: httpx.AsyncClient, auth: Auth, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    customer = new_customer()
    created = await add_card(client, auth, customer, THREE_D_SECURE)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "requires_action"
    action = body["next_action"]
    assert action["type"] == "three_d_secure" and action["method"] == "GET"
    assert action["url"].startswith("http://127.0.0.1:8000/sandbox/3ds/seti_")

    # Not done yet: still waiting, with the URL again.
    waiting = await validate(client, auth, customer, body["id"])
    assert waiting.status_code == 200, waiting.text
    assert waiting.json()["status"] == "requires_action"
    assert waiting.json()["next_action"]["url"] == action["url"]

    done = await answer_challenge(client, action["url"], "complete")
    assert done.status_code == 303
    validated = await validate(client, auth, customer, body["id"])
    assert validated.json()["status"] == "validated", validated.text
    assert validated.json()["next_action"] is None

    again = await validate(client, auth, customer, body["id"])
    assert again.status_code == 409
    assert again.json()["code"] == "payment_method_not_pending"
    assert await event_types(sessionmaker, body["id"]) == CREATED_AND_VALIDATED


async def test_a_failed_challenge_fails_the_card(
    client: httpx.AsyncClient, auth: Auth, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    customer = new_customer()
    body = (await add_card(client, auth, customer, THREE_D_SECURE)).json()
    await answer_challenge(client, body["next_action"]["url"], "fail")
    failed = await validate(client, auth, customer, body["id"])
    assert failed.json()["status"] == "failed"
    assert failed.json()["failure_code"] == "setup_intent_authentication_failure"
    assert "payment_method.failed" in await event_types(sessionmaker, body["id"])
    # A failed card does not block registering the same card again.
    assert (await add_card(client, auth, customer, THREE_D_SECURE)).status_code == 201


async def test_a_declined_card_keeps_nothing(
    client: httpx.AsyncClient,
    auth: Auth,
    count_rows: Counter,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    token = await tokenize(client, DECLINED)
    response = await register_card(
        client, auth, new_customer(), token, **{"Idempotency-Key": uuid.uuid4().hex}
    )
    assert response.status_code == 402, response.text
    assert response.json()["code"] == "card_declined"
    assert response.json()["decline_code"] == "generic_decline"
    assert await count_rows() == NOTHING
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Event)) == 0


async def test_expired_cards_are_refused(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, count_rows: Counter
) -> None:
    customer = new_customer()
    refused = await add_card(client, auth, customer, EXPIRED)
    assert refused.status_code == 422
    assert refused.json()["code"] == "card_expired"
    # Valid when tokenized (November 2026), past its month by the time it is registered.
    token = await tokenize(client, exp_month=11, exp_year=2026)
    clock.set(datetime(2026, 12, 1, tzinfo=UTC))
    late = await register_card(client, auth, customer, token)
    assert late.status_code == 422
    assert late.json()["code"] == "card_expired"
    assert await count_rows() == NOTHING


async def test_the_same_card_twice_is_a_duplicate_until_revoked(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    customer = new_customer()
    first = (await add_card(client, auth, customer)).json()
    again = await add_card(client, auth, customer)
    assert again.status_code == 409
    assert again.json()["code"] == "duplicate_payment_method"
    assert again.json()["payment_method_id"] == first["id"]
    # Another customer may hold the same card.
    assert (await add_card(client, auth, new_customer())).status_code == 201
    revoked = await client.delete(f"/v1/payment-methods/{first['id']}", headers=auth(customer))
    assert revoked.json()["status"] == "revoked"
    assert (await add_card(client, auth, customer)).status_code == 201


async def test_another_customers_card_is_not_found(client: httpx.AsyncClient, auth: Auth) -> None:
    owner, stranger = new_customer(), new_customer()
    token = await tokenize(client, THREE_D_SECURE)
    card = (await register_card(client, auth, owner, token)).json()
    for response in (
        await client.get(f"/v1/payment-methods/{card['id']}", headers=auth(stranger)),
        await validate(client, auth, stranger, card["id"]),
        await client.delete(f"/v1/payment-methods/{card['id']}", headers=auth(stranger)),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "payment_method_not_found"
    # Nor can the stranger take over the owner's token: it is attached to another customer.
    stolen = await register_card(client, auth, stranger, token)
    assert stolen.status_code == 422
    assert stolen.json()["code"] == "invalid_card_token"
    listed = await client.get("/v1/payment-methods", headers=auth(stranger))
    assert listed.json()["data"] == []


@pytest.mark.parametrize(
    ("card", "code"),
    [
        ({"token": "pm_doesnotexist"}, "invalid_card_token"),
        ({"token": "pm_x/../../v1/customers"}, "invalid_card_token"),
        ({"token": "tok_visa"}, "invalid_card_token"),
        ({}, "card_token_required"),
    ],
)
async def test_bad_tokens_write_nothing(
    client: httpx.AsyncClient, auth: Auth, count_rows: Counter, card: dict[str, Any], code: str
) -> None:
    response = await client.post(
        "/v1/payment-methods", json={"type": "card", "card": card}, headers=auth(new_customer())
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert await count_rows() == NOTHING


async def test_idempotency_key_replays_the_registration(
    client: httpx.AsyncClient, auth: Auth, count_rows: Counter
) -> None:
    customer = new_customer()
    token = await tokenize(client, THREE_D_SECURE)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = await register_card(client, auth, customer, token, **key)
    second = await register_card(client, auth, customer, token, **key)
    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert (await count_rows())["payment_methods"] == 1


@pytest.fixture
def swap_gateway(app: FastAPI) -> Iterator[Callable[[Any], Any]]:
    """Put another gateway in the running app; the real one is back before shutdown."""
    real = app.state.gateway

    def swap(gateway: Any) -> Any:
        app.state.gateway = gateway
        return gateway

    yield swap
    app.state.gateway = real


async def test_a_lost_registration_retried_reuses_the_gateway_set_up(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: Auth,
    count_rows: Counter,
    swap_gateway: Callable[[Any], Any],
) -> None:
    """The set-up's key derives from the Idempotency-Key: when our answer is lost (nothing
    committed), the retry replays the gateway's set-up instead of making a second one."""
    customer = new_customer()
    token = await tokenize(client, THREE_D_SECURE)
    key = {"Idempotency-Key": uuid.uuid4().hex}

    class LoseTheAnswer:
        def __init__(self, inner: Any) -> None:
            self.inner, self.setups = inner, []

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        async def set_up_card(self, **kwargs: Any) -> Any:
            setup = await self.inner.set_up_card(**kwargs)
            self.setups.append(setup.setup_id)
            if len(self.setups) == 1:
                raise OutcomeUnknown("the answer was lost")
            return setup

    spy = swap_gateway(LoseTheAnswer(app.state.gateway))
    lost = await register_card(client, auth, customer, token, **key)
    assert lost.status_code == 503
    assert lost.json()["code"] == "gateway_unavailable"
    assert await count_rows() == NOTHING
    retried = await register_card(client, auth, customer, token, **key)
    assert retried.status_code == 201, retried.text
    assert spy.setups[0] == spy.setups[1]


class Failing:
    def __init__(self, error: GatewayError) -> None:
        self.error = error

    async def ensure_customer(self, **_: Any) -> str:
        return "cus_gateway"

    async def set_up_card(self, **_: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (OutcomeUnknown("timed out"), 503, "gateway_unavailable"),
        (RateLimited("slow down", retry_after=2.4), 429, "gateway_rate_limited"),
        (GatewayError("bad key", code="gateway_authentication_failed"), 503, "gateway_error"),
    ],
)
async def test_gateway_trouble_keeps_nothing(
    client: httpx.AsyncClient,
    auth: Auth,
    count_rows: Counter,
    error: GatewayError,
    status: int,
    code: str,
    swap_gateway: Callable[[Any], Any],
) -> None:
    swap_gateway(Failing(error))
    response = await register_card(client, auth, new_customer(), "pm_whatever")
    assert response.status_code == status
    assert response.json()["code"] == code
    if status == 429:
        assert response.headers["Retry-After"] == "2"
    assert await count_rows() == NOTHING


async def test_a_registration_that_loses_the_race_for_the_same_card_is_a_duplicate(
    client: httpx.AsyncClient,
    auth: Auth,
    monkeypatch: pytest.MonkeyPatch,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Two requests both pass the check for a live twin; the unique index stops the second."""
    customer = new_customer()
    first = (await add_card(client, auth, customer)).json()

    async def no_twin_seen(*_: object) -> None:
        return None

    monkeypatch.setattr("app.payment_methods.repository.find_live_card", no_twin_seen)
    again = await add_card(client, auth, customer)
    assert again.status_code == 409
    assert again.json()["code"] == "duplicate_payment_method"
    async with sessionmaker() as session:
        kept = await session.scalar(
            select(func.count())
            .select_from(PaymentMethod)
            .where(PaymentMethod.customer_id == customer)
        )
    assert kept == 1 and first["status"] == "validated"
