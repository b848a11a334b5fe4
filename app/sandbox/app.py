"""The sandbox as an object: its runtime, its ASGI app (with CORS for the browser origins
configured), its webhook sender, its start and stop.

Mounted inside the service, the service's lifespan calls `start()`/`stop()` (Starlette does
not run a mounted app's lifespan); run alone, the app's own lifespan does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.core.clock import Clock
from app.sandbox.api import api_routes
from app.sandbox.challenge import challenge_routes
from app.sandbox.config import SandboxConfig
from app.sandbox.runtime import SandboxRuntime
from app.sandbox.webhooks import WebhookSender

# What a browser sends to Stripe's API besides the safelisted headers.
CORS_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "Stripe-Version"]


class Sandbox(SandboxRuntime):
    def __init__(
        self,
        config: SandboxConfig,
        *,
        clock: Clock | None = None,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(config, clock=clock)
        self.webhooks = WebhookSender(self, webhook_transport)
        self._sender: asyncio.Task[None] | None = None
        middleware = []
        if config.cors_origins:
            middleware.append(
                Middleware(
                    CORSMiddleware,
                    allow_origins=list(config.cors_origins),
                    allow_methods=["GET", "POST"],
                    allow_headers=CORS_HEADERS,
                    expose_headers=["Request-Id", "Idempotency-Key", "Idempotent-Replayed"],
                    max_age=600,
                )
            )
        self.app = Starlette(
            routes=[*api_routes(), *challenge_routes()],
            middleware=middleware,
            lifespan=self._lifespan,
            # Starlette's plain-text 404/405 would make the official SDKs report "Invalid
            # JSON received from the Stripe API" for a route the sandbox does not have.
            exception_handlers={404: unrecognized_url, 405: unrecognized_url},
        )
        self.app.state.sandbox = self

    async def start(self, *, send_webhooks: bool = True) -> None:
        """`send_webhooks=False` leaves the sending to whoever calls `webhooks.deliver_due()`
        (tests that drive it step by step)."""
        await super().start()
        if send_webhooks and self.config.webhook_url is not None:
            self._sender = asyncio.create_task(self.webhooks.run(), name="sandbox-webhooks")

    async def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        await self.webhooks.aclose()
        await super().stop()

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()


async def unrecognized_url(request: Request, _exc: Exception) -> Response:
    """Stripe's answer to a method and path it does not serve: a 404 error object."""
    path = request.url.path
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    message = (
        f"Unrecognized request URL ({request.method}: {path}). "
        "This sandbox serves only the part of Stripe's API that autorenew uses."
    )
    body = {"error": {"type": "invalid_request_error", "message": message}}
    return JSONResponse(body, status_code=404)
