"""What the customer area is shown while a renewal waits for the customer or a retry:
`renewal_readiness` is `ok` only when the next renewal can really go through, and
`next_charge` is the next thing that will happen, never a date in the past."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from tests.renewals.timeline import Auth, Desk, open_desk


def iso(moment: object) -> str:
    return moment.isoformat().replace("+00:00", "Z")  # type: ignore[attr-defined]


@pytest.fixture
async def desk(
    make_app: Callable[..., FastAPI],
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[Desk]:
    # Without the notice the first run charges: the states after a charge are the point.
    async with open_desk(make_app, auth, clock, sessionmaker, renewal_notice_days=0) as desk:
        yield desk


async def test_a_declined_renewal_shows_the_decline_and_the_next_attempt(desk: Desk) -> None:
    card = await desk.card("soft_decline")
    await desk.register("host-1", expires_in=timedelta(days=6))
    await desk.choose("host-1", card)
    summary = await desk.run()
    assert (summary["retry_scheduled"], summary["failed"]) == (1, 0)

    shown = await desk.service("host-1")
    retry_at = desk.clock.now() + timedelta(days=1)
    assert shown["renewal_readiness"] == "retrying"
    assert "insufficient funds" in shown["renewal_readiness_message"]
    assert retry_at.date().isoformat() in shown["renewal_readiness_message"]
    assert shown["next_charge"]["at"] == iso(retry_at)
    assert shown["next_charge"]["kind"] == "retry"
    current = shown["current_renewal"]
    assert (current["status"], current["failure_code"]) == ("scheduled", "insufficient_funds")
    assert current["next_attempt_at"] == iso(retry_at)
    [retry] = await desk.events("renewal.retry_scheduled")
    assert retry.data["next_attempt_at"] == iso(retry_at)
    assert await desk.events("renewal.failed") == []

    # The scheduler is down past the retry: the next attempt is now, not in the past.
    desk.clock.advance(timedelta(days=2))
    late = await desk.service("host-1")
    assert late["next_charge"]["at"] == iso(desk.clock.now())


async def test_a_renewal_waiting_for_authentication_says_how_to_give_it(desk: Desk) -> None:
    card = await desk.card("auth")
    await desk.register("host-1", expires_in=timedelta(days=5))
    await desk.choose("host-1", card)
    assert (await desk.run())["requires_action"] == 1

    shown = await desk.service("host-1")
    assert shown["renewal_readiness"] == "requires_authentication"
    assert shown["next_charge"] is None  # nothing happens until the customer acts
    action = shown["current_renewal"]["next_action"]
    assert action["type"] == "authenticate_payment"
    # The renewal's own link: it confirms the payment on-session, then the gateway's page.
    assert action["url"].startswith("http://127.0.0.1:8000/v1/renewals/")
    assert "/authenticate?token=" in action["url"]
    renewals = await desk.client.get(
        "/v1/services/host-1/renewals", headers=desk.auth(desk.customer)
    )
    [renewal] = renewals.json()["data"]
    assert renewal["next_action"] == action
    assert renewal["failure_code"] == "authentication_required"
    assert renewal["failure_reason"] == "Your bank asks you to authenticate this payment."


async def test_a_renewal_failed_for_good_says_why_and_what_to_do(desk: Desk) -> None:
    card = await desk.card("hard_decline")
    await desk.register("host-1", expires_in=timedelta(days=5))
    await desk.choose("host-1", card)
    assert (await desk.run())["failed"] == 1

    shown = await desk.service("host-1")
    assert shown["renewal_readiness"] == "renewal_failed"
    assert shown["next_charge"] is None
    # stolen_card stays on the admin's record; the customer is told a generic decline.
    assert shown["current_renewal"]["failure_code"] == "generic_decline"
    assert shown["current_renewal"]["next_action"] == {
        "type": "choose_payment_method",
        "url": None,
    }
    assert "Choose another payment method" in shown["renewal_readiness_message"]

    # Another card: the renewal comes back and goes through at the next run.
    other = await desk.card()
    fixed = await desk.choose("host-1", other)
    assert (fixed["renewal_readiness"], fixed["current_renewal"]["status"]) == (
        "ok",
        "scheduled",
    )
    assert (await desk.run())["succeeded"] == 1
    assert len(desk.gateway.successful_charges()) == 1


async def test_auto_renew_off_after_the_notice_stops_the_charge_and_on_brings_it_back(
    desk: Desk,
) -> None:
    card = await desk.card()
    await desk.register("host-1", expires_in=timedelta(days=6))
    chosen = await desk.choose("host-1", card)  # inside the lead: planned, due now
    assert chosen["current_renewal"]["status"] == "scheduled"
    me = desk.auth(desk.customer)
    off = await desk.client.patch("/v1/services/host-1", json={"auto_renew": False}, headers=me)
    assert (off.json()["renewal_readiness"], off.json()["next_charge"]) == ("auto_renew_off", None)
    assert (await desk.run())["canceled"] == 1  # its charge date came with auto-renew off
    assert desk.gateway.calls == []

    on = await desk.client.patch("/v1/services/host-1", json={"auto_renew": True}, headers=me)
    assert on.json()["renewal_readiness"] == "ok"
    assert on.json()["current_renewal"]["status"] == "scheduled"
    assert on.json()["next_charge"]["at"] == iso(desk.clock.now())
    assert (await desk.run())["succeeded"] == 1
