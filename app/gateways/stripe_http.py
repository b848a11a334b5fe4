"""The HTTP client under Stripe's SDK: our pooled `httpx.AsyncClient`, whatever it points at.

The SDK ships `stripe.HTTPXClient`, but it falls short for this service: it builds its own
httpx client (so no `ASGITransport` to reach the sandbox mounted in this process, no pool
limits, no test transport), sends one flat timeout with every request instead of our
connect/read split, and hands the form body to httpx as `data=`, which httpx deprecates for
strings. `HttpxTransport` sends the SDK's method, URL, headers and body unchanged through
the client it is given, logs each exchange, and reports a transport failure the way the
SDK expects (`APIConnectionError`, the httpx exception as its cause). It never retries: the
adapter builds the SDK client with `max_network_retries=0`, because a retry belongs to the
renewal engine, which knows whether the first send may have charged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, Awaitable, Mapping
from typing import Any, NoReturn

import httpx
import stripe

log = logging.getLogger("autorenew.gateway")
# The SDK logs every request's form body and every response body at DEBUG on this logger,
# and bodies may carry card data (tokenize_card) or customers' details: they never pass.
# Its INFO lines repeat what `HttpxTransport` logs below, without the bodies. (The SDK also
# prints the same lines to stderr when STRIPE_LOG=debug or info is set: never set it.)
logging.getLogger("stripe").setLevel(logging.WARNING)


def transport_failure(exc: httpx.TransportError) -> str:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    return f"The gateway request {kind} ({type(exc).__name__})."


class HttpxTransport(stripe.HTTPClient):
    """Async only: the service never calls the SDK's blocking methods."""

    name = "httpx"

    def __init__(self, client: httpx.AsyncClient) -> None:
        super().__init__()
        self.client = client

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        path = httpx.URL(url).path
        started = time.perf_counter()
        try:
            response = await self.client.request(
                method, url, headers=dict(headers), content=post_data
            )
        except httpx.TransportError as exc:
            log.warning(
                "gateway request failed",
                extra={"method": method.upper(), "path": path, "error": type(exc).__name__},
            )
            raise stripe.APIConnectionError(transport_failure(exc)) from exc  # type: ignore[no-untyped-call]
        # Bodies are never logged: they may carry card data (tokenize) or customer details.
        log.info(
            "gateway request",
            extra={
                "method": method.upper(),
                "path": path,
                "status": response.status_code,
                "stripe_request_id": response.headers.get("request-id"),
                "replayed": response.headers.get("idempotent-replayed") == "true",
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
        return response.content, response.status_code, response.headers

    async def request_stream_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[AsyncIterable[bytes], int, Mapping[str, str]]:
        raise NotImplementedError("the adapter makes no streaming requests")

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> NoReturn:
        raise NotImplementedError("the adapter calls the SDK's async methods only")

    def sleep_async(self, secs: float) -> Awaitable[None]:
        return asyncio.sleep(secs)

    async def close_async(self) -> None:
        await self.client.aclose()
