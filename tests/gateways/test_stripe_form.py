"""Stripe's bracketed form encoding, both ways."""

from __future__ import annotations

import pytest

from app.gateways.stripe_form import FormError, decode_form, encode_form, form_pairs


def test_nested_params_become_bracketed_keys() -> None:
    pairs = form_pairs(
        {
            "amount": 1299,
            "confirm": True,
            "off_session": False,
            "metadata": {"renewal_id": "ren_1", "empty": None},
            "card": {"number": "4242424242424242"},
            "payment_method_types": ["card"],
        }
    )
    assert pairs == [
        ("amount", "1299"),
        ("confirm", "true"),
        ("off_session", "false"),
        ("metadata[renewal_id]", "ren_1"),
        ("card[number]", "4242424242424242"),
        ("payment_method_types[]", "card"),
    ]


def test_decode_reverses_encode() -> None:
    params = {
        "metadata": {"a": "1", "b": "x y&z"},
        "expand": ["payment_method", "customer"],
        "customer": "cus_1",
    }
    assert decode_form(encode_form(params)) == params


def test_decode_reads_the_official_sdks_indexed_lists() -> None:
    body = "expand[0]=payment_method&expand[1]=customer&payment_method_types[0]=card&confirm=true"
    assert decode_form(body) == {
        "expand": ["payment_method", "customer"],
        "payment_method_types": ["card"],
        "confirm": "true",
    }


@pytest.mark.parametrize(
    "body",
    ["a=1&a=2", "a=1&a[b]=2", "a[b]=1&a[]=2", "[x]=1", "a[b=1", "a[1]=x", "a[0]=x&a[b]=y"],
)
def test_malformed_or_conflicting_forms_are_refused(body: str) -> None:
    with pytest.raises(FormError):
        decode_form(body)
