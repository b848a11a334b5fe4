"""Stripe's official Python SDK drives the sandbox as an outside client, over HTTP, against
`autorenew sandbox-gateway` in its own process: the sync client and the async one on httpx.

What Stripe's own clients rely on is checked here: their form encoding (booleans, `expand[0]`,
nested dicts), their error classes (CardError with Stripe's codes, IdempotencyError,
PermissionError for a publishable key, 409 for a key in flight), idempotent replays, a stored
500, and webhook events verified with `stripe.Webhook.construct_event` (wall clock, default
tolerance).
"""

from __future__ import annotations

import asyncio
import http.server
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import stripe

from tests import processes

API_KEY = "sk_test_official_sdk"
PUBLISHABLE_KEY = "pk_test_official_sdk"
WEBHOOK_SECRET = "whsec_official_sdk_tests"
RETURN_URL = "https://customer-area.test/cards/return"

pytestmark = [
    pytest.mark.slow,
    # stripe 12.0's HTTPXClient hands its form body to httpx as `data=<str>`, which httpx
    # 0.28 deprecates (it wants `content=`); under warnings-as-errors the SDK would report
    # the warning as a network error. The SDK is tested as shipped, the warning let through.
    pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning"),
]


class _Hook(http.server.BaseHTTPRequestHandler):
    received: queue.Queue[tuple[str, str]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.received.put((body, self.headers["Stripe-Signature"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@dataclass
class Live:
    url: str
    received: queue.Queue[tuple[str, str]]
    seen: list[stripe.Event] = field(default_factory=list)

    def event(self, event_type: str, object_id: str, timeout: float = 20) -> stripe.Event:
        """The event of this type about this object, once it has arrived (each one verified
        with the SDK, default 5-minute tolerance, as it arrives)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.seen:
                if event.type == event_type and event.data.object.id == object_id:
                    return event
            payload, signature = self.received.get(timeout=max(0.0, deadline - time.monotonic()))
            self.seen.append(stripe.Webhook.construct_event(payload, signature, WEBHOOK_SECRET))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A sandbox process, and a webhook endpoint it sends its events to."""
    tmp = tmp_path_factory.mktemp("official-sdk")
    received: queue.Queue[tuple[str, str]] = queue.Queue()
    handler = type("Hook", (_Hook,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with processes.sandbox_gateway(
            tmp,
            name="sandbox-sdk",
            ledger=tmp / "ledger.db",
            AUTORENEW_SANDBOX_WEBHOOK_URL=f"http://127.0.0.1:{server.server_port}/hook",
            AUTORENEW_SANDBOX_WEBHOOK_SECRET=WEBHOOK_SECRET,
        ) as url:
            yield Live(url, received)
    finally:
        server.shutdown()
        server.server_close()


def sync_client(live: Live, key: str = API_KEY) -> stripe.StripeClient:
    # No retries: each call is one request, so what the sandbox answered is what we see.
    return stripe.StripeClient(key, base_addresses={"api": live.url}, max_network_retries=0)


def complete_3ds(url: str, result: str = "complete") -> httpx.Response:
    """The customer in a browser, on the page next_action.redirect_to_url points to."""
    with httpx.Client() as browser:
        page = browser.get(url)
        token = page.text.split('name="token" value="')[1].split('"')[0]
        return browser.post(url.split("?")[0], data={"token": token, "result": result})


CARD = {"exp_month": 12, "exp_year": 2030, "cvc": "123"}


def test_the_card_lifecycle_with_the_sync_client(live: Live) -> None:
    client = sync_client(live)
    run = uuid.uuid4().hex[:8]
    customer = client.customers.create(params={"metadata": {"autorenew_customer_id": run}})
    # The browser tokenizes with the publishable key; the server may not use it.
    browser = sync_client(live, PUBLISHABLE_KEY)
    method = browser.payment_methods.create(
        params={"type": "card", "card": {"number": "4000002500003155", **CARD}}
    )
    with pytest.raises(stripe.PermissionError) as refused:
        browser.customers.create()
    assert refused.value.http_status == 403
    assert refused.value.error is not None and refused.value.error.code == "secret_key_required"

    attached = client.payment_methods.attach(method.id, params={"customer": customer.id})
    assert attached.customer == customer.id and attached.card is not None
    setup = client.setup_intents.create(
        params={
            "customer": customer.id,
            "payment_method": method.id,
            "payment_method_types": ["card"],
            "usage": "off_session",
            "confirm": True,
            "return_url": RETURN_URL,
            "expand": ["payment_method"],
        },
        options={"idempotency_key": f"setup-{run}"},
    )
    assert setup.status == "requires_action"
    assert setup.next_action is not None and setup.next_action.redirect_to_url is not None
    assert isinstance(setup.payment_method, stripe.PaymentMethod)
    redirect = complete_3ds(str(setup.next_action.redirect_to_url.url))
    assert redirect.status_code == 303
    assert f"setup_intent={setup.id}" in redirect.headers["location"]
    done = client.setup_intents.retrieve(setup.id, params={"expand": ["payment_method"]})
    assert done.status == "succeeded"

    charge_params: dict[str, Any] = {
        "amount": 1299,
        "currency": "eur",
        "customer": customer.id,
        "payment_method": method.id,
        "payment_method_types": ["card"],
        "confirm": True,
        "off_session": True,
        "metadata": {"autorenew_idempotency_key": f"ren-{run}"},
    }
    key = {"idempotency_key": f"ren-{run}"}
    paid = client.payment_intents.create(params=charge_params, options=key)
    assert (paid.status, paid.amount_received, paid.amount_capturable) == ("succeeded", 1299, 0)
    replay = client.payment_intents.create(params=charge_params, options=key)
    assert replay.id == paid.id
    assert replay.last_response is not None
    assert replay.last_response.headers["idempotent-replayed"] == "true"
    with pytest.raises(stripe.IdempotencyError):
        client.payment_intents.create(params={**charge_params, "amount": 999}, options=key)
    found = client.payment_intents.search(
        params={"query": f"metadata['autorenew_idempotency_key']:'ren-{run}'"}
    )
    assert [intent.id for intent in found.data] == [paid.id]

    assert live.event("payment_method.attached", method.id).data.object.customer == customer.id
    assert live.event("setup_intent.succeeded", setup.id).data.object.status == "succeeded"
    succeeded = live.event("payment_intent.succeeded", paid.id)
    assert (succeeded.api_version, succeeded.data.object.amount_received) == (
        "2025-03-31.basil",
        1299,
    )


def test_a_decline_is_the_sdks_card_error(live: Live) -> None:
    client = sync_client(live)
    customer = client.customers.create()
    client.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    method = client.payment_methods.create(
        params={"type": "card", "card": {"number": "4000000000009995", **CARD}}
    )
    client.payment_methods.attach(method.id, params={"customer": customer.id})
    with pytest.raises(stripe.CardError) as declined:
        client.payment_intents.create(
            params={
                "amount": 500,
                "currency": "eur",
                "customer": customer.id,
                "payment_method": method.id,
                "confirm": True,
                "off_session": "recurring",
            }
        )
    error = declined.value
    assert (error.http_status, error.code) == (402, "card_declined")
    assert error.error is not None and error.error.decline_code == "insufficient_funds"
    assert error.error.payment_intent is not None
    assert error.error.payment_intent.status == "requires_payment_method"
    failed = live.event("payment_intent.payment_failed", error.error.payment_intent.id)
    assert failed.data.object.last_payment_error.decline_code == "insufficient_funds"


def test_a_route_the_sandbox_lacks_is_stripes_invalid_request(live: Live) -> None:
    # Stripe answers an unrecognized URL with a JSON error; a plain-text 404 or 405 made
    # the SDKs report "Invalid JSON received from the Stripe API" instead.
    client = sync_client(live)
    customer = client.customers.create()
    for call in (
        lambda: client.customers.payment_methods.list(customer.id),
        lambda: client.payment_intents.cancel("pi_nothing"),
        lambda: client.customers.list(),  # a path it has, with a method it does not serve
    ):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            call()
        assert refused.value.http_status == 404
        assert "Unrecognized request URL" in str(refused.value.user_message)


def test_a_key_in_flight_is_409(live: Live) -> None:
    client = sync_client(live)
    options: Any = {
        "idempotency_key": f"slow-{uuid.uuid4().hex}",
        # This one call is slow (the sandbox holds the key meanwhile).
        "headers": {"X-Sandbox-Latency-Ms": "2000"},
    }

    def create() -> Any:
        try:
            return client.customers.create(options=options)
        except stripe.StripeError as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(create)
        # Well inside the first call's two seconds, whichever of them claims the key first.
        second = pool.submit(create)
        results = [first.result(timeout=30), second.result(timeout=30)]
    [made] = [r for r in results if isinstance(r, stripe.Customer)]
    [busy] = [r for r in results if isinstance(r, stripe.StripeError)]
    assert isinstance(busy, stripe.APIError) and busy.http_status == 409
    assert busy.error is not None and busy.error.code == "idempotency_key_in_use"
    assert client.customers.create(options={"idempotency_key": options["idempotency_key"]}).id == (
        made.id
    )


def test_a_stored_500_is_not_retried_by_the_sdk(live: Live) -> None:
    # Retries on: the SDK would retry a 500, but the stored one says Stripe-Should-Retry: false.
    client = stripe.StripeClient(API_KEY, base_addresses={"api": live.url}, max_network_retries=2)
    key = f"stored-{uuid.uuid4().hex}"
    for headers in ({"X-Sandbox-Fault": "error_stored"}, {}):
        with pytest.raises(stripe.APIError) as failed:
            client.customers.create(
                params={"metadata": {"key": key}},
                options={"idempotency_key": key, "headers": headers},
            )
        assert failed.value.http_status == 500
        assert failed.value.headers["stripe-should-retry"] == "false"
    assert failed.value.headers["idempotent-replayed"] == "true"


async def test_the_async_client_on_httpx(live: Live) -> None:
    http_client = stripe.HTTPXClient()
    try:
        await async_client_flow(live, http_client)
    finally:
        await http_client.close_async()


async def async_client_flow(live: Live, http_client: stripe.HTTPXClient) -> None:
    client = stripe.StripeClient(
        API_KEY,
        base_addresses={"api": live.url},
        http_client=http_client,
        max_network_retries=0,
    )
    customer = await client.customers.create_async(params={"email": "a@example.test"})
    method = await client.payment_methods.attach_async(
        "pm_card_authenticationRequired", params={"customer": customer.id}
    )
    setup = await client.setup_intents.create_async(
        params={
            "customer": customer.id,
            "payment_method": method.id,
            "confirm": True,
            "return_url": RETURN_URL,
        }
    )
    assert setup.status == "requires_action" and setup.next_action is not None
    assert setup.next_action.redirect_to_url is not None
    url = str(setup.next_action.redirect_to_url.url)
    assert (await asyncio.to_thread(complete_3ds, url, "fail")).status_code == 303
    failed = await client.setup_intents.retrieve_async(setup.id)
    assert failed.status == "requires_payment_method"
    assert failed.last_setup_error is not None
    assert failed.last_setup_error.code == "setup_intent_authentication_failure"

    # Off-session after a failed setup: this card asks for authentication every time.
    with pytest.raises(stripe.CardError) as needs_auth:
        await client.payment_intents.create_async(
            params={
                "amount": 700,
                "currency": "eur",
                "customer": customer.id,
                "payment_method": method.id,
                "confirm": True,
                "off_session": True,
            }
        )
    assert needs_auth.value.code == "authentication_required"

    # The customer comes back on-session and authenticates this payment.
    assert needs_auth.value.error is not None and needs_auth.value.error.payment_intent
    intent_id = needs_auth.value.error.payment_intent.id
    waiting = await client.payment_intents.confirm_async(
        intent_id, params={"return_url": RETURN_URL}
    )
    assert waiting.status == "requires_action" and waiting.next_action is not None
    assert waiting.next_action.redirect_to_url is not None
    back = await asyncio.to_thread(complete_3ds, str(waiting.next_action.redirect_to_url.url))
    assert "redirect_status=succeeded" in back.headers["location"]
    paid = await client.payment_intents.retrieve_async(intent_id)
    assert paid.status == "succeeded" and paid.latest_charge is not None

    key = f"async-{uuid.uuid4().hex}"
    both = await asyncio.gather(
        *(
            client.customers.create_async(
                options={"idempotency_key": key, "headers": {"X-Sandbox-Latency-Ms": "1500"}}
            )
            for _ in range(2)
        ),
        return_exceptions=True,
    )
    assert sorted(type(result).__name__ for result in both) == ["APIError", "Customer"]
    assert live.event("setup_intent.setup_failed", setup.id)
    assert live.event("payment_intent.succeeded", intent_id).data.object.latest_charge
