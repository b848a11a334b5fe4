"""Build the card gateway the settings ask for.

    build_sandbox(settings, clock=…)  → Sandbox | None   (only for gateway=sandbox, mounted)
    build_gateway(settings, sandbox=…, transport=…) → ThrottledGateway(StripeGateway)

There is one adapter, `StripeGateway`; only where its requests go differs:
- `stripe`: https://api.stripe.com (or AUTORENEW_GATEWAY_BASE_URL);
- `sandbox` with AUTORENEW_GATEWAY_BASE_URL: a sandbox in its own process, over HTTP;
- `sandbox` without it: the sandbox mounted in this process, through `httpx.ASGITransport`.
  The service does not know the address it is reachable at (any host, port, proxy or worker
  count), and calling itself over the network would tie up a worker per call; the ASGI
  transport sends the very same requests, headers and form bodies straight to the sandbox
  app, so the adapter code path is exactly the one used against Stripe. httpx enforces
  timeouts only in its network transport, so `TimedASGITransport` applies the read timeout
  itself: a hanging in-process sandbox times out like a remote one.

The adapter is wrapped in the throttle (app/gateways/throttle.py) even when no pace is set:
waiting out a 429's Retry-After together, instead of each renewal being deferred to the next
sweep, is worth having against any gateway. Only with no pace and no wait budget would the
wrapper do nothing, and then it is left out.
"""

from __future__ import annotations

import asyncio

import httpx

from app.core.clock import Clock
from app.core.settings import ConfigurationError, Settings
from app.gateways.port import PaymentGateway
from app.gateways.stripe import STRIPE_API_BASE, StripeGateway, default_timeout
from app.gateways.throttle import ThrottledGateway
from app.sandbox.app import Sandbox
from app.sandbox.config import SandboxConfig

IN_PROCESS_SANDBOX_URL = "http://sandbox.in-process"


class TimedASGITransport(httpx.ASGITransport):
    """httpx's ASGI transport with the client's read timeout enforced."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout") or {}
        try:
            async with asyncio.timeout(timeouts.get("read")):
                return await super().handle_async_request(request)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(
                "the in-process gateway did not answer in time", request=request
            ) from exc


def build_sandbox(settings: Settings, *, clock: Clock | None = None) -> Sandbox | None:
    # Never beside the real Stripe: a fake gateway open to anyone on a production host would
    # be a free database to write into, and a confusing one.
    if not settings.sandbox_mounted or settings.gateway != "sandbox":
        return None
    public_url = settings.public_base_url.rstrip("/") + "/sandbox"
    # The SPA allowed to call the service may tokenize at the mounted sandbox too (the
    # service's CORS layer leaves /sandbox to the sandbox's own).
    config = SandboxConfig.from_settings(
        settings, public_url=public_url, extra_cors_origins=tuple(settings.cors_origins)
    )
    return Sandbox(config, clock=clock)


def build_gateway(
    settings: Settings,
    *,
    sandbox: Sandbox | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> PaymentGateway:
    base_url = settings.gateway_base_url or STRIPE_API_BASE
    if transport is None and settings.gateway == "sandbox" and not settings.gateway_base_url:
        if sandbox is None:
            raise ConfigurationError("the sandbox gateway is neither mounted nor given a URL")
        # raise_app_exceptions=False: a sandbox bug reaches the adapter as a 500, which it
        # treats like any gateway 5xx, instead of as a foreign exception.
        transport = TimedASGITransport(app=sandbox.app, raise_app_exceptions=False)
        base_url = IN_PROCESS_SANDBOX_URL
    adapter = StripeGateway(
        api_key=settings.gateway_api_key.get_secret_value(),
        base_url=base_url,
        transport=transport,
        timeout=default_timeout(
            connect=settings.gateway_connect_timeout_seconds,
            read=settings.gateway_timeout_seconds,
        ),
        max_connections=settings.gateway_max_connections,
    )
    if not settings.gateway_max_requests_per_second and not (
        settings.gateway_rate_limit_max_wait_seconds
    ):
        return adapter
    return ThrottledGateway(
        adapter,
        max_requests_per_second=settings.gateway_max_requests_per_second,
        max_wait_seconds=settings.gateway_rate_limit_max_wait_seconds,
    )
