"""The sandbox's HTTP surface: Stripe's v1 subset, test triggers, the ledger views.

Stripe's routes (key: s = secret only, p = publishable too, c = publishable with the
intent's client_secret):
    s POST /v1/customers                     s GET /v1/customers/{id}
    p POST /v1/payment_methods               s GET /v1/payment_methods/{id}
    s POST /v1/payment_methods/{id}          (update: expiry, billing name, metadata)
    s POST /v1/payment_methods/{id}/attach   s POST /v1/payment_methods/{id}/detach
    s POST /v1/setup_intents                 c GET /v1/setup_intents/{id}
    c POST /v1/setup_intents/{id}/confirm
    s POST /v1/payment_intents               c GET /v1/payment_intents/{id}
    c POST /v1/payment_intents/{id}/confirm  s GET /v1/payment_intents/search?query=…
    s GET  /v1/charges/{id}                  s POST /v1/refunds
    s GET  /v1/events                        s GET /v1/events/{id}
Sandbox-only (secret key):
    POST /_test/payment_methods/{id}/card_updater   new expiry / last 4 (automatically_updated)
    POST /_test/charges/{id}/dispute                a chargeback (charge.dispute.created)
    GET  /_ledger/charges, /_ledger/summary         inspection for tests and benchmarks
The 3-D Secure page: `challenge.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.sandbox import charges, events, inspection, methods, payments, setups
from app.sandbox.context import Context
from app.sandbox.handlers import (
    Access,
    Handler,
    Outcome,
    PostOperation,
    check_client_secret,
    guarded,
    limit,
    post,
    query,
    read,
)
from app.sandbox.objects import customer_json, payment_method_json
from app.sandbox.params import expands, text
from app.sandbox.runtime import runtime_of
from app.sandbox.search import parse_query

ObjectOperation = Callable[[AsyncSession, Context, str, dict[str, Any]], Awaitable[Outcome]]


def _on_object(operation: ObjectOperation) -> Handler:
    """POST /v1/<objects>/{id}/…: the id from the path, then as `post`."""

    async def handler(request: Request) -> Response:
        object_id = request.path_params["id"]

        async def bound(session: AsyncSession, ctx: Context, params: dict[str, Any]) -> Outcome:
            return await operation(session, ctx, object_id, params)

        return await post(request, bound)

    return handler


def _creating(operation: PostOperation) -> Handler:
    async def handler(request: Request) -> Response:
        return await post(request, operation)

    return handler


# --- Customers and payment methods -------------------------------------------------------


async def retrieve_customer(request: Request) -> Response:
    async def operation(session: AsyncSession, _ctx: Context) -> dict[str, Any]:
        customer = await methods.get_customer(session, request.path_params["id"], "id")
        return customer_json(customer)

    return await read(request, operation)


async def retrieve_payment_method(request: Request) -> Response:
    async def operation(session: AsyncSession, ctx: Context) -> dict[str, Any]:
        method = await methods.get_payment_method(session, ctx, request.path_params["id"], "id")
        return payment_method_json(method)

    return await read(request, operation)


# --- Intents: a publishable key needs the intent's client secret ---------------------------


async def confirm_setup_intent(request: Request) -> Response:
    intent_id = request.path_params["id"]

    async def operation(session: AsyncSession, ctx: Context, params: dict[str, Any]) -> Outcome:
        intent = await setups.get_setup_intent(session, intent_id)
        check_client_secret(request, params, intent.client_secret, "setup_intent")
        return await setups.confirm_setup_intent(session, ctx, intent_id, params)

    return await post(request, operation)


async def retrieve_setup_intent(request: Request) -> Response:
    intent_id, params = request.path_params["id"], query(request)

    async def operation(session: AsyncSession, ctx: Context) -> dict[str, Any]:
        intent = await setups.get_setup_intent(session, intent_id)
        check_client_secret(request, params, intent.client_secret, "setup_intent")
        expand = expands(params, "payment_method")
        return await setups.retrieve_setup_intent(session, ctx, intent_id, expand)

    return await read(request, operation)


async def confirm_payment_intent(request: Request) -> Response:
    intent_id = request.path_params["id"]

    async def operation(session: AsyncSession, ctx: Context, params: dict[str, Any]) -> Outcome:
        intent = await payments.get_payment_intent(session, intent_id)
        check_client_secret(request, params, intent.client_secret, "payment_intent")
        return await payments.confirm_payment_intent(session, ctx, intent_id, params)

    return await post(request, operation)


async def retrieve_payment_intent(request: Request) -> Response:
    intent_id, params = request.path_params["id"], query(request)

    async def operation(session: AsyncSession, ctx: Context) -> dict[str, Any]:
        intent = await payments.get_payment_intent(session, intent_id)
        check_client_secret(request, params, intent.client_secret, "payment_intent")
        expand = expands(params, "payment_method")
        return await payments.retrieve_payment_intent(session, ctx, intent_id, expand)

    return await read(request, operation)


async def search_payment_intents(request: Request) -> Response:
    params = query(request)
    clauses = parse_query(text(params, "query") or "")
    count = limit(params, 10, 100)

    async def operation(session: AsyncSession, ctx: Context) -> dict[str, Any]:
        return {
            "object": "search_result",
            "url": "/v1/payment_intents/search",
            "has_more": False,
            "next_page": None,
            "data": await payments.search_payment_intents(session, ctx, clauses, count),
        }

    return await read(request, operation)


# --- Charges and events -----------------------------------------------------------------


async def retrieve_charge(request: Request) -> Response:
    async def operation(session: AsyncSession, _ctx: Context) -> dict[str, Any]:
        return await charges.retrieve_charge(session, request.path_params["id"])

    return await read(request, operation)


async def list_events(request: Request) -> Response:
    params = query(request)
    count = limit(params, 10, 100)

    async def operation(session: AsyncSession, _ctx: Context) -> dict[str, Any]:
        data = await events.list_events(session, text(params, "type"), count)
        return {"object": "list", "url": "/v1/events", "has_more": False, "data": data}

    return await read(request, operation)


async def retrieve_event(request: Request) -> Response:
    async def operation(session: AsyncSession, _ctx: Context) -> dict[str, Any]:
        return await events.get_event(session, request.path_params["id"])

    return await read(request, operation)


# --- The ledger views -------------------------------------------------------------------


async def ledger_charges(request: Request) -> Response:
    params = query(request)
    count = limit(params, 1000, 100_000)

    async def operation(session: AsyncSession, _ctx: Context) -> dict[str, Any]:
        data = await inspection.list_charges(session, text(params, "status"), count)
        return {"object": "list", "data": data}

    return await read(request, operation)


async def ledger_summary(request: Request) -> Response:
    async def operation(session: AsyncSession, _ctx: Context) -> dict[str, Any]:
        # Refusals leave no row in the ledger: this process's count since it started.
        return {
            **await inspection.summary(session),
            "rate_limited": runtime_of(request).limiter.refused,
        }

    return await read(request, operation)


def _api(path: str, handler: Handler, method: str, access: Access = "secret") -> Route:
    return Route(path, guarded(handler, access), methods=[method])


def api_routes() -> list[BaseRoute]:
    return [
        _api("/v1/customers", _creating(methods.create_customer), "POST"),
        _api("/v1/customers/{id}", retrieve_customer, "GET"),
        _api(
            "/v1/payment_methods", _creating(methods.create_payment_method), "POST", "publishable"
        ),
        _api("/v1/payment_methods/{id}", retrieve_payment_method, "GET"),
        _api("/v1/payment_methods/{id}", _on_object(methods.update_payment_method), "POST"),
        _api("/v1/payment_methods/{id}/attach", _on_object(methods.attach_payment_method), "POST"),
        _api("/v1/payment_methods/{id}/detach", _on_object(methods.detach_payment_method), "POST"),
        _api("/v1/setup_intents", _creating(setups.create_setup_intent), "POST"),
        _api("/v1/setup_intents/{id}", retrieve_setup_intent, "GET", "client_secret"),
        _api("/v1/setup_intents/{id}/confirm", confirm_setup_intent, "POST", "client_secret"),
        _api("/v1/payment_intents", _creating(payments.create_payment_intent), "POST"),
        # Before /{id}: Starlette matches in order and "search" would be taken for an id.
        _api("/v1/payment_intents/search", search_payment_intents, "GET"),
        _api("/v1/payment_intents/{id}", retrieve_payment_intent, "GET", "client_secret"),
        _api("/v1/payment_intents/{id}/confirm", confirm_payment_intent, "POST", "client_secret"),
        _api("/v1/charges/{id}", retrieve_charge, "GET"),
        _api("/v1/refunds", _creating(charges.create_refund), "POST"),
        _api("/v1/events", list_events, "GET"),
        _api("/v1/events/{id}", retrieve_event, "GET"),
        _api(
            "/_test/payment_methods/{id}/card_updater",
            _on_object(methods.run_card_updater),
            "POST",
        ),
        _api("/_test/charges/{id}/dispute", _on_object(charges.dispute_charge), "POST"),
        _api("/_ledger/charges", ledger_charges, "GET"),
        _api("/_ledger/summary", ledger_summary, "GET"),
    ]
