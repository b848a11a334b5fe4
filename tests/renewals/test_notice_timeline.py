"""A notice before every charge, on an injected clock, day by day: card and SEPA renewals
are announced, then charged no earlier than the notice plus 15 days and before expiry; a
customer's own late act is the notice; an expiry moved by provisioning moves the charge,
not the notice; a late registration gets a short notice that says so."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.target2 import submission_deadline
from app.renewals.models import Renewal
from tests.renewals.timeline import Auth, Desk, open_desk

NOTICE = timedelta(days=15)


@pytest.fixture
async def desk(
    make_app: Callable[..., FastAPI],
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[Desk]:
    async with open_desk(make_app, auth, clock, sessionmaker) as desk:
        yield desk


async def renewals(desk: Desk, service_id: str) -> list[Renewal]:
    async with desk.sessionmaker() as session:
        query = select(Renewal).where(Renewal.service_id == service_id).order_by(Renewal.created_at)
        return list((await session.execute(query)).scalars())


async def test_a_card_renewal_is_announced_then_charged_fifteen_days_later(desk: Desk) -> None:
    start = desk.clock.now()
    card = await desk.card()
    await desk.register("host-1", expires_in=timedelta(days=25))
    await desk.choose("host-1", card)  # 25 days ahead: before the notice, nothing yet
    expires = start + timedelta(days=25)

    seen = await desk.day_by_day(start + timedelta(days=26))

    [noticed] = seen["renewal.upcoming"]
    [charged] = seen["renewal.succeeded"]
    assert noticed == expires - timedelta(days=7) - NOTICE  # the card lead, and the notice
    assert noticed + NOTICE <= charged < expires
    assert seen["service.renewed"] == [charged]
    assert len(desk.gateway.successful_charges()) == 1
    [upcoming] = await desk.events("renewal.upcoming")
    data = upcoming.data
    assert data["notice"] == "full"
    assert data["charge_at"] == (expires - timedelta(days=7)).isoformat().replace("+00:00", "Z")
    assert data["amount"] == {"amount": 1299, "currency": "EUR"}
    assert data["payment_method"]["display"] == "VISA •••• 4242"
    assert data["service"]["name"] == "host-1"
    assert data["how_to_stop"] == {
        "method": "PATCH",
        "path": "/v1/services/host-1",
        "body": {"auto_renew": False},
    }
    assert "turn automatic renewal off" in data["message"]


async def test_between_notice_and_charge_the_service_shows_the_charge(desk: Desk) -> None:
    card = await desk.card()
    await desk.register("host-1", expires_in=timedelta(days=30))
    await desk.choose("host-1", card)
    expires = desk.clock.now() + timedelta(days=30)
    desk.clock.advance(timedelta(days=8))  # the notice time (7 + 15 days before expiry)
    summary = await desk.run()
    assert (summary["planned"], summary["notices"], summary["succeeded"]) == (1, 1, 0)
    shown = await desk.service("host-1")
    assert shown["renewal_readiness"] == "ok"
    assert shown["next_charge"]["at"] == (expires - timedelta(days=7)).isoformat().replace(
        "+00:00", "Z"
    )
    assert shown["next_charge"]["kind"] == "charge"
    assert shown["current_renewal"]["status"] == "scheduled"
    assert shown["current_renewal"]["notified_at"] is not None
    assert (await desk.run())["notices"] == 0  # one notice, whatever runs


async def test_a_sepa_renewal_is_announced_once_and_collected_fifteen_days_later(
    desk: Desk,
) -> None:
    start = desk.clock.now()
    sepa = await desk.sepa()
    await desk.register("host-1", expires_in=timedelta(days=24))
    await desk.choose("host-1", sepa)
    expires = start + timedelta(days=24)
    submitted: list[str] = []

    async def the_bank_gets_its_file() -> None:
        for collection in (await desk.client.get(
            "/v1/admin/sepa/collections", params={"status": "pending"},
            headers=desk.auth("ops", admin=True),
        )).json()["data"]:  # fmt: skip
            day = date.fromisoformat(collection["collection_date"])
            if desk.clock.now().date() == submission_deadline(day):
                batch = await desk.client.post(
                    "/v1/admin/sepa/batches",
                    json={"collection_date": day.isoformat()},
                    headers=desk.auth("ops", admin=True),
                )
                assert batch.status_code == 201, batch.text
                submitted.append(batch.json()["id"])
                sent = await desk.client.post(
                    f"/v1/admin/sepa/batches/{batch.json()['id']}/submit",
                    headers=desk.auth("ops", admin=True),
                )
                assert sent.status_code == 200, sent.text

    seen = await desk.day_by_day(start + timedelta(days=25), each=the_bank_gets_its_file)

    [noticed] = seen["renewal.upcoming"]  # one notice: the pre-notification is the notice
    assert noticed == expires - timedelta(days=21)  # SEPA's lead
    [upcoming] = await desk.events("renewal.upcoming")
    collected_on = date.fromisoformat(upcoming.data["sepa_debit"]["collection_date"])
    assert noticed.date() + NOTICE <= collected_on < expires.date()
    assert upcoming.data["payment_method"]["display"].endswith("1332")
    assert len(submitted) == 1
    assert len(seen["renewal.succeeded"]) == 1
    [renewal] = await renewals(desk, "host-1")
    assert renewal.due_at.date() == collected_on


async def test_a_late_customer_act_is_the_notice_and_the_charge_keeps_its_date(
    desk: Desk,
) -> None:
    start = desk.clock.now()
    card = await desk.card()
    await desk.register("host-1", expires_in=timedelta(days=10))
    assert (await desk.run())["notices"] == 0  # auto-renew off, no method: nothing to announce

    answer = await desk.choose("host-1", card)  # 10 days before expiry: inside the window
    usual = start + timedelta(days=10) - timedelta(days=7)
    assert answer["auto_renew"] is True
    assert answer["renewal_readiness"] == "ok"
    assert answer["next_charge"]["at"] == usual.isoformat().replace("+00:00", "Z")
    assert answer["next_charge"]["amount"] == {"amount": 1299, "currency": "EUR"}
    assert answer["current_renewal"]["notified_at"] is not None
    [upcoming] = await desk.events("renewal.upcoming")
    assert upcoming.created_at == start
    assert upcoming.data["notice"] == "customer_act"
    [changed] = await desk.events("service.auto_renew_changed")
    assert changed.data["auto_renew"] is True

    seen = await desk.day_by_day(start + timedelta(days=11))
    assert seen["renewal.succeeded"] == [usual]  # its usual date: not 15 days after the act
    assert "renewal.upcoming" not in seen


async def test_sepa_too_late_is_said_when_it_is_chosen_and_a_card_fixes_it(
    desk: Desk,
) -> None:
    start = desk.clock.now()
    sepa = await desk.sepa()
    await desk.register("host-1", expires_in=timedelta(days=10))
    answer = await desk.choose("host-1", sepa)
    # No sweep has run: the answer already says a direct debit cannot make it in time.
    assert answer["renewal_readiness"] == "renewal_failed"
    assert answer["current_renewal"]["failure_code"] == "no_collection_date"
    assert answer["current_renewal"]["next_action"] == {
        "type": "choose_payment_method",
        "url": None,
    }
    assert "SEPA" in answer["renewal_readiness_message"]

    card = await desk.card()
    fixed = await desk.choose("host-1", card)
    assert fixed["renewal_readiness"] == "ok"
    assert fixed["current_renewal"]["status"] == "scheduled"
    assert fixed["next_charge"]["at"] == (start + timedelta(days=3)).isoformat().replace(
        "+00:00", "Z"
    )
    notices = [event.data["notice"] for event in await desk.events("renewal.upcoming")]
    assert notices == ["customer_act"]  # the card's: the debit was never pre-notified
    seen = await desk.day_by_day(start + timedelta(days=11))
    assert seen["renewal.succeeded"] == [start + timedelta(days=3)]


async def test_an_expiry_moved_closer_moves_the_charge_not_the_notice(desk: Desk) -> None:
    start = desk.clock.now()
    card = await desk.card()
    await desk.register("host-1", expires_in=timedelta(days=90), auto_renew=True)
    await desk.choose("host-1", card)
    desk.clock.advance(timedelta(days=30))
    assert (await desk.run())["notices"] == 0
    # Provisioning moves the expiry to 20 days from now: its notice time (22 days before)
    # has passed, and its usual charge (7 days before) is closer than 15 days.
    expires = start + timedelta(days=50)
    await desk.register("host-1", expires_at=expires, auto_renew=True)

    seen = await desk.day_by_day(expires)
    [noticed] = seen["renewal.upcoming"]
    [charged] = seen["renewal.succeeded"]
    assert noticed == start + timedelta(days=30)
    assert charged == noticed + NOTICE < expires - timedelta(days=1)
    [upcoming] = await desk.events("renewal.upcoming")
    assert upcoming.data["notice"] == "full"


async def test_when_no_full_notice_fits_the_short_notice_says_so(desk: Desk) -> None:
    start = desk.clock.now()
    card = await desk.card()
    await desk.register("host-1", expires_in=timedelta(days=90), auto_renew=True)
    await desk.choose("host-1", card)
    desk.clock.advance(timedelta(days=30))
    # Provisioning moves the expiry to two days from now: no 15 days fit any more.
    expires = desk.clock.now() + timedelta(days=2)
    await desk.register("host-1", expires_at=expires, auto_renew=True)

    seen = await desk.day_by_day(expires + timedelta(days=1))
    [notice] = await desk.events("renewal.upcoming")
    assert notice.created_at == start + timedelta(days=30)  # at once
    assert notice.data["notice"] == "short"
    assert "shorter than 15 days" in notice.data["message"]
    # The last moment that still renews in time: a day before expiry. Never lapsed.
    assert seen["renewal.succeeded"] == [expires - timedelta(days=1)]
    assert "service.lapsed" not in seen


async def test_a_new_price_gets_a_notice_of_its_own_before_it_is_charged(desk: Desk) -> None:
    start = desk.clock.now()
    card = await desk.card()
    expires = start + timedelta(days=25)
    await desk.register("host-1", expires_at=expires)
    await desk.choose("host-1", card)

    async def provisioning_raises_the_price() -> None:
        if desk.clock.now() == start + timedelta(days=10):
            body = {
                "customer_id": desk.customer, "kind": "hosting", "name": "host-1",
                "expires_at": expires.isoformat(), "period_months": 12,
                "price": {"amount": 1499, "currency": "EUR"},
            }  # fmt: skip
            response = await desk.client.put(
                "/v1/admin/services/host-1", json=body, headers=desk.auth("ops", admin=True)
            )
            assert response.status_code == 200, response.text

    seen = await desk.day_by_day(expires, each=provisioning_raises_the_price)

    first, second = await desk.events("renewal.upcoming")
    assert first.data["amount"]["amount"] == 1299
    # Told at its old charge date; no full notice fits any more: the last moment.
    assert second.created_at == expires - timedelta(days=7)
    assert (second.data["amount"]["amount"], second.data["notice"]) == (1499, "short")
    assert seen["renewal.succeeded"] == [expires - timedelta(days=1)]
    [charge] = desk.gateway.successful_charges()
    assert charge.amount == 1499
