"""Importing cards stored at the gateway: verified there, details from there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.crypto import cipher_from_settings
from app.core.settings import Settings
from app.imports.lines import LineLimits, chunks_of, read_lines
from app.imports.schemas import ImportReport
from app.imports.service import ImportRun, run_import
from tests.imports.helpers import (
    Auth,
    card_line,
    counts,
    events_of,
    ndjson,
    post_import,
    provision,
    stored_card,
)
from tests.payment_methods.card_flows import MASTERCARD, SANDBOX_KEY, tokenize
from tests.renewals.fake_gateway import FakeGateway


async def test_a_card_is_verified_at_the_gateway_and_described_by_it(
    client: httpx.AsyncClient, auth: Auth, session: AsyncSession
) -> None:
    gateway_customer, payment_method = await stored_card(client, MASTERCARD, exp_year=2031)
    response = await post_import(
        client, auth, ndjson(card_line("cus_1", gateway_customer, payment_method))
    )
    assert response.status_code == 200, response.text
    assert response.json()["imported_by_type"] == {"sepa_debit": 0, "card": 1}
    [method] = (await client.get("/v1/payment-methods", headers=auth("cus_1"))).json()["data"]
    assert method["status"] == "validated"
    assert method["card"]["brand"] == "mastercard"
    assert method["card"]["last4"] == "4444"
    assert (method["card"]["exp_month"], method["card"]["exp_year"]) == (12, 2031)
    [created] = await events_of(session, "payment_method.created")
    [validated] = await events_of(session, "payment_method.validated")
    assert created.data["imported"] is True and validated.data["imported"] is True
    assert validated.data["card"]["last4"] == "4444"


async def test_cards_the_gateway_does_not_vouch_for_are_refused(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    mine, card = await stored_card(client)
    theirs, _ = await stored_card(client)
    loose = await tokenize(client)  # tokenized, never attached to a customer
    # Valid when stored, past its month when imported.
    expiring_customer, expiring = await stored_card(client, exp_month=11, exp_year=2026)
    clock.set(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    body = ndjson(
        card_line("cus_1", mine, "pm_doesnotexist"),
        card_line("cus_1", theirs, card),
        card_line("cus_1", mine, loose),
        card_line("cus_1", expiring_customer, expiring),
        card_line("cus_1", mine, "pm_1/../../customers"),
    )
    response = await post_import(client, auth, body)
    assert response.status_code == 422
    refusals = response.json()["report"]["refusals"]
    assert [(r["line"], r["code"]) for r in refusals] == [
        (1, "card_not_found"),
        (2, "card_customer_mismatch"),
        (3, "card_not_attached"),
        (4, "card_expired"),
        (5, "invalid_record"),
    ]
    assert "11/2026" in refusals[3]["detail"]
    assert (await counts(sessionmaker))["payment_methods"] == 0


async def test_a_dry_run_only_reads_the_gateway(
    client: httpx.AsyncClient, auth: Auth, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    gateway_customer, payment_method = await stored_card(client)
    summary = await client.get("/sandbox/_ledger/summary", headers=SANDBOX_KEY)
    before = await counts(sessionmaker)
    line = card_line("cus_1", gateway_customer, payment_method)
    response = await post_import(client, auth, ndjson(line), dry_run="true")
    assert response.json()["imported"] == 1 and response.json()["committed"] is False
    assert await counts(sessionmaker) == before
    after = await client.get("/sandbox/_ledger/summary", headers=SANDBOX_KEY)
    assert after.json() == summary.json()


async def test_a_card_expiring_before_its_services_renew_is_refused(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock
) -> None:
    gateway_customer, payment_method = await stored_card(client, exp_month=1, exp_year=2027)
    await provision(client, auth, "host-1", "cus_1", clock.now() + timedelta(days=200))
    line = card_line("cus_1", gateway_customer, payment_method, services=["host-1"])
    response = await post_import(client, auth, ndjson(line))
    [refusal] = response.json()["report"]["refusals"]
    assert refusal["code"] == "card_expires_before_renewal"


# --- the service layer, with a scripted gateway ----------------------------------------


async def import_lines(
    body: bytes,
    gateway: FakeGateway,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FrozenClock,
    **options: bool,
) -> ImportReport:
    run = ImportRun(
        sessionmaker=sessionmaker,
        gateway=gateway,
        cipher=cipher_from_settings(settings),
        settings=settings,
        now=clock.now(),
        operator="test",
        **options,
    )
    lines = read_lines(chunks_of([body]), LineLimits(max_line_bytes=4096))
    return await run_import(lines, run)


@pytest.fixture
def gateway() -> FakeGateway:
    fake = FakeGateway()
    fake.store_card("pm_ok", "gcus_1")
    fake.store_card("pm_sepa", "gcus_1", method_type="sepa_debit")
    fake.unreachable.add("pm_down")
    return fake


async def test_what_the_gateway_says_decides(
    gateway: FakeGateway,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FrozenClock,
) -> None:
    body = ndjson(
        card_line("cus_1", "gcus_1", "pm_ok"),
        card_line("cus_1", "gcus_1", "pm_sepa"),
        card_line("cus_1", "gcus_1", "pm_down"),
    )
    report = await import_lines(body, gateway, sessionmaker, settings, clock, partial=True)
    assert report.imported == 1
    assert [(r.line, r.code) for r in report.refusals] == [
        (2, "not_a_card"),
        (3, "gateway_unavailable"),
    ]
    # Only reads: nothing at the gateway was asked to change.
    assert sorted(gateway.calls) == ["get:pm_down", "get:pm_ok", "get:pm_sepa"]


async def test_a_second_run_does_not_ask_the_gateway_again(
    gateway: FakeGateway,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FrozenClock,
) -> None:
    body = ndjson(card_line("cus_1", "gcus_1", "pm_ok"))
    first = await import_lines(body, gateway, sessionmaker, settings, clock)
    assert first.imported == 1
    gateway.calls.clear()
    second = await import_lines(body, gateway, sessionmaker, settings, clock)
    assert (second.imported, second.already_present) == (0, 1)
    assert gateway.calls == []
    other = await import_lines(
        ndjson(card_line("cus_2", "gcus_1", "pm_ok")), gateway, sessionmaker, settings, clock
    )
    assert [(r.line, r.code) for r in other.refusals] == [(1, "card_in_use")]


async def test_the_same_card_under_another_gateway_id_is_a_duplicate(
    gateway: FakeGateway,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FrozenClock,
) -> None:
    gateway.store_card("pm_again", "gcus_1")
    # The same card number twice at the gateway: one fingerprint.
    stored = gateway.stored["pm_again"]
    assert stored.card is not None
    gateway.stored["pm_again"] = type(stored)(
        "pm_again",
        "card",
        "gcus_1",
        type(stored.card)(**{**vars(stored.card), "fingerprint": "fp_pm_ok"}),
    )
    body = ndjson(card_line("cus_1", "gcus_1", "pm_ok"), card_line("cus_1", "gcus_1", "pm_again"))
    report = await import_lines(body, gateway, sessionmaker, settings, clock, partial=True)
    assert report.imported == 1
    assert [(r.line, r.code) for r in report.refusals] == [(2, "duplicate_payment_method")]
