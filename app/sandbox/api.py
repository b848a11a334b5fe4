"""The sandbox's HTTP surface: Stripe's v1 subset, the 3-D Secure page, the ledger view.

POST /v1/customers                          GET /v1/customers/{id}
POST /v1/payment_methods                    GET /v1/payment_methods/{id}
POST /v1/payment_methods/{id}/attach
POST /v1/setup_intents                      GET /v1/setup_intents/{id}
POST /v1/payment_intents                    GET /v1/payment_intents/{id}
GET  /v1/payment_intents/search?query=…
GET  /3ds/{setup_intent}?token=…            the challenge page (HTML)
POST /3ds/{setup_intent}                    complete or fail, then back to return_url
GET  /_ledger/charges, /_ledger/summary     sandbox-only inspection for tests/benchmarks
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.core.ids import new_id
from app.gateways.stripe_form import FormError, decode_form
from app.sandbox import inspection, ledger
from app.sandbox.app import sandbox_of
from app.sandbox.challenge import challenge_routes
from app.sandbox.edge import check_api_key, internal_error
from app.sandbox.idempotency import request_digest, run_once
from app.sandbox.ledger import Context, Outcome
from app.sandbox.objects import (
    StripeError,
    customer_json,
    invalid_request,
    payment_method_json,
)
from app.sandbox.search import parse_query

PostOperation = Callable[[AsyncSession, Context, dict[str, Any]], Awaitable[Outcome]]
Handler = Callable[[Request], Awaitable[Response]]


def stripe_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def guarded(handler: Handler) -> Handler:
    """Key check, rate limit and latency for every API call; Stripe errors rendered."""

    async def wrapped(request: Request) -> Response:
        sandbox = sandbox_of(request)
        try:
            check_api_key(request)
            sandbox.limiter.check()
            delay = sandbox.chaos.latency_seconds()
            if delay:
                await asyncio.sleep(delay)
            response = await handler(request)
        except StripeError as error:
            response = stripe_response(error.status, error.document(), error.headers)
        # As Stripe does: an id per request, for the adapter's logs.
        response.headers["Request-Id"] = new_id("req", 14)
        return response

    return wrapped


def _relative_path(request: Request) -> str:
    # The same ledger is reached at /sandbox/v1/… (mounted) and /v1/… (alone): idempotency
    # compares the path inside the sandbox, so both agree on what a repeat is.
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def _form(request: Request) -> dict[str, Any]:
    try:
        return decode_form((await request.body()).decode("utf-8"))
    except (FormError, UnicodeDecodeError) as exc:
        raise invalid_request(f"Could not read the form body: {exc}") from exc


async def post(request: Request, operation: PostOperation) -> Response:
    sandbox = sandbox_of(request)
    params = await _form(request)
    key = request.headers.get("idempotency-key")
    ctx = sandbox.context(request, idempotency_key=key)
    fault = sandbox.chaos.fault_for(request)
    if fault == "error_before":
        raise internal_error()
    headers: dict[str, str] = {}
    if key is None:
        async with sandbox.transaction() as session:
            status, body = await operation(session, ctx, params)
    else:
        digest = request_digest(sandbox.secret, "POST", _relative_path(request), params)
        status, body, replayed = await run_once(
            sandbox.transaction,
            key=key,
            digest=digest,
            now=ctx.now,
            operation=lambda session: operation(session, ctx, params),
        )
        headers["Idempotency-Key"] = key
        if replayed:
            headers["Idempotent-Replayed"] = "true"
    if fault == "error_after":
        raise internal_error()
    if fault == "hang_after":
        await asyncio.sleep(sandbox.config.fault_hang_seconds)
    return stripe_response(status, body, headers)


def _expand(request: Request, field: str) -> bool:
    return field in request.query_params.getlist("expand[]")


async def _read(
    request: Request, read: Callable[[AsyncSession, Context], Awaitable[dict[str, Any]]]
) -> Response:
    sandbox = sandbox_of(request)
    async with sandbox.transaction() as session:
        body = await read(session, sandbox.context(request))
    return stripe_response(200, body)


async def create_customer(request: Request) -> Response:
    return await post(request, ledger.create_customer)


async def retrieve_customer(request: Request) -> Response:
    async def read(session: AsyncSession, _ctx: Context) -> dict[str, Any]:
        return customer_json(await ledger.get_customer(session, request.path_params["id"], "id"))

    return await _read(request, read)


async def create_payment_method(request: Request) -> Response:
    return await post(request, ledger.create_payment_method)


async def retrieve_payment_method(request: Request) -> Response:
    async def read(session: AsyncSession, ctx: Context) -> dict[str, Any]:
        method = await ledger.get_payment_method(session, ctx, request.path_params["id"], "id")
        return payment_method_json(method)

    return await _read(request, read)


async def attach_payment_method(request: Request) -> Response:
    method_id = request.path_params["id"]

    async def attach(session: AsyncSession, ctx: Context, params: dict[str, Any]) -> Outcome:
        return await ledger.attach_payment_method(session, ctx, method_id, params)

    return await post(request, attach)


async def create_setup_intent(request: Request) -> Response:
    return await post(request, ledger.create_setup_intent)


def _retriever(
    read: Callable[[AsyncSession, Context, str, bool], Awaitable[dict[str, Any]]],
) -> Handler:
    """GET /v1/<intents>/{id}, with `expand[]=payment_method` honoured."""

    async def handler(request: Request) -> Response:
        intent_id = request.path_params["id"]
        expand = _expand(request, "payment_method")

        async def bound(session: AsyncSession, ctx: Context) -> dict[str, Any]:
            return await read(session, ctx, intent_id, expand)

        return await _read(request, bound)

    return handler


async def create_payment_intent(request: Request) -> Response:
    return await post(request, ledger.create_payment_intent)


def _limit(request: Request, default: int, ceiling: int) -> int:
    raw = request.query_params.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= ceiling:
        raise invalid_request(f"limit must be between 1 and {ceiling}.", param="limit")
    return int(raw)


async def search_payment_intents(request: Request) -> Response:
    clauses = parse_query(request.query_params.get("query", ""))
    limit = _limit(request, 10, 100)

    async def read(session: AsyncSession, _ctx: Context) -> dict[str, Any]:
        data = await ledger.search_payment_intents(session, clauses, limit)
        return {
            "object": "search_result",
            "url": "/v1/payment_intents/search",
            "has_more": False,
            "next_page": None,
            "data": data,
        }

    return await _read(request, read)


async def ledger_charges(request: Request) -> Response:
    status = request.query_params.get("status")
    limit = _limit(request, 1000, 100_000)

    async def read(session: AsyncSession, _ctx: Context) -> dict[str, Any]:
        return {"object": "list", "data": await inspection.list_charges(session, status, limit)}

    return await _read(request, read)


async def ledger_summary(request: Request) -> Response:
    async def read(session: AsyncSession, _ctx: Context) -> dict[str, Any]:
        # Refusals leave no row in the ledger: this process's count since it started.
        return {
            **await inspection.summary(session),
            "rate_limited": sandbox_of(request).limiter.refused,
        }

    return await _read(request, read)


def _api(path: str, handler: Handler, method: str) -> Route:
    return Route(path, guarded(handler), methods=[method])


def routes() -> list[BaseRoute]:
    return [
        _api("/v1/customers", create_customer, "POST"),
        _api("/v1/customers/{id}", retrieve_customer, "GET"),
        _api("/v1/payment_methods", create_payment_method, "POST"),
        _api("/v1/payment_methods/{id}", retrieve_payment_method, "GET"),
        _api("/v1/payment_methods/{id}/attach", attach_payment_method, "POST"),
        _api("/v1/setup_intents", create_setup_intent, "POST"),
        _api("/v1/setup_intents/{id}", _retriever(ledger.retrieve_setup_intent), "GET"),
        _api("/v1/payment_intents", create_payment_intent, "POST"),
        # Before /{id}: Starlette matches in order and "search" would be taken for an id.
        _api("/v1/payment_intents/search", search_payment_intents, "GET"),
        _api("/v1/payment_intents/{id}", _retriever(ledger.retrieve_payment_intent), "GET"),
        _api("/_ledger/charges", ledger_charges, "GET"),
        _api("/_ledger/summary", ledger_summary, "GET"),
        *challenge_routes(),
    ]
