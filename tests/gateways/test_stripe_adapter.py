"""The Stripe adapter against Stripe's request and response shapes (httpx.MockTransport).

The adapter sends through Stripe's SDK, which writes lists indexed (`expand[0]=x`); the
form decoder reads them as lists, so these assertions pin what goes on the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from app.gateways.port import (
    AuthenticationRequired,
    CardDeclined,
    GatewayError,
    GatewayUnavailable,
    InvalidCardRequest,
    OutcomeUnknown,
    PaymentMethodNotFound,
    RateLimited,
)
from app.gateways.stripe import STRIPE_API_VERSION, StripeGateway
from tests.gateways.scripted_stripe import decode_form

Responder = Callable[[httpx.Request], httpx.Response]


class Stripe:
    """Records the requests the adapter sends and answers with canned Stripe documents."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answers: list[Responder] = []

    def answer(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.answers.append(lambda _request: httpx.Response(status, json=body, headers=headers))

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0)(request)

    def form(self, index: int = -1) -> dict[str, Any]:
        return decode_form(self.requests[index].content.decode())


@pytest.fixture
def stripe() -> Stripe:
    return Stripe()


@pytest.fixture
async def gateway(stripe: Stripe) -> AsyncIterator[StripeGateway]:
    adapter = StripeGateway(
        api_key="sk_test_adapter",
        base_url="https://api.stripe.test",
        transport=httpx.MockTransport(stripe.handle),
    )
    yield adapter
    await adapter.aclose()


CARD = {
    "brand": "visa",
    "last4": "4242",
    "exp_month": 12,
    "exp_year": 2030,
    "funding": "credit",
    "country": "US",
    "fingerprint": "fp123",
}
PAYMENT_METHOD = {"id": "pm_1", "object": "payment_method", "type": "card", "card": CARD}


def payment_intent(status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    return {
        "id": "pi_1",
        "object": "payment_intent",
        "amount": 1299,
        "currency": "eur",
        "status": status,
        "metadata": {"autorenew_idempotency_key": "ren_1-a1", "renewal_id": "ren_1"},
        "next_action": None,
        "last_payment_error": None,
        **extra,
    }


def setup_intent(status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    return {
        "id": "seti_1",
        "object": "setup_intent",
        "customer": "cus_1",
        "payment_method": PAYMENT_METHOD,
        "status": status,
        "usage": "off_session",
        "next_action": None,
        "last_setup_error": None,
        **extra,
    }


async def charge(gateway: StripeGateway, key: str = "ren_1-a1") -> Any:
    return await gateway.charge_off_session(
        gateway_customer_id="cus_1",
        gateway_payment_method_id="pm_1",
        amount=1299,
        currency="EUR",
        idempotency_key=key,
        metadata={"renewal_id": "ren_1"},
    )


async def test_off_session_charge_request_and_response(
    gateway: StripeGateway, stripe: Stripe
) -> None:
    stripe.answer(200, payment_intent())
    result = await charge(gateway)

    request = stripe.requests[0]
    assert request.method == "POST"
    assert str(request.url) == "https://api.stripe.test/v1/payment_intents"
    assert request.headers["authorization"] == "Bearer sk_test_adapter"
    assert request.headers["stripe-version"] == STRIPE_API_VERSION
    assert request.headers["idempotency-key"] == "ren_1-a1"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert stripe.form() == {
        "amount": "1299",
        "currency": "eur",
        "customer": "cus_1",
        "payment_method": "pm_1",
        "payment_method_types": ["card"],
        "confirm": "true",
        "off_session": "true",
        "metadata": {"renewal_id": "ren_1", "autorenew_idempotency_key": "ren_1-a1"},
    }
    assert result.charge_id == "pi_1"
    assert result.status == "succeeded"
    assert (result.amount, result.currency) == (1299, "EUR")
    assert result.idempotency_key == "ren_1-a1"


async def test_set_up_card_attaches_then_confirms_a_setup_intent(
    gateway: StripeGateway, stripe: Stripe
) -> None:
    stripe.answer(200, {**PAYMENT_METHOD, "customer": "cus_1"})
    next_action = {
        "type": "redirect_to_url",
        "redirect_to_url": {"url": "https://hooks.stripe.test/3ds/x", "return_url": "https://r"},
    }
    stripe.answer(200, setup_intent("requires_action", next_action=next_action))

    setup = await gateway.set_up_card(
        gateway_customer_id="cus_1",
        payment_method_token="pm_tok",
        return_url="https://app.test/return",
        idempotency_key="reg-1",
    )

    attach, confirm = stripe.requests
    assert attach.url.path == "/v1/payment_methods/pm_tok/attach"
    assert attach.headers["idempotency-key"] == "reg-1-attach"
    assert stripe.form(0) == {"customer": "cus_1"}
    assert confirm.url.path == "/v1/setup_intents"
    assert confirm.headers["idempotency-key"] == "reg-1-setup"
    assert stripe.form(1) == {
        "customer": "cus_1",
        "payment_method": "pm_1",
        "payment_method_types": ["card"],
        "usage": "off_session",
        "confirm": "true",
        "return_url": "https://app.test/return",
        "expand": ["payment_method"],
    }
    assert setup.status == "requires_action"
    assert setup.action_url == "https://hooks.stripe.test/3ds/x"
    assert setup.gateway_payment_method_id == "pm_1"
    assert setup.card.last4 == "4242" and setup.card.fingerprint == "fp123"


async def test_refresh_setup_is_a_get_with_the_method_expanded(
    gateway: StripeGateway, stripe: Stripe
) -> None:
    failure = {"code": "setup_intent_authentication_failure", "message": "failed"}
    stripe.answer(200, setup_intent("requires_payment_method", last_setup_error=failure))
    setup = await gateway.refresh_setup("seti_1")
    request = stripe.requests[0]
    assert request.method == "GET"
    assert request.url.path == "/v1/setup_intents/seti_1"
    assert decode_form(request.url.query.decode()) == {"expand": ["payment_method"]}
    assert "idempotency-key" not in request.headers
    assert setup.status == "failed"
    assert setup.failure_code == "setup_intent_authentication_failure"


async def test_find_charge_searches_by_metadata(gateway: StripeGateway, stripe: Stripe) -> None:
    failed = payment_intent(
        "requires_payment_method",
        id="pi_0",
        last_payment_error={"code": "card_declined", "decline_code": "insufficient_funds"},
    )
    stripe.answer(200, {"object": "search_result", "data": [failed, payment_intent()]})
    stripe.answer(200, {"object": "search_result", "data": []})

    found = await gateway.find_charge("ren_1-a1")
    assert found is not None and found.charge_id == "pi_1" and found.status == "succeeded"
    query = parse_qs(stripe.requests[0].url.query.decode())
    assert query["query"] == ["metadata['autorenew_idempotency_key']:'ren_1-a1'"]
    assert stripe.requests[0].url.path == "/v1/payment_intents/search"
    assert await gateway.find_charge("it's") is None
    assert parse_qs(stripe.requests[1].url.query.decode())["query"] == [
        "metadata['autorenew_idempotency_key']:'it\\'s'"
    ]


async def test_get_payment_method_is_a_plain_get(gateway: StripeGateway, stripe: Stripe) -> None:
    stripe.answer(200, {**PAYMENT_METHOD, "customer": "cus_9"})
    stripe.answer(200, {**PAYMENT_METHOD, "customer": {"id": "cus_9", "object": "customer"}})
    stripe.answer(200, {"id": "pm_2", "object": "payment_method", "type": "sepa_debit"})
    stripe.answer(200, {**PAYMENT_METHOD, "customer": None})

    found = await gateway.get_payment_method("pm_1")
    request = stripe.requests[0]
    assert request.method == "GET" and request.url.path == "/v1/payment_methods/pm_1"
    assert request.url.query == b"" and request.content == b""
    assert "idempotency-key" not in request.headers
    assert found.gateway_payment_method_id == "pm_1" and found.type == "card"
    assert found.gateway_customer_id == "cus_9"
    assert found.card is not None
    assert (found.card.brand, found.card.last4, found.card.exp_month, found.card.exp_year) == (
        "visa",
        "4242",
        12,
        2030,
    )
    assert found.card.fingerprint == "fp123"
    expanded = await gateway.get_payment_method("pm_1")
    assert expanded.gateway_customer_id == "cus_9"
    other = await gateway.get_payment_method("pm_2")
    assert other.type == "sepa_debit" and other.card is None
    detached = await gateway.get_payment_method("pm_1")
    assert detached.gateway_customer_id is None


async def test_get_payment_method_not_found(gateway: StripeGateway, stripe: Stripe) -> None:
    missing = {
        "error": {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": "No such PaymentMethod: 'pm_gone'",
            "param": "payment_method",
        }
    }
    stripe.answer(404, missing)
    with pytest.raises(PaymentMethodNotFound):
        await gateway.get_payment_method("pm_gone")
    with pytest.raises(PaymentMethodNotFound):  # never sent: no such id can exist
        await gateway.get_payment_method("pm_1/../../customers/cus_2")
    assert len(stripe.requests) == 1
    stripe.answer(503, {"error": {"type": "api_error", "message": "down"}})
    with pytest.raises(OutcomeUnknown):
        await gateway.get_payment_method("pm_1")
    stripe.answer(429, {"error": {"type": "rate_limit_error"}}, {"Retry-After": "2"})
    with pytest.raises(RateLimited):
        await gateway.get_payment_method("pm_1")


async def test_ensure_customer(gateway: StripeGateway, stripe: Stripe) -> None:
    assert await gateway.ensure_customer(customer_ref="c1", existing_id="cus_known") == "cus_known"
    assert stripe.requests == []
    stripe.answer(200, {"id": "cus_new", "object": "customer"})
    assert await gateway.ensure_customer(customer_ref="c1", existing_id=None) == "cus_new"
    assert stripe.requests[0].headers["idempotency-key"] == "autorenew-customer-c1"
    assert stripe.form() == {"metadata": {"autorenew_customer_id": "c1"}}


async def test_tokenize_card_keeps_the_number_out_of_the_key(
    gateway: StripeGateway, stripe: Stripe
) -> None:
    stripe.answer(200, PAYMENT_METHOD)
    token = await gateway.tokenize_card(
        number="4242424242424242", exp_month=12, exp_year=2030, cvc="123"
    )
    assert token == "pm_1"
    assert stripe.form() == {
        "type": "card",
        "card": {"number": "4242424242424242", "exp_month": "12", "exp_year": "2030", "cvc": "123"},
    }
    assert "4242" not in stripe.requests[0].headers["idempotency-key"]


def card_error(code: str, decline_code: str | None = None, **extra: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"type": "card_error", "code": code, "message": "Declined."}
    if decline_code:
        error["decline_code"] = decline_code
    error.update(extra)
    return {"error": error}


DECLINED_INTENT = {"payment_intent": payment_intent("requires_payment_method")}


@pytest.mark.parametrize(
    ("body", "code", "decline_code", "hard"),
    [
        (card_error("card_declined", "generic_decline", **DECLINED_INTENT), "card_declined",
         "generic_decline", False),
        (card_error("card_declined", "insufficient_funds", advice_code="try_again_later"),
         "card_declined", "insufficient_funds", False),
        (card_error("expired_card", "expired_card"), "expired_card", "expired_card", True),
        (card_error("incorrect_cvc", "incorrect_cvc"), "incorrect_cvc", "incorrect_cvc", True),
        (card_error("card_declined", "lost_card", advice_code="do_not_try_again"),
         "card_declined", "lost_card", True),
        (card_error("card_declined", "do_not_honor"), "card_declined", "do_not_honor", False),
        (card_error("card_declined", "generic_decline", advice_code="do_not_try_again"),
         "card_declined", "generic_decline", True),
        (card_error("processing_error"), "processing_error", None, False),
    ],
)  # fmt: skip
async def test_declines(
    gateway: StripeGateway,
    stripe: Stripe,
    body: dict[str, Any],
    code: str,
    decline_code: str | None,
    hard: bool,
) -> None:
    stripe.answer(402, body)
    with pytest.raises(CardDeclined) as caught:
        await charge(gateway)
    assert (caught.value.code, caught.value.decline_code, caught.value.hard) == (
        code,
        decline_code,
        hard,
    )
    if "payment_intent" in body["error"]:
        assert caught.value.charge_id == "pi_1"


async def test_authentication_required(gateway: StripeGateway, stripe: Stripe) -> None:
    stripe.answer(
        402, card_error("authentication_required", "authentication_required", **DECLINED_INTENT)
    )
    with pytest.raises(AuthenticationRequired) as caught:
        await charge(gateway)
    assert caught.value.charge_id == "pi_1"
    assert caught.value.code == "authentication_required"


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "code"),
    [
        (404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                         "message": "No such PaymentMethod: 'pm_x'"}},
         None, InvalidCardRequest, "resource_missing"),
        (400, {"error": {"type": "invalid_request_error", "code": "parameter_missing"}},
         None, InvalidCardRequest, "parameter_missing"),
        (400, {"error": {"type": "idempotency_error", "message": "Keys for idempotent..."}},
         None, OutcomeUnknown, "idempotency_error"),
        (401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}},
         None, GatewayUnavailable, "gateway_authentication_failed"),
        (403, {"error": {"type": "invalid_request_error", "message": "restricted key"}},
         None, GatewayUnavailable, "gateway_authentication_failed"),
        (409, {"error": {"type": "invalid_request_error", "code": "idempotency_key_in_use"}},
         None, OutcomeUnknown, "gateway_outcome_unknown"),
        (424, {"error": {"type": "api_error", "code": "external_dependency_failed"}},
         None, OutcomeUnknown, "gateway_outcome_unknown"),
        (400, {"error": {"type": "invalid_request_error", "code": "lock_timeout"}},
         {"Stripe-Should-Retry": "true"}, OutcomeUnknown, "gateway_outcome_unknown"),
        (402, {"error": {"type": "card_error", "code": "card_declined"}},
         {"Stripe-Should-Retry": "true"}, OutcomeUnknown, "gateway_outcome_unknown"),
        (500, {"error": {"type": "api_error", "message": "boom"}},
         None, OutcomeUnknown, "gateway_outcome_unknown"),
        (500, {"error": {"type": "api_error", "message": "boom"}},
         {"Stripe-Should-Retry": "false"}, OutcomeUnknown, "gateway_outcome_unknown"),
        (503, None, None, OutcomeUnknown, "gateway_outcome_unknown"),
        (429, {"error": {"type": "invalid_request_error", "code": "rate_limit"}},
         {"Retry-After": "7"}, RateLimited, "rate_limited"),
    ],
)  # fmt: skip
async def test_error_mapping(
    gateway: StripeGateway,
    stripe: Stripe,
    status: int,
    body: Any,
    headers: dict[str, str] | None,
    expected: type[GatewayError],
    code: str,
) -> None:
    stripe.answer(status, body, headers)
    with pytest.raises(GatewayError) as caught:
        await charge(gateway)
    assert type(caught.value) is expected
    assert caught.value.code == code
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == 7
    if isinstance(caught.value, OutcomeUnknown):
        # Looked up, not re-sent, where a re-send can only meet the same answer again.
        replayed = (headers or {}).get("Stripe-Should-Retry") == "false"
        assert caught.value.look_up is (replayed or code == "idempotency_error")


async def test_retry_after_as_an_http_date(gateway: StripeGateway, stripe: Stripe) -> None:
    stripe.answer(
        429,
        {"error": {"type": "invalid_request_error"}},
        {"Retry-After": "Tue, 24 Nov 2026 09:00:30 GMT", "Date": "Tue, 24 Nov 2026 09:00:00 GMT"},
    )
    with pytest.raises(RateLimited) as caught:
        await charge(gateway)
    assert caught.value.retry_after == 30


async def test_non_json_error_pages(gateway: StripeGateway, stripe: Stripe) -> None:
    stripe.answers.append(lambda _r: httpx.Response(502, text="<html>Bad gateway</html>"))
    with pytest.raises(OutcomeUnknown):
        await charge(gateway)
    # A 2xx means Stripe acted; what it did is unreadable, so it is not known either.
    stripe.answers.append(lambda _r: httpx.Response(200, text="not json"))
    with pytest.raises(OutcomeUnknown):
        await charge(gateway)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ConnectError("refused"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
)
async def test_transport_failures_are_outcome_unknown(
    gateway: StripeGateway, stripe: Stripe, failure: httpx.TransportError
) -> None:
    def fail(_request: httpx.Request) -> httpx.Response:
        raise failure

    stripe.answers.append(fail)
    with pytest.raises(OutcomeUnknown):
        await charge(gateway)


async def test_charge_needs_a_positive_amount(gateway: StripeGateway, stripe: Stripe) -> None:
    with pytest.raises(InvalidCardRequest):
        await gateway.charge_off_session(
            gateway_customer_id="cus_1",
            gateway_payment_method_id="pm_1",
            amount=0,
            currency="EUR",
            idempotency_key="k",
            metadata={},
        )
    assert stripe.requests == []


@pytest.mark.parametrize(
    "token", ["pm_1/../../customers/cus_2", "pm_1?x=1", "tok_visa", "pm_ 1", ""]
)
async def test_ids_from_outside_cannot_steer_the_request(
    gateway: StripeGateway, stripe: Stripe, token: str
) -> None:
    with pytest.raises(InvalidCardRequest) as caught:
        await gateway.set_up_card(
            gateway_customer_id="cus_1",
            payment_method_token=token,
            return_url="https://r.test",
            idempotency_key="k",
        )
    assert caught.value.code == "invalid_gateway_id"
    with pytest.raises(InvalidCardRequest):
        await gateway.refresh_setup("seti_1/../../payment_intents")
    assert stripe.requests == []


REDIRECT = {
    "type": "redirect_to_url",
    "redirect_to_url": {"url": "https://hooks.stripe.test/3ds/pi_1", "return_url": "https://r"},
}


async def test_an_on_session_charge_may_ask_for_3d_secure(
    gateway: StripeGateway, stripe: Stripe
) -> None:
    stripe.answer(200, payment_intent("requires_action", next_action=REDIRECT))
    result = await gateway.charge_on_session(
        gateway_customer_id="cus_1",
        gateway_payment_method_id="pm_1",
        amount=1299,
        currency="EUR",
        idempotency_key="pay-1",
        return_url="https://app.test/renewals/ren_1/return",
        metadata={"renewal_id": "ren_1"},
    )
    request = stripe.requests[0]
    assert (request.method, request.url.path) == ("POST", "/v1/payment_intents")
    assert request.headers["idempotency-key"] == "pay-1"
    # The customer is present: no off_session, and a return_url for the 3-D Secure page.
    assert stripe.form() == {
        "amount": "1299",
        "currency": "eur",
        "customer": "cus_1",
        "payment_method": "pm_1",
        "payment_method_types": ["card"],
        "confirm": "true",
        "return_url": "https://app.test/renewals/ren_1/return",
        "metadata": {"renewal_id": "ren_1", "autorenew_idempotency_key": "pay-1"},
    }
    assert result.status == "requires_action"
    assert result.action_url == "https://hooks.stripe.test/3ds/pi_1"


async def test_confirm_on_session_confirms_the_same_intent(
    gateway: StripeGateway, stripe: Stripe
) -> None:
    stripe.answer(
        200, payment_intent("requires_action", next_action=REDIRECT, payment_method="pm_2")
    )
    result = await gateway.confirm_on_session(
        "pi_1",
        return_url="https://app.test/return",
        idempotency_key="confirm-1",
        gateway_payment_method_id="pm_2",
    )
    request = stripe.requests[0]
    assert (request.method, request.url.path) == ("POST", "/v1/payment_intents/pi_1/confirm")
    assert request.headers["idempotency-key"] == "confirm-1"
    assert stripe.form() == {"return_url": "https://app.test/return", "payment_method": "pm_2"}
    assert (result.charge_id, result.status) == ("pi_1", "requires_action")
    assert result.gateway_payment_method_id == "pm_2"

    stripe.answer(200, payment_intent("requires_action", next_action=REDIRECT))
    await gateway.confirm_on_session("pi_1", return_url="https://r", idempotency_key="c-2")
    assert stripe.form() == {"return_url": "https://r"}  # the intent's own card


async def test_get_charge_after_the_customer_returns(
    gateway: StripeGateway, stripe: Stripe
) -> None:
    failure = {
        "type": "card_error",
        "code": "payment_intent_authentication_failure",
        "message": "The customer failed authentication.",
    }
    stripe.answer(200, payment_intent("requires_payment_method", last_payment_error=failure))
    charge = await gateway.get_charge("pi_1")
    request = stripe.requests[0]
    assert (request.method, request.url.path) == ("GET", "/v1/payment_intents/pi_1")
    assert "idempotency-key" not in request.headers
    assert charge.status == "failed"  # took no money; can be confirmed again
    assert charge.failure_code == "payment_intent_authentication_failure"
    assert charge.failure_message == "The customer failed authentication."
    assert charge.metadata["renewal_id"] == "ren_1"
    with pytest.raises(InvalidCardRequest):
        await gateway.get_charge("pi_1/../../customers")
    with pytest.raises(InvalidCardRequest):
        await gateway.confirm_on_session("seti_1", return_url="https://r", idempotency_key="k")
    assert len(stripe.requests) == 1


async def test_the_sdk_never_retries_by_itself(gateway: StripeGateway, stripe: Stripe) -> None:
    """Retries belong to the renewal engine, which knows whether the first send may have
    charged: a 409 or a 500 with Stripe-Should-Retry: true is handed back, not re-sent."""
    stripe.answer(
        409, {"error": {"type": "invalid_request_error"}}, {"Stripe-Should-Retry": "true"}
    )
    with pytest.raises(OutcomeUnknown):
        await charge(gateway)
    assert len(stripe.requests) == 1
