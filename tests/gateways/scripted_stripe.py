"""A scripted Stripe for driving the real adapter over httpx.MockTransport.

It keeps PaymentIntents as Stripe does, as far as the service uses them: idempotency keys
(a repeat with the same parameters replays the stored answer, with other parameters is a
400 `idempotency_error`), search by metadata, retrieve, on-session confirmation with a
3-D Secure redirect. Faults are scripted per request: `fail_next(...)` lines up what the
next matching request meets — answered without being processed (a rejected API key, a 429)
or processed and then answered badly (a lost answer, a 424, a body that is not JSON, a 500
that Stripe stores and replays). `charges()` counts the money actually taken.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx

API_KEY = "sk_test_scripted"
BASE_URL = "https://api.stripe.test"
# Behaviour of a saved card, chosen by its gateway payment-method id's prefix.
DECLINED_PM = "pm_declined"
AUTH_PM = "pm_auth"

Respond = Callable[[httpx.Request], httpx.Response]


def decode_form(body: str) -> dict[str, Any]:
    """Stripe's bracketed form → nested dicts; `k[]` and `k[0]` (the official SDK's) keys
    become lists. Lists hold plain values only, as in everything the service sends."""
    result: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = key.replace("]", "").split("[")
        node: Any = result
        for part, following in itertools.pairwise(parts):
            node = node.setdefault(part, [] if following == "" or following.isdigit() else {})
        if isinstance(node, list):
            node.append(value)
        else:
            node[parts[-1]] = value
    return result


def stripe_error(
    status: int, error_type: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> httpx.Response:
    return httpx.Response(
        status,
        json={"error": {"type": error_type, "message": message, **extra}},
        headers=headers,
    )


@dataclass
class Fault:
    """What the next request matching `operation` meets."""

    operation: Literal["charge", "confirm", "search", "retrieve", "any"]
    # Stripe acts on the request (and stores its answer under the key) before `answer`.
    processed: bool
    # The answer the client sees instead of Stripe's; None with processed: the answer is
    # lost (a read timeout after Stripe acted).
    answer: Respond | None
    # Store `answer` as the key's result, so that repeats replay it (Stripe's stored 500).
    stored: bool = False


@dataclass
class ScriptedStripe:
    valid_keys: set[str] = field(default_factory=lambda: {API_KEY})
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Idempotency key → (the request's parameters, the stored answer).
    keys: dict[str, tuple[dict[str, Any], httpx.Response]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    # Searches that still answer empty (Stripe's search index lags behind writes).
    search_lag: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # --- what tests use ---------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def charges(self) -> list[dict[str, Any]]:
        """PaymentIntents that took money."""
        return [intent for intent in self.intents.values() if intent["status"] == "succeeded"]

    def fail_next(
        self,
        operation: Literal["charge", "confirm", "search", "retrieve", "any"],
        answer: Respond | None,
        *,
        processed: bool,
        stored: bool = False,
    ) -> None:
        self.faults.append(Fault(operation, processed, answer, stored))

    def sent(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]

    def complete_authentication(self, intent_id: str, *, succeed: bool = True) -> None:
        """The customer finishes (or fails) 3-D Secure on the redirect page."""
        intent = self.intents[intent_id]
        assert intent["status"] == "requires_action"
        intent["next_action"] = None
        if succeed:
            intent["status"] = "succeeded"
        else:
            intent["status"] = "requires_payment_method"
            intent["last_payment_error"] = {
                "type": "card_error",
                "code": "payment_intent_authentication_failure",
            }

    # --- the server ---------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        authorization = request.headers.get("authorization", "")
        if authorization.removeprefix("Bearer ") not in self.valid_keys:
            # Refused before anything runs: nothing is stored under the key.
            return stripe_error(401, "invalid_request_error", "Invalid API Key provided.")
        operation = self._operation(request)
        fault = next((f for f in self.faults if f.operation in (operation, "any")), None)
        if fault is None:
            return self._serve(request, operation)
        self.faults.remove(fault)
        if not fault.processed:
            assert fault.answer is not None
            return fault.answer(request)
        served = self._serve(
            request, operation, stored_answer=fault.answer if fault.stored else None
        )
        if fault.answer is None:
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return served if fault.stored else fault.answer(request)

    def _operation(self, request: httpx.Request) -> str:
        path = request.url.path
        if request.method == "POST" and path == "/v1/payment_intents":
            return "charge"
        if request.method == "POST" and path.endswith("/confirm"):
            return "confirm"
        if path == "/v1/payment_intents/search":
            return "search"
        if request.method == "GET" and path.startswith("/v1/payment_intents/"):
            return "retrieve"
        raise AssertionError(f"the scripted Stripe does not serve {request.method} {path}")

    def _serve(
        self, request: httpx.Request, operation: str, stored_answer: Respond | None = None
    ) -> httpx.Response:
        if request.method == "GET":
            return self._read(request, operation)
        params = decode_form(request.content.decode())
        key = request.headers["idempotency-key"]
        if key in self.keys:
            first_params, first_answer = self.keys[key]
            if first_params != params:
                return stripe_error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with.",
                )
            return httpx.Response(
                first_answer.status_code,
                content=first_answer.content,
                headers={**first_answer.headers, "Idempotent-Replayed": "true"},
            )
        if operation == "charge":
            answer = self._create(params)
        else:
            answer = self._confirm(request.url.path.split("/")[3], params)
        if stored_answer is not None:
            answer = stored_answer(request)
        self.keys[key] = (params, answer)
        return answer

    def _read(self, request: httpx.Request, operation: str) -> httpx.Response:
        if operation == "search":
            query = dict(parse_qsl(request.url.query.decode()))["query"]
            match = re.fullmatch(r"metadata\['([^']+)'\]:'((?:[^'\\]|\\.)*)'", query)
            assert match, query
            field_name, value = match.group(1), match.group(2).replace("\\'", "'")
            if self.search_lag > 0:
                self.search_lag -= 1
                found: list[dict[str, Any]] = []
            else:
                found = [i for i in self.intents.values() if i["metadata"].get(field_name) == value]
            return httpx.Response(200, json={"object": "search_result", "data": found})
        intent = self.intents.get(request.url.path.split("/")[3])
        if intent is None:
            return stripe_error(404, "invalid_request_error", "No such payment_intent")
        return httpx.Response(200, json=intent)

    def _create(self, params: dict[str, Any]) -> httpx.Response:
        intent = {
            "id": f"pi_{next(self._ids)}",
            "object": "payment_intent",
            "amount": int(params["amount"]),
            "amount_capturable": 0,
            "currency": params["currency"],
            "customer": params.get("customer"),
            "payment_method": params.get("payment_method"),
            "metadata": params.get("metadata", {}),
            "status": "requires_confirmation",
            "next_action": None,
            "last_payment_error": None,
            "off_session": params.get("off_session") == "true",
        }
        self.intents[intent["id"]] = intent
        return self._confirm(intent["id"], params)

    def _confirm(self, intent_id: str, params: dict[str, Any]) -> httpx.Response:
        intent = self.intents[intent_id]
        if intent["status"] == "succeeded":
            return stripe_error(
                400,
                "invalid_request_error",
                "This PaymentIntent's payment was already completed.",
                code="payment_intent_unexpected_state",
            )
        method = str(params.get("payment_method") or intent["payment_method"])
        intent["payment_method"] = method
        on_session = params.get("off_session") != "true"
        if method.startswith(DECLINED_PM):
            intent["status"] = "requires_payment_method"
            error = {"code": "card_declined", "decline_code": "insufficient_funds"}
            intent["last_payment_error"] = {"type": "card_error", **error}
            return stripe_error(
                402,
                "card_error",
                "Your card has insufficient funds.",
                payment_intent=intent,
                **error,
            )
        if method.startswith(AUTH_PM) and not on_session:
            intent["status"] = "requires_payment_method"
            error = {"code": "authentication_required", "decline_code": "authentication_required"}
            intent["last_payment_error"] = {"type": "card_error", **error}
            return stripe_error(
                402, "card_error", "This payment requires authentication.", payment_intent=intent,
                **error,
            )  # fmt: skip
        if method.startswith(AUTH_PM):
            intent["status"] = "requires_action"
            intent["next_action"] = {
                "type": "redirect_to_url",
                "redirect_to_url": {
                    "url": f"https://hooks.stripe.test/3ds/{intent_id}",
                    "return_url": params.get("return_url"),
                },
            }
            return httpx.Response(200, json=intent)
        intent["status"] = "succeeded"
        intent["last_payment_error"] = None
        return httpx.Response(200, json=intent)


def not_json(status: int = 200) -> Respond:
    return lambda _request: httpx.Response(status, text="<html>upstream proxy page</html>")


def error_answer(
    status: int, error_type: str = "api_error", headers: dict[str, str] | None = None, **extra: Any
) -> Respond:
    return lambda _request: stripe_error(status, error_type, f"HTTP {status}", headers, **extra)
