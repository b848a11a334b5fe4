"""Collection rules: business days, FRST/RCUR, lapsed mandates, retries, rejects, the CLI."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.cli import main, sepa_export
from app.core.clock import FrozenClock
from app.core.database import create_sessionmaker
from app.core.settings import Settings, get_settings
from app.payment_methods.models import Mandate, PaymentMethod
from app.renewals.engine.sweep import RenewalEngine
from app.renewals.models import Renewal
from app.sepa.collections import run_cycle
from app.sepa.pain008 import Pain008Schema, validate_pain008
from tests.payment_methods.factories import IBAN_DE
from tests.renewals.fake_gateway import FakeGateway
from tests.sepa.flow import (
    Auth,
    collected,
    collections,
    create_batch,
    events_of,
    fresh,
    paid_service,
    post_returns,
    returns_csv,
    sepa_customer,
    submit,
    sweep,
)


@pytest.mark.parametrize(
    ("today", "collection_day", "deadline"),
    [
        # 25 and 26 December are closed; 26 December 2026 is a Saturday anyway.
        (date(2026, 12, 11), date(2026, 12, 28), date(2026, 12, 24)),
        # Good Friday 26 March and Easter Monday 29 March 2027.
        (date(2027, 3, 12), date(2027, 3, 30), date(2027, 3, 25)),
        # 1 May 2026 is a Friday.
        (date(2026, 4, 17), date(2026, 5, 4), date(2026, 4, 30)),
    ],
)
async def test_collection_dates_are_target2_business_days(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    today: date,
    collection_day: date,
    deadline: date,
) -> None:
    clock.set(datetime.combine(today, datetime.min.time(), tzinfo=UTC) + timedelta(hours=9))
    await sepa_customer(client, auth, clock.now())
    await sweep(client, auth)
    [collection] = await collections(client, auth)
    assert collection["collection_date"] == collection_day.isoformat()
    assert collection["submission_deadline"] == deadline.isoformat()


async def test_first_then_recurring_under_one_mandate(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    setup = await collected(client, auth, clock)
    # A second service on the same method is planned after the first collection went out.
    expires = clock.now() + timedelta(days=21)
    await paid_service(client, auth, expires, setup["method_id"], service_id="dom-2", amount=500)
    await sweep(client, auth)
    [second] = await collections(client, auth, status="pending")
    assert second["sequence_type"] == "RCUR"
    assert second["amount"] == {"amount": 500, "currency": "EUR"}


async def test_first_as_recurring_when_configured(
    make_app: Callable[..., FastAPI], auth: Auth, clock: FrozenClock
) -> None:
    async with _client(make_app, sepa_first_as_recurring=True) as client:
        await sepa_customer(client, auth, clock.now())
        await sweep(client, auth)
        [collection] = await collections(client, auth)
    assert collection["sequence_type"] == "RCUR"


def _client(make_app: Callable[..., FastAPI], **overrides: Any) -> Any:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def opened() -> AsyncIterator[httpx.AsyncClient]:
        app = make_app(**overrides)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client

    return opened()


async def test_a_lapsed_mandate_needs_a_new_acceptance(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    setup = await sepa_customer(client, auth, clock.now())
    await session.execute(
        update(Mandate)
        .where(Mandate.payment_method_id == setup["method_id"])
        .values(signed_at=clock.now() - timedelta(days=37 * 31))
    )
    await session.commit()
    await sweep(client, auth)
    assert await collections(client, auth) == []
    [method] = await fresh(session, PaymentMethod, id=setup["method_id"])
    assert (method.status, method.failure_code) == ("failed", "mandate_lapsed")
    assert len(await events_of(session, "payment_method.failed")) == 1
    renewal = (await session.execute(select(Renewal))).scalar_one()
    assert (renewal.status, renewal.failure_code) == ("scheduled", "mandate_lapsed")


async def _returned_am04(client: httpx.AsyncClient, auth: Auth, clock: FrozenClock) -> None:
    """Collected, returned for insufficient funds two days later, swept on the retry day."""
    await sepa_customer(client, auth, clock.now())
    await sweep(client, auth)
    [collection] = await collections(client, auth)
    day = date.fromisoformat(collection["collection_date"])
    deadline = date.fromisoformat(collection["submission_deadline"])
    clock.set(datetime.combine(deadline, datetime.min.time(), tzinfo=UTC) + timedelta(hours=10))
    batch = await create_batch(client, auth, day)
    await submit(client, auth, batch.json()["id"])
    clock.set(datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(days=2, hours=8))
    body = returns_csv((collection["end_to_end_id"], "AM04", 1299, day + timedelta(days=1)))
    assert (await post_returns(client, auth, body)).status_code == 201
    clock.advance(timedelta(days=1, hours=1))  # the first dunning step is one day
    await sweep(client, auth)


async def test_a_retry_gets_a_new_prenotified_collection_when_a_date_fits(
    make_app: Callable[..., FastAPI], auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    # The mandate may agree a shorter pre-notification: then a retry fits before expiry.
    async with _client(make_app, sepa_prenotification_days=2) as client:
        await _returned_am04(client, auth, clock)
        retry = await collections(client, auth, status="pending")
    # First collection 26 November (2 days' notice); returned; retried 29 November (a
    # Sunday): the next business day after one business day of submission lead.
    assert [(c["collection_date"], c["sequence_type"]) for c in retry] == [("2026-12-01", "RCUR")]
    assert retry[0]["end_to_end_id"].endswith("-2")
    assert len(await events_of(session, "renewal.upcoming")) == 2


async def test_a_retry_that_cannot_be_prenotified_in_time_fails(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    await _returned_am04(client, auth, clock)
    [renewal] = await fresh(session, Renewal)
    assert (renewal.status, renewal.failure_code) == ("failed", "no_collection_date")


def _pain002_group_reject(message_id: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10">
  <CstmrPmtStsRpt>
    <GrpHdr><MsgId>STS-1</MsgId><CreDtTm>2026-12-07T07:30:00+01:00</CreDtTm></GrpHdr>
    <OrgnlGrpInfAndSts>
      <OrgnlMsgId>{message_id}</OrgnlMsgId>
      <OrgnlMsgNmId>pain.008.001.08</OrgnlMsgNmId>
      <GrpSts>RJCT</GrpSts>
      <StsRsnInf><Rsn><Cd>AC01</Cd></Rsn></StsRsnInf>
    </OrgnlGrpInfAndSts>
  </CstmrPmtStsRpt>
</Document>""".encode()


async def test_a_rejected_file_rejects_its_collections_and_frst_stays_first(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    setup = await collected(client, auth, clock)
    batch = setup["batch"]
    imported = await post_returns(
        client, auth, _pain002_group_reject(batch["message_id"]), "application/xml"
    )
    assert imported.status_code == 201, imported.text
    assert imported.json()["applied"] == 1
    [row] = await collections(client, auth)
    assert (row["status"], row["return_reason_code"]) == ("returned", "AC01")
    [mandate] = await fresh(session, Mandate, payment_method_id=setup["method_id"])
    # Rejected before settlement: the mandate was never used, so FRST again.
    assert mandate.sequence_type == "FRST"
    assert mandate.status == "revoked"  # AC01: the account is wrong


async def test_cli_export_writes_the_batch_file(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    await sepa_customer(client, auth, clock.now(), iban=IBAN_DE)
    await sweep(client, auth)
    clock.set(datetime(2026, 12, 4, 10, 0, tzinfo=UTC))
    monkeypatch.setenv("AUTORENEW_DATABASE_URL", database_url)
    get_settings.cache_clear()
    out = tmp_path / "batch.xml"
    args = argparse.Namespace(date=date(2026, 12, 8), out=str(out), schema="pain.008.001.02")
    batch_id, content = await sepa_export(args, clock)
    assert batch_id.startswith("sepab_")
    assert validate_pain008(content, Pain008Schema.V02) == []
    get_settings.cache_clear()


def test_cli_export_reports_a_refused_date(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTORENEW_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    get_settings.cache_clear()
    assert main(["migrate"]) == 0
    out = tmp_path / "x.xml"
    assert main(["sepa", "export", "--date", "2026-12-12", "--out", str(out)]) == 1
    assert "collection_date_not_business_day" in capsys.readouterr().err
    assert not out.exists()
    get_settings.cache_clear()


async def test_a_collection_no_longer_due_is_left_out_of_the_file(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    await sepa_customer(client, auth, clock.now())
    await sepa_customer(client, auth, clock.now(), customer="cus_2", service_id="b", iban=IBAN_DE)
    await sweep(client, auth)
    assert len(await collections(client, auth, status="pending")) == 2
    cancelled = await client.delete("/v1/admin/services/b", headers=auth("ops", admin=True))
    assert cancelled.status_code in (200, 204)
    clock.set(datetime(2026, 12, 4, 10, 0, tzinfo=UTC))
    batch = await create_batch(client, auth, date(2026, 12, 8))
    assert batch.status_code == 201
    assert [c["service_id"] for c in batch.json()["collections"]] == ["host-1"]
    [left_out] = await collections(client, auth, status="canceled")
    assert (left_out["service_id"], left_out["cancel_reason"]) == ("b", "service_not_renewing")
    await sweep(client, auth)
    [renewal] = await fresh(session, Renewal, service_id="b")
    assert (renewal.status, renewal.failure_code) == ("canceled", "service_cancelled")
    assert len(await events_of(session, "renewal.canceled")) == 1


async def test_creating_a_batch_twice_with_one_idempotency_key_makes_one(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock
) -> None:
    await sepa_customer(client, auth, clock.now())
    await sweep(client, auth)
    clock.set(datetime(2026, 12, 4, 10, 0, tzinfo=UTC))
    headers = {**auth("ops", admin=True), "Idempotency-Key": "batch-2026-12-08"}
    body = {"collection_date": "2026-12-08"}
    first = await client.post("/v1/admin/sepa/batches", json=body, headers=headers)
    second = await client.post("/v1/admin/sepa/batches", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    listed = await client.get("/v1/admin/sepa/batches", headers=auth("ops", admin=True))
    assert len(listed.json()["data"]) == 1


async def test_a_camt054_notification_is_matched_by_end_to_end_id(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    setup = await collected(client, auth, clock)
    [collection] = await collections(client, auth)
    sample = (Path(__file__).parent / "samples" / "camt.054.001.08.xml").read_bytes()
    body = sample.replace(b"ren-0301", collection["end_to_end_id"].encode())
    # A return must be of the collection's amount (the sample's first entry is 49.00).
    cents = collection["amount"]["amount"]
    body = body.replace(b">49.00<", f">{cents // 100}.{cents % 100:02d}<".encode())
    imported = await post_returns(client, auth, body, "application/xml")
    assert imported.status_code == 201, imported.text
    result = imported.json()
    assert (result["format"], result["applied"], result["unmatched"]) == ("camt.054.001.08", 1, 1)
    [method] = await fresh(session, PaymentMethod, id=setup["method_id"])
    assert (method.status, method.failure_code) == ("failed", "sepa_return_ms02")


async def test_concurrent_cycles_prenotify_once(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    backend: str,
    engine: AsyncEngine,
) -> None:
    await sepa_customer(client, auth, clock.now())
    renewer = RenewalEngine(sessionmaker, FakeGateway(), clock, settings)
    await renewer.plan()
    # On PostgreSQL four "replicas" (sessionmakers of their own) race on row locks; SQLite
    # runs one replica, whose passes take turns.
    makers = (
        [create_sessionmaker(engine) for _ in range(4)]
        if backend == "postgresql"
        else [sessionmaker] * 4
    )
    await asyncio.gather(*(run_cycle(maker, clock, settings) for maker in makers))
    assert len(await collections(client, auth)) == 1
    assert len(await events_of(session, "renewal.upcoming")) == 1
