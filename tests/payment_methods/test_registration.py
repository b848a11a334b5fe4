"""Registering a SEPA method, accepting its mandate, and what goes wrong on the way."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
import pytest

from app.core.clock import FrozenClock
from tests.payment_methods.factories import (
    IBAN_DE,
    IBAN_ES,
    ClientWith,
    Register,
    sepa_body,
)

Auth = Callable[..., dict[str, str]]
Counter = Callable[[], Awaitable[dict[str, int]]]
NOTHING = {"payment_methods": 0, "mandates": 0, "idempotency_keys": 0}


async def test_iban_check_names_the_bank(client: httpx.AsyncClient, auth: Auth) -> None:
    response = await client.post("/v1/iban-checks", json={"iban": IBAN_ES}, headers=auth("c"))
    assert response.status_code == 200
    assert response.json() == {
        "valid": True,
        "iban": "ES9121000418450200051332",
        "country_code": "ES",
        "sepa": True,
        "bic": "CAIXESBB",
        "bank_name": "CAIXABANK, S.A.",
        "reason": None,
    }
    bad = await client.post(
        "/v1/iban-checks", json={"iban": "ES91 2100 0418 4502 0005 1333"}, headers=auth("c")
    )
    assert bad.json()["valid"] is False and bad.json()["reason"] == "invalid_checksum"
    assert bad.json()["iban"] is None


async def test_iban_check_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/iban-checks", json={"iban": IBAN_ES})
    assert response.status_code == 401


async def test_iban_checks_are_rate_limited_per_caller(
    client_with: ClientWith, clock: FrozenClock, auth: Auth
) -> None:
    async with client_with(iban_check_rate_limit=3, iban_check_rate_window_seconds=60) as client:
        responses = [
            await client.post("/v1/iban-checks", json={"iban": "x"}, headers=auth("a"))
            for _ in range(4)
        ]
        assert [r.status_code for r in responses] == [200, 200, 200, 429]
        assert responses[-1].json()["code"] == "rate_limited"
        assert int(responses[-1].headers["Retry-After"]) >= 1
        other = await client.post("/v1/iban-checks", json={"iban": "x"}, headers=auth("b"))
        assert other.status_code == 200
        clock.advance(timedelta(seconds=61))
        again = await client.post("/v1/iban-checks", json={"iban": "x"}, headers=auth("a"))
        assert again.status_code == 200


async def test_registrations_are_rate_limited_per_caller_and_replays_are_free(
    client_with: ClientWith, clock: FrozenClock, auth: Auth
) -> None:
    """Registration says why an IBAN is refused (and would test cards at the gateway), so
    guesses are limited like IBAN checks; a replayed answer costs nothing, and a refusal
    is not stored as the Idempotency-Key's answer."""
    limits = {
        "payment_method_create_rate_limit": 2,
        "payment_method_create_rate_window_seconds": 60,
    }
    async with client_with(**limits) as client:

        async def post(key: str, iban: str = IBAN_ES) -> httpx.Response:
            headers = {**auth("guesser"), "Idempotency-Key": key}
            return await client.post("/v1/payment-methods", json=sepa_body(iban), headers=headers)

        guess = await post("k1", iban="ES91 2100 0418 4502 0005 1333")
        assert guess.json()["code"] == "invalid_iban"  # a refused guess counts
        first = await post("k2")
        assert first.status_code == 201
        assert (await post("k2")).headers.get("Idempotent-Replayed") == "true"
        refused = await post("k3", iban=IBAN_DE)
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        other = await client.post(
            "/v1/payment-methods", json=sepa_body(IBAN_DE), headers=auth("someone-else")
        )
        assert other.status_code == 201
        clock.advance(timedelta(seconds=61))
        assert (await post("k3", iban=IBAN_DE)).status_code == 201


async def test_register_then_accept_the_mandate(
    client: httpx.AsyncClient, auth: Auth, register: Register, accept: Register
) -> None:
    created = await register()
    assert created.status_code == 201, created.text
    method = created.json()
    assert method["id"].startswith("pm_")
    assert method["type"] == "sepa_debit" and method["status"] == "requires_action"
    assert method["sepa_debit"] == {
        "iban": "ES91 **** **** **** **** 1332",
        "last4": "1332",
        "country_code": "ES",
        "bank_code": "2100",
        "bic": "CAIXESBB",
        "bank_name": "CAIXABANK, S.A.",
        "account_holder_name": "Maria Nunez",
        "mandate_reference": method["next_action"]["mandate"]["reference"],
    }
    action = method["next_action"]
    assert action["type"] == "accept_mandate"
    assert action["method"] == "POST"
    assert action["url"] == f"/v1/payment-methods/{method['id']}/validate"
    mandate = action["mandate"]
    assert mandate["creditor"] == {
        "identifier": "ES11000B12345674",
        "name": "Autorenew Hosting S.L.",
    }
    assert mandate["scheme"] == "CORE" and mandate["type"] == "recurrent"
    assert set(mandate["texts"]) == {"es", "en"}
    assert mandate["reference"] in mandate["texts"]["es"]
    assert "ocho semanas" in mandate["texts"]["es"] and "8 weeks" in mandate["texts"]["en"]
    assert len(mandate["reference"]) <= 35

    validated = await accept(method["id"], text_sha256=mandate["text_sha256"])
    assert validated.status_code == 200, validated.text
    body = validated.json()
    assert body["status"] == "validated" and body["next_action"] is None
    assert body["validated_at"] == "2026-11-24T09:00:00Z"

    record = await client.get(f"/v1/payment-methods/{method['id']}/mandate", headers=auth("cus_1"))
    assert record.status_code == 200
    evidence = record.json()
    assert evidence["status"] == "active"
    assert evidence["signer_name"] == "María Núñez"
    assert evidence["signed_at"] == "2026-11-24T09:00:00Z"
    assert evidence["signer_ip"] == "127.0.0.1"
    assert evidence["signer_user_agent"] == "pytest-browser/1.0"
    assert evidence["text_sha256"] == mandate["text_sha256"]
    assert evidence["texts"] == mandate["texts"]
    assert evidence["sequence_type"] == "FRST"
    assert evidence["iban"] == "ES91 **** **** **** **** 1332"

    again = await accept(method["id"])
    assert again.status_code == 409 and again.json()["code"] == "payment_method_not_pending"
    # RFC 9457's `status` stays the HTTP code; the method's own status has its own member.
    assert again.json()["status"] == 409
    assert again.json()["payment_method_status"] == "validated"


@pytest.mark.parametrize(
    ("iban", "code", "reason"),
    [
        ("ES91 2100 0418 4502 0005 1333", "invalid_iban", "invalid_checksum"),
        ("ES56 2100 0418 4402 0005 1332", "invalid_iban", "invalid_national_checksum"),
        ("XX00 1234", "invalid_iban", "invalid_country"),
        ("BR15 0000 0000 0000 1093 2840 814P 2", "iban_not_sepa", None),
    ],
)
async def test_bad_ibans_are_refused_and_nothing_is_written(
    register: Register, count_rows: Counter, iban: str, code: str, reason: str | None
) -> None:
    response = await register(iban=iban, **{"Idempotency-Key": "k-bad"})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == code
    if reason:
        assert problem["reason"] == reason
    assert problem["errors"][0]["loc"] == ["body", "sepa_debit", "iban"]
    assert iban.replace(" ", "") not in response.text
    assert await count_rows() == NOTHING


@pytest.mark.parametrize(
    ("body", "loc", "error_type"),
    [
        (
            {"type": "sepa_debit", "sepa_debit": {"iban": IBAN_ES}},
            ["body", "sepa_debit", "account_holder_name"],
            "missing",
        ),
        (
            {"type": "card", "card": {"token": "pm_card_visa"}, "note": "x"},
            ["body", "note"],
            "extra_forbidden",
        ),
        (
            {"type": "card", "card": {"token": "pm_card_visa", "exp_month": 13}},
            ["body", "card", "exp_month"],
            "less_than_equal",
        ),
        ({"type": "paypal", "paypal": {}}, ["body", "type"], "union_tag_invalid"),
        # A lone surrogate (valid JSON, not valid Unicode) once crashed the error report.
        (
            {"type": "\ud800", "card": {"token": "pm_card_visa"}},
            ["body", "type"],
            "union_tag_invalid",
        ),
        ({"type": "sepa_debit\ud800"}, ["body", "type"], "union_tag_invalid"),
        ({"sepa_debit": {"iban": IBAN_ES}}, ["body", "type"], "missing"),
    ],
)
async def test_errors_in_either_body_point_at_the_field_sent(
    client: httpx.AsyncClient,
    auth: Auth,
    count_rows: Counter,
    body: dict[str, object],
    loc: list[str],
    error_type: str,
) -> None:
    # Pydantic would put the union's tag into each location ("body", "card", "note"),
    # naming places that are not in the request.
    # json.dumps escapes to ASCII, so a lone surrogate travels as the JSON text `\ud800`.
    sent = json.dumps(body).encode()
    headers = auth("cus_1") | {"Content-Type": "application/json"}
    response = await client.post("/v1/payment-methods", content=sent, headers=headers)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert [(error["loc"], error["type"]) for error in problem["errors"]] == [(loc, error_type)]
    assert await count_rows() == NOTHING


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("  José   Müller-Øster & Cía. ", "Jose Muller-Oster + Cia."),
        ("Ñandú Çelik Straße", "Nandu Celik Strasse"),
    ],
)
async def test_holder_names_are_converted_to_the_sepa_set(
    register: Register, name: str, stored: str
) -> None:
    response = await register(name=name)
    assert response.status_code == 201
    assert response.json()["sepa_debit"]["account_holder_name"] == stored


@pytest.mark.parametrize("name", ["", "   ", "王小明", "A" * 71, "Name 🙂"])
async def test_unusable_holder_names_are_refused(
    register: Register, count_rows: Counter, name: str
) -> None:
    response = await register(name=name)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_account_holder_name"
    assert await count_rows() == NOTHING


async def test_malformed_bodies_write_nothing(
    client: httpx.AsyncClient, auth: Auth, count_rows: Counter
) -> None:
    for body in (
        {"type": "sepa_debit"},
        {"type": "paypal", "paypal": {}},
        {"type": "sepa_debit", "sepa_debit": {"iban": IBAN_ES}},
        {**sepa_body(), "extra": 1},
    ):
        response = await client.post(
            "/v1/payment-methods", json=body, headers={**auth("cus_1"), "Idempotency-Key": "m"}
        )
        assert response.status_code == 422, body
        assert response.json()["code"] == "validation_error"
    card = await client.post(
        "/v1/payment-methods", json={"type": "card", "card": {"token": "pm_x"}}, headers=auth("c")
    )
    assert card.status_code == 422
    assert card.json()["code"] == "invalid_card_token"
    assert await count_rows() == NOTHING


async def test_the_same_account_twice_is_a_duplicate_until_revoked(
    client: httpx.AsyncClient, auth: Auth, register: Register
) -> None:
    first = (await register()).json()
    again = await register(iban="es9121000418450200051332")
    assert again.status_code == 409
    assert again.json()["code"] == "duplicate_payment_method"
    assert again.json()["payment_method_id"] == first["id"]
    # Another customer may hold the same account (a shared family account).
    assert (await register(customer="cus_2")).status_code == 201
    deleted = await client.delete(f"/v1/payment-methods/{first['id']}", headers=auth("cus_1"))
    assert deleted.status_code == 200
    assert (await register()).status_code == 201


async def test_mandate_acceptance_rules(
    client: httpx.AsyncClient, auth: Auth, register: Register, accept: Register
) -> None:
    method_id = (await register()).json()["id"]
    url = f"/v1/payment-methods/{method_id}/validate"
    declined = await client.post(
        url, json={"mandate": {"accepted": False, "signer_name": "M"}}, headers=auth("cus_1")
    )
    assert declined.status_code == 422 and declined.json()["code"] == "mandate_not_accepted"
    missing = await client.post(url, json={}, headers=auth("cus_1"))
    assert missing.json()["code"] == "mandate_acceptance_required"
    stale = await accept(method_id, text_sha256="0" * 64)
    assert stale.status_code == 409 and stale.json()["code"] == "mandate_text_changed"
    blank = await accept(method_id, signer_name="   ")
    assert blank.status_code == 422
    current = await client.get(f"/v1/payment-methods/{method_id}", headers=auth("cus_1"))
    assert current.json()["status"] == "requires_action"
    assert (await accept(method_id)).status_code == 200


async def test_revoking_keeps_the_record_and_the_mandate(
    client: httpx.AsyncClient, auth: Auth, register: Register, accept: Register
) -> None:
    method_id = (await register()).json()["id"]
    await accept(method_id)
    await client.post(f"/v1/payment-methods/{method_id}/default", headers=auth("cus_1"))
    revoked = await client.delete(f"/v1/payment-methods/{method_id}", headers=auth("cus_1"))
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked" and revoked.json()["default"] is False
    assert revoked.json()["revoked_at"] == "2026-11-24T09:00:00Z"
    mandate = await client.get(f"/v1/payment-methods/{method_id}/mandate", headers=auth("cus_1"))
    assert mandate.json()["status"] == "revoked" and mandate.json()["signer_name"]
    repeat = await client.delete(f"/v1/payment-methods/{method_id}", headers=auth("cus_1"))
    assert repeat.status_code == 200 and repeat.json()["status"] == "revoked"
    default = await client.post(f"/v1/payment-methods/{method_id}/default", headers=auth("cus_1"))
    assert default.status_code == 409


async def test_one_default_method_per_customer(
    client: httpx.AsyncClient, auth: Auth, register: Register, accept: Register
) -> None:
    first = (await register()).json()["id"]
    second = (await register(iban=IBAN_DE)).json()["id"]
    pending = await client.post(f"/v1/payment-methods/{first}/default", headers=auth("cus_1"))
    assert pending.status_code == 409 and pending.json()["code"] == "payment_method_not_validated"
    await accept(first)
    await accept(second)
    for method_id in (first, second, second):
        response = await client.post(
            f"/v1/payment-methods/{method_id}/default", headers=auth("cus_1")
        )
        assert response.status_code == 200 and response.json()["default"] is True
    listed = (await client.get("/v1/payment-methods", headers=auth("cus_1"))).json()["data"]
    assert {m["id"]: m["default"] for m in listed} == {first: False, second: True}
