"""The outbox API other modules call: numbering, validation, and the secret guard."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.events.catalogue import CATALOGUE
from app.events.guard import UnsafeEventData, check_no_secrets
from app.events.models import Event
from app.events.payloads import PaymentMethodData
from app.events.service import NewEvent, emit, emit_all
from app.openapi_export import openapi_document

from .helpers import emit_committed, emit_rolled_back, renewal_data

ISSUE_TYPES = {
    "payment_method.created",
    "payment_method.validated",
    "payment_method.failed",
    "payment_method.expiring",
    "payment_method.expired",
    "payment_method.revoked",
    "mandate.accepted",
    "service.payment_method_changed",
    "service.auto_renew_changed",
    "renewal.upcoming",
    "renewal.succeeded",
    "renewal.failed",
    "renewal.requires_action",
    "renewal.canceled",
    "renewal.refunded",
    "service.renewed",
    "service.renewal_reversed",
    "sepa.batch.created",
}


def test_the_catalogue_covers_the_issue_and_is_documented_as_webhooks() -> None:
    assert set(CATALOGUE) >= ISSUE_TYPES
    webhooks = openapi_document()["webhooks"]
    assert set(webhooks) == set(CATALOGUE)
    body = webhooks["renewal.succeeded"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"].endswith("/RenewalSucceededEvent")


async def test_sequence_numbers_count_per_resource(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    first = await emit_committed(sessionmaker, clock.now(), resource_id="ren_a")
    second = await emit_committed(
        sessionmaker, clock.now(), type="renewal.failed", resource_id="ren_a"
    )
    other = await emit_committed(sessionmaker, clock.now(), resource_id="ren_b")
    assert (first.sequence, second.sequence, other.sequence) == (1, 2, 1)
    assert first.resource_type == "renewal" and first.schema_version == 1


async def test_concurrent_emitters_on_one_resource_never_share_a_number(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    events = await asyncio.gather(
        *(emit_committed(sessionmaker, clock.now(), resource_id="ren_hot") for _ in range(8))
    )
    assert sorted(event.sequence for event in events) == list(range(1, 9))


async def test_an_uncommitted_number_is_given_back(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    await emit_rolled_back(sessionmaker, clock.now())
    assert (await emit_committed(sessionmaker, clock.now())).sequence == 1


async def test_a_mapping_is_validated_against_the_payload_model(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    data = renewal_data().model_dump(mode="json")
    event = await emit_committed(sessionmaker, clock.now(), data=data)
    assert event.data["amount"] == {"amount": 1299, "currency": "EUR"}
    assert event.data["period_start"] == "2026-12-01T00:00:00Z"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"type": "renewal.exploded"}, ValueError),
        ({"data": PaymentMethodData(id="p", customer_id="c", type="card", status="x")}, TypeError),
        ({"data": {"id": "ren_1"}}, ValidationError),
        ({"data": {**renewal_data().model_dump(), "iban": "DE8937040044"}}, ValidationError),
    ],
)
async def test_emitter_bugs_raise_and_write_nothing(
    session: AsyncSession, clock: FrozenClock, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    arguments: dict[str, Any] = {
        "type": "renewal.succeeded",
        "resource_id": "ren_1",
        "customer_id": "cus_1",
        "data": renewal_data(),
        "now": clock.now(),
        **kwargs,
    }
    with pytest.raises(error):
        await emit(session, **arguments)
    await session.rollback()
    assert await session.scalar(select(func.count()).select_from(Event)) == 0


@pytest.mark.parametrize(
    "data",
    [
        {"note": "card 4242 4242 4242 4242 on file"},
        {"nested": [{"ref": "5555555555554444"}]},
        {"account": "DE89 3704 0044 0532 0130 00"},
        {"account": "fr1420041010050500013m02606"},
        {"cvc": "123"},
        {"card_number": "x"},
        {"CVC": 0},
        {"ref": 4242424242424242},
        # In JSON text an escape puts a letter right before the IBAN ("\\nDE89…"): the
        # quick scan must not be what decides.
        {"note": "line one\nDE89370400440532013000"},
        {"note": 'said "DE89370400440532013000"'},
    ],
)
def test_the_guard_refuses_card_numbers_ibans_and_secret_fields(data: dict[str, Any]) -> None:
    with pytest.raises(UnsafeEventData):
        check_no_secrets(data)


@pytest.mark.parametrize(
    "data",
    [
        {"iban_last4": "3000", "mandate_reference": "AUTORENEW-7KQ2M9XW4P"},
        {"last4": "4242", "at": "2026-11-24T09:00:00Z", "amount": 129900},
        {"id": "evt_0123456789abcdefghijklmn", "order": "1234567890123"},  # fails Luhn
        {"masked": "DE89 **** **** **** 3000", "cvc": None},
    ],
)
def test_the_guard_lets_masked_data_through(data: dict[str, Any]) -> None:
    check_no_secrets(data)


async def test_a_payload_carrying_a_card_number_is_refused_before_writing(
    session: AsyncSession, clock: FrozenClock
) -> None:
    data = renewal_data().model_copy(update={"failure_message": "card 4000000000000002 declined"})
    with pytest.raises(UnsafeEventData):
        await emit(
            session,
            type="renewal.failed",
            resource_id="ren_1",
            customer_id="cus_1",
            data=data,
            now=clock.now(),
        )
    await session.rollback()
    assert await session.scalar(select(func.count()).select_from(Event)) == 0


async def test_several_events_take_consecutive_numbers_in_one_call(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    await emit_committed(sessionmaker, clock.now(), resource_id="ren_a")
    async with sessionmaker() as session, session.begin():
        events = await emit_all(
            session,
            [
                NewEvent("renewal.failed", "ren_a", renewal_data("ren_a"), "cus_1"),
                NewEvent("renewal.succeeded", "ren_b", renewal_data("ren_b"), "cus_1"),
                NewEvent("renewal.succeeded", "ren_a", renewal_data("ren_a"), "cus_1"),
            ],
            now=clock.now(),
        )
    assert [(e.resource_id, e.sequence) for e in events] == [
        ("ren_a", 2),
        ("ren_b", 1),
        ("ren_a", 3),
    ]
    assert (await emit_committed(sessionmaker, clock.now(), resource_id="ren_b")).sequence == 2
