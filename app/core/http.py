"""The HTTP edge: request ids, access log, metrics, body limits, content types, CORS.

Written as one plain ASGI middleware rather than several `BaseHTTPMiddleware`s: it sees
every request once, does not buffer bodies, and knows the matched route template after
the app has run (FastAPI leaves it in `scope["route"]`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import Counter, Histogram
from pydantic import BaseModel
from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import problem_response, unexpected_error_response
from app.core.settings import Settings

access_log = logging.getLogger("autorenew.access")

HTTP_REQUESTS = Counter(
    "autorenew_http_requests_total",
    "HTTP requests answered, by route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "autorenew_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# Routes that take a file in its own format (bank reports, NDJSON imports) rather than JSON.
NON_JSON_UPLOAD_PATHS: tuple[str, ...] = ("/v1/admin/sepa/returns", "/v1/admin/imports/")
# JSON written by a card gateway, not by our callers: an escaped NUL in a field we never
# store (a billing name) must not make the gateway redeliver it for days. What the route
# keeps of an event are the gateway's own ids and codes, checked before they are stored.
GATEWAY_WEBHOOK_PATHS: tuple[str, ...] = ("/v1/gateway-webhooks/",)
# Routes that stream a large file line by line (they hold a line, not the body): their own
# body limit instead of `max_body_bytes`.
IMPORT_PATHS = "/v1/admin/imports/"


def body_limit(path: str, settings: Settings) -> int:
    """The largest body accepted on `path`."""
    if path.startswith(IMPORT_PATHS):
        return settings.import_max_bytes
    return settings.max_body_bytes


_JSON_NUL = b"\\u0000"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        # The metrics' children by (method, route template, status): a bounded set, as
        # unmatched paths share one template.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        incoming = _header(scope, b"x-request-id")
        # 32 random hex digits, as uuid4().hex gave, for less than half its cost.
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else os.urandom(16).hex()
        state: MutableMapping[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status_holder = {"status": 500}
        started_response = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal started_response
            if message["type"] == "http.response.start":
                started_response = True
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            rejection = self._reject(scope)
            if rejection is not None:
                await rejection(scope, receive, send_with_request_id)
            else:
                await self.app(scope, self._limited(scope, receive), send_with_request_id)
        except Exception as exc:
            if started_response:
                raise
            response = unexpected_error_response(Request(scope), exc)
            await response(scope, receive, send_with_request_id)
        finally:
            self._record(scope, status_holder["status"], time.perf_counter() - started)

    def _reject(self, scope: Scope) -> Any:
        """A problem response for requests refused before the app sees them, or None."""
        # PostgreSQL text cannot hold NUL, so a `%00` reaching a query would fail there as a
        # 500; no id, filter or cursor of this API contains one.
        if "\x00" in scope["path"] or b"%00" in scope["query_string"]:
            return problem_response(
                Request(scope),
                status=422,
                code="validation_error",
                detail="The URL contains a NUL character.",
            )
        length = _header(scope, b"content-length")
        path: str = scope["path"]
        limit = body_limit(path, self.settings)
        if length is not None and length.isdigit() and int(length) > limit:
            return problem_response(
                Request(scope),
                status=413,
                code="payload_too_large",
                detail=f"The body is larger than {limit} bytes.",
            )
        has_body = (length is not None and length != "0") or _header(
            scope, b"transfer-encoding"
        ) is not None
        if (
            path.startswith("/v1/")
            and scope["method"] in ("POST", "PUT", "PATCH")
            and has_body
            and not path.startswith(NON_JSON_UPLOAD_PATHS)
            and not _is_json(_header(scope, b"content-type"))
        ):
            return problem_response(
                Request(scope),
                status=415,
                code="unsupported_media_type",
                detail="Send the body as application/json.",
            )
        return None

    def _limited(self, scope: Scope, receive: Receive) -> Receive:
        """Count streamed body bytes too (Content-Length can be absent or wrong), and refuse
        JSON that carries a NUL character: PostgreSQL text cannot hold one, so it would fail
        there as a 500. In JSON a NUL can only be written `\\u0000` (the rare literal text
        backslash-u0000 is refused as well)."""
        received = 0
        path: str = scope["path"]
        limit = body_limit(path, self.settings)
        check_nul = path.startswith("/v1/") and not path.startswith(
            NON_JSON_UPLOAD_PATHS + GATEWAY_WEBHOOK_PATHS
        )
        tail = b""

        async def limited_receive() -> Message:
            nonlocal received, tail
            message = await receive()
            if message["type"] == "http.request":
                chunk: bytes = message.get("body", b"")
                received += len(chunk)
                if received > limit:
                    # FastAPI turns any other exception raised while it reads the body into
                    # a 400; an HTTPException passes through and is rendered as a 413 problem.
                    raise HTTPException(413, f"The body is larger than {limit} bytes.")
                if check_nul:
                    # The tail carries a sequence split between two chunks.
                    if _JSON_NUL in tail + chunk:
                        raise HTTPException(422, "The body contains a NUL character.")
                    tail = (tail + chunk)[-(len(_JSON_NUL) - 1) :]
            return message

        return limited_receive

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or (
            "/sandbox/*" if scope["path"].startswith("/sandbox") else "unmatched"
        )
        method = scope["method"]
        key = (method, template, status)
        children = self._children.get(key)
        if children is None:  # a label lookup takes a lock and builds a tuple: once per key
            children = (
                HTTP_REQUESTS.labels(method, template, str(status)),
                HTTP_LATENCY.labels(method, template),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        state = scope.get("state", {})
        access_log.info(
            "request",
            extra={
                "method": method,
                "route": template,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "request_id": state.get("request_id"),
                "caller": state.get("caller_id"),
            },
        )


def json_response(body: BaseModel, status_code: int = 200) -> Response:
    """`body` as JSON, serialised once. A route that returns its response model instead
    has FastAPI validate the model again against `response_model` before serialising it:
    the hot read routes answer with this (the decorator keeps `response_model` for the
    OpenAPI document)."""
    return Response(body.model_dump_json(), status_code=status_code, media_type="application/json")


def data_json_response(body: Any, status_code: int = 200) -> Response:
    """Plain data (dicts, lists, datetimes, …) as JSON, written by pydantic's own serialiser:
    the same bytes as a model with those fields would give, without building one."""
    return Response(to_json(body), status_code=status_code, media_type="application/json")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line. Only the fields we put in `extra` are added: never bodies."""

    _standard = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}

    _second, _time = -1, ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # One strftime per second, not per line: the access log writes one per request.
        second = int(record.created)
        if second != self._second:
            self._second, self._time = second, super().formatTime(record, "%Y-%m-%dT%H:%M:%S")
        return self._time

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._standard and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    root = logging.getLogger("autorenew")
    if not any(isinstance(h.formatter, JsonLogFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonLogFormatter())
        root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = True


class ServiceCORSMiddleware(CORSMiddleware):
    """CORS for the service's own routes. The mounted sandbox gateway (/sandbox) answers its
    own, for its own origins: this layer would otherwise answer its preflights first."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/sandbox/"):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def install_edge(app: FastAPI, settings: Settings) -> None:
    # Order matters: CORS answers preflights before the edge checks content types.
    app.add_middleware(EdgeMiddleware, settings=settings)
    if settings.cors_origins:
        app.add_middleware(
            ServiceCORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
            max_age=600,
        )
