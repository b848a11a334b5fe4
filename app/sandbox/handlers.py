"""What every sandbox API route shares: the key check, rate limit, latency and faults, form
bodies and query strings, idempotent POSTs, Stripe-shaped answers.

Routes say which keys open them (`Access`):
    secret         sk_test_… only; a publishable key gets 403 secret_key_required
    publishable    either key (tokenizing a card)
    client_secret  a secret key, or a publishable key with the object's `client_secret`
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.core.ids import new_id
from app.sandbox.context import Context
from app.sandbox.edge import api_key_kind
from app.sandbox.errors import StripeError, internal_error, invalid_request, secret_key_required
from app.sandbox.form import FormError, decode_form
from app.sandbox.idempotency import request_digest, run_once
from app.sandbox.params import text
from app.sandbox.runtime import runtime_of

Access = Literal["secret", "publishable", "client_secret"]
Outcome = tuple[int, dict[str, Any]]
PostOperation = Callable[[AsyncSession, Context, dict[str, Any]], Awaitable[Outcome]]
ReadOperation = Callable[[AsyncSession, Context], Awaitable[dict[str, Any]]]
Handler = Callable[[Request], Awaitable[Response]]


def stripe_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def guarded(handler: Handler, access: Access) -> Handler:
    """Key check, rate limit and latency for every API call; Stripe errors rendered."""

    async def wrapped(request: Request) -> Response:
        runtime = runtime_of(request)
        # As Stripe does: an id per request, for the client's logs and the events it causes.
        request.state.stripe_request_id = new_id("req", 14)
        try:
            kind = api_key_kind(request)
            if kind == "publishable" and access == "secret":
                raise secret_key_required()
            request.state.publishable = kind == "publishable"
            runtime.limiter.check()
            delay = runtime.chaos.latency_seconds(request)
            if request.method == "POST" and "idempotency-key" in request.headers:
                # Spent while the request holds its key, as a slow request at Stripe does:
                # a second request with the key meanwhile gets 409 idempotency_key_in_use.
                request.state.latency = delay
            elif delay:
                await asyncio.sleep(delay)
            response = await handler(request)
        except StripeError as error:
            response = stripe_response(error.status, error.document(), error.headers)
        response.headers["Request-Id"] = request.state.stripe_request_id
        return response

    return wrapped


def check_client_secret(
    request: Request, params: dict[str, Any], client_secret: str, kind: str
) -> None:
    """A publishable key reaches one intent only with that intent's client secret."""
    if not request.state.publishable:
        return
    given = text(params, "client_secret")
    if given is None or not hmac.compare_digest(given.encode(), client_secret.encode()):
        name = {"setup_intent": "SetupIntent", "payment_intent": "PaymentIntent"}[kind]
        raise invalid_request(
            f"The client_secret provided does not match the client_secret associated with the "
            f"{name}.",
            param="client_secret",
            code=f"{kind}_invalid_parameter",
        )


def relative_path(request: Request) -> str:
    # The same ledger is reached at /sandbox/v1/… (mounted) and /v1/… (alone): idempotency
    # compares the path inside the sandbox, so both agree on what a repeat is.
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def form(request: Request) -> dict[str, Any]:
    try:
        return decode_form((await request.body()).decode("utf-8"))
    except (FormError, UnicodeDecodeError) as exc:
        raise invalid_request(f"Could not read the form body: {exc}") from exc


def query(request: Request) -> dict[str, Any]:
    try:
        return decode_form(request.url.query)
    except FormError as exc:
        raise invalid_request(f"Could not read the query string: {exc}") from exc


async def post(request: Request, operation: PostOperation) -> Response:
    runtime = runtime_of(request)
    params = await form(request)
    key = request.headers.get("idempotency-key")
    ctx = runtime.context(request, idempotency_key=key)
    fault = runtime.chaos.fault_for(request)
    if fault == "error_before":
        raise internal_error()
    headers: dict[str, str] = {}
    if key is None:
        async with runtime.transaction() as session:
            status, body = await operation(session, ctx, params)
    else:
        digest = request_digest(runtime.secret, "POST", relative_path(request), params)
        status, body, replayed = await run_once(
            runtime.transaction,
            key=key,
            digest=digest,
            now=ctx.now,
            operation=lambda session: operation(session, ctx, params),
            store_error=fault == "error_stored",
            hold_seconds=getattr(request.state, "latency", 0.0),
        )
        headers["Idempotency-Key"] = key
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        if status >= 500:
            # A failure stored under the key: re-sending it gets the same answer.
            headers["Stripe-Should-Retry"] = "false"
    runtime.events_written.set()
    if fault in ("error_after", "error_stored") and status < 500:
        raise internal_error()
    if fault == "hang_after":
        await asyncio.sleep(runtime.config.fault_hang_seconds)
    return stripe_response(status, body, headers)


async def read(request: Request, operation: ReadOperation) -> Response:
    runtime = runtime_of(request)
    async with runtime.transaction() as session:
        body = await operation(session, runtime.context(request))
    return stripe_response(200, body)


def limit(params: dict[str, Any], default: int, ceiling: int) -> int:
    raw = text(params, "limit") or str(default)
    if not raw.isdigit() or not 1 <= int(raw) <= ceiling:
        raise invalid_request(f"limit must be between 1 and {ceiling}.", param="limit")
    return int(raw)
