"""The sandbox's own reader of Stripe's form encoding, fed what the official SDK writes."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from stripe._encode import _api_encode

from app.sandbox.errors import StripeError
from app.sandbox.form import FormError, decode_form
from app.sandbox.params import expands, flag, listed, metadata, off_session


def sdk_form(params: dict[str, Any]) -> str:
    """The body stripe-python sends for these parameters (its own encoder, not ours)."""
    return urlencode(list(_api_encode(params, "V1")))


def test_what_the_sdk_writes_reads_back() -> None:
    params = {
        "amount": 1299,
        "currency": "eur",
        "confirm": True,
        "off_session": False,
        "expand": ["payment_method", "latest_charge"],
        "metadata": {"renewal_id": "ren_1", "0": "a key that looks like an index"},
        "card": {"number": "4242424242424242", "networks": {"preferred": "visa"}},
        "items": [{"price": "price_1", "quantity": 2}],
    }
    body = sdk_form(params)
    assert "expand%5B0%5D=payment_method" in body and "confirm=true" in body
    decoded = decode_form(body)
    assert decoded["amount"] == "1299"
    assert flag(decoded, "confirm") is True and flag(decoded, "off_session") is False
    assert listed(decoded, "expand") == ["payment_method", "latest_charge"]
    assert expands(decoded, "latest_charge")
    # Metadata stays a dict, even with a key made of digits.
    assert metadata(decoded) == {"renewal_id": "ren_1", "0": "a key that looks like an index"}
    assert decoded["card"]["networks"] == {"preferred": "visa"}
    assert listed(decoded, "items") == [{"price": "price_1", "quantity": "2"}]


def test_bracket_lists_and_python_booleans() -> None:
    decoded = decode_form("expand[]=a&expand[]=b&confirm=True&livemode=False")
    assert listed(decoded, "expand") == ["a", "b"]
    assert flag(decoded, "confirm") is True and flag(decoded, "livemode") is False
    assert flag(decoded, "absent") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("false", False), ("one_off", True), ("recurring", True), (None, False)],
)
def test_off_session_takes_stripes_words(value: str | None, expected: bool) -> None:
    assert off_session({} if value is None else {"off_session": value}) is expected


@pytest.mark.parametrize("value", ["yes", "1", "TRUE"])
def test_other_booleans_are_stripes_400(value: str) -> None:
    with pytest.raises(StripeError) as caught:
        flag({"confirm": value}, "confirm")
    assert (caught.value.status, caught.value.body["param"]) == (400, "confirm")


@pytest.mark.parametrize(
    "body",
    [
        "expand[]=a&expand[0]=b",  # a list and a dict at once
        "card=x&card[number]=1",  # a value and a dict at once
        "name=a&name=b",  # repeated
        "a[b]c=1",  # malformed
        "]=1",
        "a[b][c][d][e][f]=1",  # deeper than any Stripe parameter
    ],
)
def test_malformed_forms_are_refused(body: str) -> None:
    with pytest.raises(FormError):
        decode_form(body)


@pytest.mark.parametrize("value", [{"1": "x"}, {"0": "a", "2": "b"}, "text"])
def test_lists_must_be_lists(value: Any) -> None:
    with pytest.raises(StripeError):
        listed({"expand": value}, "expand")


async def test_a_malformed_body_is_a_400_that_changes_nothing(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/customers",
        content="metadata=x&metadata[a]=b",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Idempotency-Key": "bad"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert (await api.get("/_ledger/summary")).json()["customers"] == 0
