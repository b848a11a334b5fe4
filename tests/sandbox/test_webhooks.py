"""The sandbox's webhooks: Stripe's events, signed as Stripe signs them (checked with the
official SDK's `stripe.Webhook.construct_event`), sent after the request that caused them,
retried a bounded few times, once across processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from sqlalchemy import select

from app.core.clock import FrozenClock
from app.sandbox.app import Sandbox
from app.sandbox.config import SandboxConfig
from app.sandbox.models import Event
from tests.sandbox.conftest import API_KEY, RETURN_URL, card_form

SECRET = "whsec_test_sandbox_webhooks"
HOOK = "https://service.test/v1/gateway-webhooks/stripe"


class Receiver:
    """The merchant's endpoint: records what arrives and answers `status`."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.status = 200
        self.hold: asyncio.Event | None = None
        self.arrived = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.arrived.set()
        if self.hold is not None:
            await self.hold.wait()
        return httpx.Response(self.status)

    def events(self, secret: str = SECRET, tolerance: int | None = 300) -> list[stripe.Event]:
        return [
            stripe.Webhook.construct_event(
                request.content.decode(),
                request.headers["stripe-signature"],
                secret,
                tolerance=tolerance,
            )
            for request in self.requests
        ]

    def documents(self) -> list[dict[str, Any]]:
        """The verified events as plain JSON."""
        self.events()
        return [json.loads(request.content) for request in self.requests]


@pytest.fixture
def now_clock() -> FrozenClock:
    # Signatures carry the sandbox clock's time; the SDK checks it against the wall clock.
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


def hooked_config(tmp_path: Path, name: str = "ledger") -> SandboxConfig:
    return SandboxConfig(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/{name}.db",
        public_url="http://testserver",
        webhook_url=HOOK,
        webhook_secret=SECRET,
    )


@pytest.fixture
async def hooked(
    tmp_path: Path, now_clock: FrozenClock, receiver: Receiver
) -> AsyncIterator[Sandbox]:
    """A sandbox with a webhook URL whose sending the test drives (`deliver_due`)."""
    instance = Sandbox(
        hooked_config(tmp_path), clock=now_clock, webhook_transport=httpx.MockTransport(receiver)
    )
    await instance.start(send_webhooks=False)
    yield instance
    await instance.stop()


@pytest.fixture
async def hapi(hooked: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=hooked.app),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as client:
        yield client


async def paid_card(api: httpx.AsyncClient, number: str = "4242424242424242") -> dict[str, Any]:
    customer = (await api.post("/v1/customers")).json()["id"]
    method = (await api.post("/v1/payment_methods", data=card_form(number))).json()["id"]
    await api.post(f"/v1/payment_methods/{method}/attach", data={"customer": customer})
    paid = await api.post(
        "/v1/payment_intents",
        data={
            "amount": "4200",
            "currency": "eur",
            "customer": customer,
            "payment_method": method,
            "confirm": "true",
            "off_session": "true",
        },
    )
    return {"customer": customer, "method": method, "intent": paid.json()}


async def test_signed_as_stripe_signs(
    hooked: Sandbox, hapi: httpx.AsyncClient, receiver: Receiver
) -> None:
    made = await paid_card(hapi)
    assert (await hooked.webhooks.deliver_due()).delivered == 2
    attached, succeeded = receiver.events()
    assert attached.type == "payment_method.attached"
    assert attached.data.object.id == made["method"]
    assert succeeded.type == "payment_intent.succeeded"
    assert succeeded.data.object.id == made["intent"]["id"]
    assert succeeded.data.object.amount_received == 4200
    assert (succeeded.api_version, succeeded.livemode) == ("2025-03-31.basil", False)
    request_info = receiver.documents()[1]["request"]
    assert request_info["idempotency_key"] is None and request_info["id"].startswith("req_")
    # The same documents as the API's events list.
    listed = (await hapi.get(f"/v1/events/{succeeded.id}")).json()
    assert listed == json.loads(receiver.requests[1].content)

    request = receiver.requests[1]
    assert b'"amount":4200' in request.content
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            request.content.decode(), request.headers["stripe-signature"], "whsec_other"
        )
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            request.content.decode().replace('"amount":4200', '"amount":4300'),
            request.headers["stripe-signature"],
            SECRET,
        )


async def test_a_stale_signature_is_refused(
    hooked: Sandbox, hapi: httpx.AsyncClient, receiver: Receiver, now_clock: FrozenClock
) -> None:
    now_clock.advance(timedelta(minutes=-10))
    await hapi.post("/v1/payment_methods/pm_card_visa/detach")  # 400: nothing to detach
    await paid_card(hapi)
    await hooked.webhooks.deliver_due()
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        receiver.events()
    assert len(receiver.events(tolerance=None)) == 2


async def test_every_event_type(
    hooked: Sandbox, hapi: httpx.AsyncClient, receiver: Receiver
) -> None:
    made = await paid_card(hapi, "4000002500003155")  # needs 3DS on-session only once set up
    method = made["method"]
    charge = made["intent"]["error"]["charge"]  # not set up yet: authentication_required
    setup = await hapi.post(
        "/v1/setup_intents",
        data={"customer": made["customer"], "payment_method": method, "confirm": "true",
              "return_url": RETURN_URL},
    )  # fmt: skip
    page = await hapi.get(setup.json()["next_action"]["redirect_to_url"]["url"])
    token = page.text.split('name="token" value="')[1].split('"')[0]
    await hapi.post(f"/3ds/{setup.json()['id']}", data={"token": token, "result": "complete"})
    declined_setup = await hapi.post(
        "/v1/setup_intents",
        data={"payment_method": "pm_card_chargeDeclined", "confirm": "true"},
    )
    assert declined_setup.status_code == 402
    paid = await hapi.post(
        "/v1/payment_intents",
        data={"amount": "900", "currency": "eur", "customer": made["customer"],
              "payment_method": method, "confirm": "true", "off_session": "one_off"},
    )  # fmt: skip
    charge = paid.json()["latest_charge"]
    await hapi.post(
        f"/v1/payment_methods/{method}",
        data={"card[exp_year]": "2031", "metadata[plan]": "pro"},
    )
    await hapi.post(
        f"/_test/payment_methods/{method}/card_updater",
        data={"exp_month": "3", "exp_year": "2034", "last4": "1881"},
    )
    await hapi.post("/v1/refunds", data={"charge": charge, "amount": "300"})
    await hapi.post(f"/_test/charges/{charge}/dispute", data={"reason": "product_not_received"})
    await hapi.post(f"/v1/payment_methods/{method}/detach")
    await hooked.webhooks.deliver_due()

    events = receiver.documents()
    by_type = {event["type"]: event["data"] for event in events}
    assert [event["type"] for event in events] == [
        "payment_method.attached",
        "payment_intent.payment_failed",
        "setup_intent.succeeded",
        "setup_intent.setup_failed",
        "payment_intent.succeeded",
        "payment_method.updated",
        "payment_method.automatically_updated",
        "charge.refunded",
        "charge.dispute.created",
        "payment_method.detached",
    ]
    updated = by_type["payment_method.updated"]
    assert updated["previous_attributes"] == {"card": {"exp_year": 2030}, "metadata": {}}
    assert updated["object"]["metadata"] == {"plan": "pro"}
    renewed = by_type["payment_method.automatically_updated"]
    assert renewed["object"]["card"]["last4"] == "1881"
    assert renewed["previous_attributes"] == {
        "card": {"exp_month": 12, "exp_year": 2031, "last4": "3155"}
    }
    refunded = by_type["charge.refunded"]
    assert (refunded["object"]["id"], refunded["object"]["amount_refunded"]) == (charge, 300)
    assert refunded["previous_attributes"] == {"amount_refunded": 0}
    dispute = by_type["charge.dispute.created"]["object"]
    assert (dispute["charge"], dispute["reason"], dispute["status"]) == (
        charge,
        "product_not_received",
        "needs_response",
    )
    detached = by_type["payment_method.detached"]
    assert detached["previous_attributes"] == {"customer": made["customer"]}
    assert detached["object"]["customer"] is None
    # A detached method is done for: Stripe refuses to use it again.
    again = await hapi.post(
        f"/v1/payment_methods/{method}/attach", data={"customer": made["customer"]}
    )
    assert again.status_code == 400


async def test_a_failed_3ds_setup_says_so(
    hooked: Sandbox, hapi: httpx.AsyncClient, receiver: Receiver
) -> None:
    setup = await hapi.post(
        "/v1/setup_intents",
        data={"payment_method": "pm_card_authenticationRequired", "confirm": "true",
              "return_url": RETURN_URL},
    )  # fmt: skip
    page = await hapi.get(setup.json()["next_action"]["redirect_to_url"]["url"])
    token = page.text.split('name="token" value="')[1].split('"')[0]
    await hapi.post(f"/3ds/{setup.json()['id']}", data={"token": token, "result": "fail"})
    await hooked.webhooks.deliver_due()
    [failed] = receiver.documents()
    assert failed["type"] == "setup_intent.setup_failed"
    assert failed["request"]["id"] is None  # the customer's page, not an API request
    error = failed["data"]["object"]["last_setup_error"]
    assert error["code"] == "setup_intent_authentication_failure"


async def test_a_replay_sends_nothing_new(
    hooked: Sandbox, hapi: httpx.AsyncClient, receiver: Receiver
) -> None:
    for _ in range(3):
        await hapi.post(
            "/v1/payment_methods/pm_card_visa/attach",
            data={"customer": (await hapi.post("/v1/customers", headers={"Idempotency-Key": "c"}))
                  .json()["id"]},
            headers={"Idempotency-Key": "attach-once"},
        )  # fmt: skip
    await hooked.webhooks.deliver_due()
    assert [event.type for event in receiver.events()] == ["payment_method.attached"]


async def ledger_events(sandbox: Sandbox) -> list[Event]:
    async with sandbox.transaction() as session:
        return list((await session.scalars(select(Event).order_by(Event.seq))).all())


async def test_retries_are_bounded(
    hooked: Sandbox, hapi: httpx.AsyncClient, receiver: Receiver, now_clock: FrozenClock
) -> None:
    receiver.status = 500
    await hapi.post("/v1/payment_methods/pm_card_visa/attach", data={
        "customer": (await hapi.post("/v1/customers")).json()["id"]})  # fmt: skip
    assert (await hooked.webhooks.deliver_due()).retrying == 1
    assert (await hooked.webhooks.deliver_due()).retrying == 0  # not due yet
    for wait in (2, 4):
        now_clock.advance(timedelta(seconds=wait))
        assert (await hooked.webhooks.deliver_due()).retrying == 1
    now_clock.advance(timedelta(seconds=8))
    assert (await hooked.webhooks.deliver_due()).failed == 1
    now_clock.advance(timedelta(hours=1))
    assert (await hooked.webhooks.deliver_due()).failed == 0
    assert len(receiver.requests) == 4
    [event] = await ledger_events(hooked)
    assert (event.delivery, event.attempts, event.last_error) == ("failed", 4, "HTTP 500")


async def test_the_request_never_waits_for_its_webhook(
    tmp_path: Path, now_clock: FrozenClock, receiver: Receiver
) -> None:
    """With the sender running and the receiver hanging, API calls still answer."""
    receiver.hold = asyncio.Event()
    instance = Sandbox(
        hooked_config(tmp_path), clock=now_clock, webhook_transport=httpx.MockTransport(receiver)
    )
    await instance.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=instance.app),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as client:
            for _ in range(2):
                made = await asyncio.wait_for(paid_card(client), timeout=10)
                assert made["intent"]["status"] == "succeeded"
            # The sender was woken and is stuck on the first delivery.
            await asyncio.wait_for(receiver.arrived.wait(), timeout=10)
            assert len(receiver.requests) == 1
        receiver.hold.set()
    finally:
        await instance.stop()


async def test_processes_sharing_a_ledger_send_each_event_once(
    tmp_path: Path, now_clock: FrozenClock, receiver: Receiver
) -> None:
    instances = [
        Sandbox(
            hooked_config(tmp_path, "shared"),
            clock=now_clock,
            webhook_transport=httpx.MockTransport(receiver),
        )
        for _ in range(2)
    ]
    for instance in instances:
        await instance.start(send_webhooks=False)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=instances[0].app),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as client:
            for _ in range(5):
                await paid_card(client)
        passes = await asyncio.gather(*(i.webhooks.deliver_due() for i in instances))
        assert sum(one.delivered for one in passes) == 10
        ids = [event.id for event in receiver.events()]
        assert len(ids) == len(set(ids)) == 10
    finally:
        for instance in instances:
            await instance.stop()


async def test_without_a_url_events_are_only_recorded(api: httpx.AsyncClient) -> None:
    customer = (await api.post("/v1/customers")).json()["id"]
    await api.post("/v1/payment_methods/pm_card_visa/attach", data={"customer": customer})
    [event] = (await api.get("/v1/events")).json()["data"]
    assert (event["type"], event["pending_webhooks"]) == ("payment_method.attached", 0)
    assert (await api.get("/v1/events/evt_missing")).status_code == 404
