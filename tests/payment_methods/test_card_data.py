"""Raw card data: refused by default; with AUTORENEW_ACCEPT_RAW_CARD_DATA checked, tokenized
and forgotten. And the proof: no number or CVC in any table, log line or answer."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.database import Base
from tests.payment_methods.card_flows import (
    CVC,
    DECLINED,
    EXPIRED,
    INSUFFICIENT_FUNDS,
    MASTERCARD,
    THREE_D_SECURE,
    THREE_D_SECURE_ON_SETUP,
    VISA,
    Auth,
    add_card,
    new_customer,
    validate,
)
from tests.payment_methods.factories import ClientWith

Counter = Callable[[], Awaitable[dict[str, int]]]
NOTHING = {"payment_methods": 0, "mandates": 0, "idempotency_keys": 0}
BAD_LUHN = "4242424242424241"
# Every test number the card tests use.
USED_NUMBERS = (
    VISA,
    MASTERCARD,
    DECLINED,
    EXPIRED,
    THREE_D_SECURE,
    THREE_D_SECURE_ON_SETUP,
    INSUFFICIENT_FUNDS,
    BAD_LUHN,
)


def raw(number: str = VISA, exp_month: Any = 12, exp_year: Any = 2030, **extra: Any) -> Any:
    card = {"number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": CVC, **extra}
    return {"type": "card", "card": card}


def assert_no_card_data(text: str) -> None:
    for number in USED_NUMBERS:
        assert number not in text, number
        assert number[:-4] not in text  # not even the digits before the last four
    # As a value of its own: four digits do turn up inside random ids and digests.
    assert not re.search(rf"(?<![0-9a-z]){CVC}(?![0-9a-z])", text)


@pytest.mark.parametrize(
    "card",
    [
        raw()["card"],
        {"token": "pm_card_visa", "cvc": CVC},
        {"number": VISA},
        # Wrong types still get a 422 without the input echoed back.
        {"number": int(VISA), "cvc": int(CVC)},
        {"number": VISA + "0" * 40},
    ],
)
async def test_raw_card_data_is_refused_by_default(
    client: httpx.AsyncClient, auth: Auth, count_rows: Counter, card: dict[str, Any]
) -> None:
    response = await client.post(
        "/v1/payment-methods", json={"type": "card", "card": card}, headers=auth(new_customer())
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] in ("raw_card_data_not_accepted", "validation_error")
    if isinstance(card.get("number"), str) and len(card["number"]) <= 32:
        assert response.json()["code"] == "raw_card_data_not_accepted"
    assert_no_card_data(response.text)
    assert await count_rows() == NOTHING


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (raw(BAD_LUHN), 422, "invalid_card_number"),
        (raw("4242 4242 4242 4241"), 422, "invalid_card_number"),
        (raw("42424242"), 422, "invalid_card_number"),
        (raw(exp_month=10, exp_year=2026), 422, "card_expired"),
        (raw(exp_month=13), 422, "validation_error"),
        (raw(exp_year="twenty"), 422, "validation_error"),
        (raw(exp_year=None), 422, "card_data_incomplete"),
        (raw(token="pm_card_visa"), 422, "ambiguous_card"),
        (raw(DECLINED), 402, "card_declined"),
        (raw(EXPIRED), 422, "card_expired"),
        (raw(VISA, cvc="12"), 422, "invalid_cvc"),
    ],
)
async def test_accepted_raw_card_data_is_checked_first(
    client_with: ClientWith,
    auth: Auth,
    count_rows: Counter,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    async with client_with(accept_raw_card_data=True) as client:
        response = await client.post("/v1/payment-methods", json=body, headers=auth(new_customer()))
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert_no_card_data(response.text)
    assert await count_rows() == NOTHING


async def test_accepted_raw_card_data_is_tokenized(client_with: ClientWith, auth: Auth) -> None:
    customer = new_customer()
    async with client_with(accept_raw_card_data=True) as client:
        response = await client.post(
            "/v1/payment-methods", json=raw("4242 4242 4242 4242"), headers=auth(customer)
        )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "validated"
    assert response.json()["card"]["last4"] == "4242"


async def test_no_card_number_or_cvc_anywhere(
    client_with: ClientWith,
    auth: Auth,
    sessionmaker: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every way a card comes in (token, raw, declined, expired, 3-D Secure, bad Luhn, with an
    Idempotency-Key whose answer is stored), then every table and every log line is read."""
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []
    async with client_with(accept_raw_card_data=True) as client:
        for index, number in enumerate(USED_NUMBERS):
            customer = new_customer()
            headers = {**auth(customer), "Idempotency-Key": f"scan-{customer}"}
            raw_answer = await client.post("/v1/payment-methods", json=raw(number), headers=headers)
            if number == BAD_LUHN:  # the gateway's fields refuse it before any token exists
                answers.append(raw_answer.text)
                continue
            token_answer = await add_card(client, auth, customer, number)
            answers += [raw_answer.text, token_answer.text]
            if index == 0:
                answers.append((await validate(client, auth, customer, "pm_nope")).text)
            for answer in (raw_answer, token_answer):
                if answer.json().get("status") == "requires_action":
                    answers.append(
                        (await validate(client, auth, customer, answer.json()["id"])).text
                    )

    rows: list[str] = []
    async with sessionmaker() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                rows.append(json.dumps([str(value) for value in row]))
    assert any("4242" in row for row in rows)  # the last four are kept, as allowed
    assert "gateway request" in caplog.text  # the adapter logged, without bodies
    assert_no_card_data("\n".join(rows))
    assert_no_card_data(caplog.text)
    assert_no_card_data("\n".join(answers))
