"""The whole SEPA flow over HTTP: sweep → pre-notification → batch → file → submit → returns."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.payment_methods.models import Mandate, PaymentMethod
from app.renewals.models import Renewal, RenewalAttempt
from app.sepa.models import SepaBatch, SepaCollection, SepaReturn, SepaReturnFile
from app.sepa.pain008 import Pain008Schema, validate_pain008
from app.services.models import Service
from tests.payment_methods.factories import IBAN_ES_ELECTRONIC
from tests.sepa.flow import (
    Auth,
    collected,
    collections,
    create_batch,
    events_of,
    fresh,
    post_returns,
    returns_csv,
    sepa_customer,
    submit,
    sweep,
)

EXPIRES = datetime(2026, 12, 15, 9, 0, tzinfo=UTC)  # T0 + 21 days
COLLECTION_DAY = date(2026, 12, 8)  # T0 + 14 days, a Tuesday


async def test_sweep_prenotifies_then_batch_file_submit_extends(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    session: AsyncSession,
) -> None:
    setup = await sepa_customer(client, auth, clock.now())
    assert setup["service"]["renewal_readiness"] == "ok"

    await sweep(client, auth)
    await sweep(client, auth)  # a second pass changes nothing
    [collection] = await collections(client, auth)
    assert collection["status"] == "pending"
    assert collection["collection_date"] == COLLECTION_DAY.isoformat()
    assert collection["submission_deadline"] == "2026-12-07"
    assert collection["sequence_type"] == "FRST"
    assert collection["amount"] == {"amount": 1299, "currency": "EUR"}
    assert "_" not in collection["end_to_end_id"]
    [upcoming] = await events_of(session, "renewal.upcoming")
    assert upcoming.data["amount"] == {"amount": 1299, "currency": "EUR"}
    sepa = upcoming.data["sepa_debit"]
    assert sepa["collection_date"] == "2026-12-08"
    assert sepa["mandate_reference"] == collection["mandate_reference"]
    assert sepa["creditor_identifier"] == "ES11000B12345674"

    admin = auth("ops", admin=True)
    clock.set(datetime(2026, 12, 4, 10, 0, tzinfo=UTC))
    created = await create_batch(client, auth, COLLECTION_DAY)
    assert created.status_code == 201, created.text
    batch = created.json()
    assert batch["status"] == "created"
    assert batch["schema"] == "pain.008.001.08"
    assert batch["number_of_transactions"] == 1
    assert batch["control_sum"] == {"amount": 1299, "currency": "EUR"}
    assert IBAN_ES_ELECTRONIC not in created.text
    [batch_event] = await events_of(session, "sepa.batch.created")
    assert batch_event.data["count"] == 1

    file = await client.get(f"/v1/admin/sepa/batches/{batch['id']}/file", headers=admin)
    assert file.status_code == 200
    assert file.headers["content-type"] == "application/xml"
    assert validate_pain008(file.content, Pain008Schema.V08) == []
    assert IBAN_ES_ELECTRONIC.encode() in file.content
    [stored] = await fresh(session, SepaBatch, id=batch["id"])
    assert IBAN_ES_ELECTRONIC.encode() not in stored.content  # sealed at rest like the IBAN
    assert hashlib.sha256(file.content).hexdigest() == batch["sha256"]
    assert collection["end_to_end_id"].encode() in file.content
    assert b"<CtrlSum>12.99</CtrlSum>" in file.content
    listed = await client.get("/v1/admin/sepa/batches?status=created", headers=admin)
    assert [b["id"] for b in listed.json()["data"]] == [batch["id"]]

    submitted = await submit(client, auth, batch["id"])
    assert submitted.status_code == 200
    assert submitted.json()["status"] == "submitted"
    again = await submit(client, auth, batch["id"])
    assert again.status_code == 409
    [service] = await fresh(session, Service, id="host-1")
    assert service.expires_at == EXPIRES.replace(year=2027)
    [renewal] = await fresh(session, Renewal, service_id="host-1")
    assert renewal.status == "succeeded"
    [mandate] = await fresh(session, Mandate, payment_method_id=setup["method_id"])
    assert mandate.sequence_type == "RCUR"
    assert len(await events_of(session, "renewal.succeeded")) == 1
    assert len(await events_of(session, "service.renewed")) == 1
    [attempt] = await fresh(session, RenewalAttempt, renewal_id=renewal.id)
    assert attempt.status == "succeeded"

    # Settled once the return window has passed without a return.
    clock.set(datetime(2026, 12, 16, 10, 0, tzinfo=UTC))
    await sweep(client, auth)
    [row] = await collections(client, auth)
    assert row["status"] == "settled"
    settled = await client.get(f"/v1/admin/sepa/batches/{batch['id']}", headers=admin)
    assert settled.json()["status"] == "settled"


async def test_an_am04_return_reverses_and_schedules_a_retry_once(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    await collected(client, auth, clock)
    [collection] = await collections(client, auth)
    clock.set(datetime(2026, 12, 10, 8, 0, tzinfo=UTC))
    body = returns_csv((collection["end_to_end_id"], "AM04", 1299, date(2026, 12, 9)))

    imported = await post_returns(client, auth, body)
    assert imported.status_code == 201, imported.text
    assert imported.json()["applied"] == 1
    [service] = await fresh(session, Service, id="host-1")
    assert service.expires_at == EXPIRES
    [renewal] = await fresh(session, Renewal, service_id="host-1")
    assert renewal.status == "scheduled"
    assert renewal.failure_code == "sepa_return_am04"
    assert renewal.next_attempt_at == clock.now() + timedelta(days=1)
    [attempt] = await fresh(session, RenewalAttempt, renewal_id=renewal.id)
    assert (attempt.status, attempt.failure_code, attempt.decline_code) == (
        "failed",
        "sepa_return_am04",
        "AM04",
    )
    [reversed_event] = await events_of(session, "service.renewal_reversed")
    assert reversed_event.data["expires_at"].startswith("2026-12-15")
    [row] = await collections(client, auth)
    assert row["status"] == "returned" and row["return_reason_code"] == "AM04"

    # The same file again: the first answer, nothing changes.
    replay = await post_returns(client, auth, body)
    assert replay.status_code == 200
    assert replay.json()["replayed"] is True
    # The same return inside another file: recorded and applied once.
    other = body + b"unknown-ref-1,AC04,5.00,2026-12-09\n"
    second = await post_returns(client, auth, other)
    assert second.status_code == 201
    assert second.json() | {"returns": None} == second.json() | {
        "records": 2,
        "applied": 0,
        "duplicates": 1,
        "unmatched": 1,
        "returns": None,
    }
    assert len(await events_of(session, "service.renewal_reversed")) == 1
    [renewal] = await fresh(session, Renewal, service_id="host-1")
    assert renewal.failed_charge_count == 1


async def test_an_md01_return_makes_the_method_unusable(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    setup = await collected(client, auth, clock)
    [collection] = await collections(client, auth)
    body = returns_csv((collection["end_to_end_id"], "MD01", 1299, date(2026, 12, 9)))
    imported = await post_returns(client, auth, body)
    assert imported.status_code == 201, imported.text
    [method] = await fresh(session, PaymentMethod, id=setup["method_id"])
    assert (method.status, method.failure_code) == ("failed", "sepa_return_md01")
    [renewal] = await fresh(session, Renewal, service_id="host-1")
    assert renewal.status == "failed"
    [service] = await fresh(session, Service, id="host-1")
    assert service.expires_at == EXPIRES
    assert len(await events_of(session, "payment_method.failed")) == 1
    assert len(await events_of(session, "renewal.failed")) == 1
    shown = (await client.get("/v1/services/host-1", headers=auth("cus_1"))).json()
    # The renewal failed for good, for a reason the customer fixes with another method.
    assert shown["renewal_readiness"] == "renewal_failed"
    assert "no valid mandate" in shown["renewal_readiness_message"]
    assert shown["current_renewal"]["failure_code"] == "sepa_return_md01"
    assert shown["current_renewal"]["next_action"] == {
        "type": "choose_payment_method",
        "url": None,
    }
    assert shown["next_charge"] is None


async def test_an_md06_refund_marks_the_renewal_refunded(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    await collected(client, auth, clock, schema="pain.008.001.02")
    [collection] = await collections(client, auth)
    clock.set(datetime(2027, 1, 20, 8, 0, tzinfo=UTC))
    await sweep(client, auth)  # settled meanwhile: a refund still undoes it
    body = returns_csv((collection["end_to_end_id"], "MD06", 1299, date(2027, 1, 19)))
    imported = await post_returns(client, auth, body, content_type="application/octet-stream")
    assert imported.status_code == 201, imported.text
    [renewal] = await fresh(session, Renewal, service_id="host-1")
    assert renewal.status == "refunded"
    assert len(await events_of(session, "renewal.refunded")) == 1
    assert len(await events_of(session, "service.renewal_reversed")) == 1


async def test_the_v02_file_validates_against_its_xsd(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock
) -> None:
    setup = await collected(client, auth, clock, schema="pain.008.001.02")
    batch = setup["batch"]
    assert isinstance(batch, dict)
    file = await client.get(
        f"/v1/admin/sepa/batches/{batch['id']}/file", headers=auth("ops", admin=True)
    )
    assert validate_pain008(file.content, Pain008Schema.V02) == []


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"end_to_end_id,reason_code,amount,date\nx-1,AM04,12.9,2026-12-09\n", "Line 3"),
        (b"<Document><Unknown/></Document>", "Document"),
    ],
)
async def test_a_malformed_file_is_refused_and_writes_nothing(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
    body: bytes,
    where: str,
) -> None:
    await collected(client, auth, clock)
    [collection] = await collections(client, auth)
    good_line = f"{collection['end_to_end_id']},AM04,12.99,2026-12-09\n".encode()
    data = body.replace(b"\nx-1", b"\n" + good_line + b"x-1") if b"x-1" in body else body
    refused = await post_returns(client, auth, data)
    assert refused.status_code == 422
    assert refused.json()["code"] == "invalid_return_file"
    assert where in refused.json()["detail"]
    async with sessionmaker() as session:
        for model in (SepaReturnFile, SepaReturn):
            assert await session.scalar(select(func.count()).select_from(model)) == 0
        [row] = (await session.execute(select(SepaCollection))).scalars().all()
        assert row.status == "submitted"


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
async def test_a_file_sent_as_another_type_is_refused_unread(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
    content_type: str,
) -> None:
    # A valid CSV under a type the route does not read (curl's --data-binary default is a
    # form) is a mistake to name, not a file to guess at.
    await collected(client, auth, clock)
    [collection] = await collections(client, auth)
    body = returns_csv((collection["end_to_end_id"], "AM04", 1299, date(2026, 12, 9)))
    refused = await post_returns(client, auth, body, content_type=content_type)
    assert refused.status_code == 415
    problem = refused.json()
    assert problem["code"] == "unsupported_media_type"
    assert "text/csv" in problem["detail"] and content_type in problem["detail"]
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(SepaReturnFile)) == 0
        [row] = (await session.execute(select(SepaCollection))).scalars().all()
        assert row.status == "submitted"


async def test_batches_refuse_bad_dates_and_empty_days(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock
) -> None:
    await sepa_customer(client, auth, clock.now())
    await sweep(client, auth)
    saturday = await create_batch(client, auth, date(2026, 12, 12))
    assert saturday.status_code == 422
    assert saturday.json()["code"] == "collection_date_not_business_day"
    empty = await create_batch(client, auth, date(2026, 12, 9))
    assert empty.json()["code"] == "no_collections_due"
    clock.set(datetime(2026, 12, 8, 8, 0, tzinfo=UTC))
    late = await create_batch(client, auth, COLLECTION_DAY)
    assert late.json()["code"] == "submission_deadline_passed"
    bad_schema = await create_batch(client, auth, COLLECTION_DAY, schema="pain.008.001.99")
    assert bad_schema.status_code == 422
    customer = await client.post(
        "/v1/admin/sepa/batches", json={"collection_date": "2026-12-08"}, headers=auth("cus_1")
    )
    assert customer.status_code == 403
    missing = await client.get("/v1/admin/sepa/batches/sepab_x", headers=auth("ops", admin=True))
    assert missing.status_code == 404
    # The deadline passed without a batch: the collection is released and re-planned.
    await sweep(client, auth)
    rows = await collections(client, auth, status="canceled")
    assert [r["cancel_reason"] for r in rows] == ["submission_deadline_missed"]
