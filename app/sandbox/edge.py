"""What stands between a caller and the sandbox ledger: API keys, rate limit, latency, faults.

Keys, as at Stripe: a secret key (`sk_test_…`) opens every route; a publishable key
(`pk_test_…`, the one a browser holds) only the routes Stripe opens to it (tokenizing a card,
reading or confirming an intent with its client secret), and elsewhere gets Stripe's 403
`secret_key_required`. Live keys never open the sandbox: a production key pointed here by
mistake is refused rather than accepted.

Faults are the ones a real gateway has, in the shapes that matter to a billing engine:
- `error_before`: a 5xx and nothing happened (safe to retry);
- `error_after`: the charge *was* made, then the response was lost as a 5xx;
- `hang_after`: the charge was made and the response comes too late (the client times out);
- `error_stored`: the charge was made and a 5xx is stored as the key's response, so every
  retry with the same key gets that 5xx again (`Stripe-Should-Retry: false`): only a lookup
  (search by metadata) tells what happened. Asked for by header only.
A test picks one for a request with the `X-Sandbox-Fault` header; otherwise each POST draws
one of the first three with probability `fault_rate`. Latency likewise: `latency_ms` for every
call, or `X-Sandbox-Latency-Ms` for one.
"""

from __future__ import annotations

import base64
import math
import random
import time
from typing import Literal

from starlette.requests import Request

from app.sandbox.config import SandboxConfig
from app.sandbox.errors import StripeError

RANDOM_FAULTS = ("error_before", "error_after", "hang_after")
FAULTS = (*RANDOM_FAULTS, "error_stored")
FAULT_HEADER = "x-sandbox-fault"
LATENCY_HEADER = "x-sandbox-latency-ms"
MAX_ASKED_LATENCY_MS = 10_000

KeyKind = Literal["secret", "publishable"]


def api_key_kind(request: Request) -> KeyKind:
    """Which kind of test key the request carries; 401 for none or any other key."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() == "basic":
        # Stripe also takes the key as the Basic user name (`curl -u sk_test_…:`).
        try:
            key = base64.b64decode(key, validate=True).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            key = ""
    elif scheme.lower() != "bearer":
        key = ""
    if not key:
        raise StripeError(
            401,
            "invalid_request_error",
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY').",
        )
    if key.startswith("sk_test_") and len(key) > len("sk_test_"):
        return "secret"
    if key.startswith("pk_test_") and len(key) > len("pk_test_"):
        return "publishable"
    raise StripeError(
        401, "invalid_request_error", f"Invalid API Key provided: {key[:8]}****{key[-4:]}"
    )


class RateLimiter:
    """A token bucket per sandbox process: `rate` requests per second, bursts up to `rate`.
    `refused` counts the 429s answered (shown by /_ledger/summary, for benchmarks)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.refused = 0

    def check(self) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return
        wait = math.ceil((1 - self.tokens) / self.rate)
        self.refused += 1
        raise StripeError(
            429,
            "invalid_request_error",
            "Too many requests hit the API too quickly. We recommend an exponential backoff "
            "of your requests.",
            code="rate_limit",
            headers={"Retry-After": str(max(1, wait))},
        )


class Chaos:
    """Latency and injected faults. Not security-relevant randomness."""

    def __init__(self, config: SandboxConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.rng = rng or random.Random()  # noqa: S311

    def latency_seconds(self, request: Request | None = None) -> float:
        """The delay added to a call: `X-Sandbox-Latency-Ms` for this request (a test asking
        for one slow call), else drawn from the settings."""
        asked = request.headers.get(LATENCY_HEADER) if request is not None else None
        if asked is not None and asked.isdigit():
            return min(int(asked), MAX_ASKED_LATENCY_MS) / 1000
        median = self.config.latency_ms / 1000
        if median <= 0:
            return 0.0
        if self.config.latency_mode == "fixed":
            return median
        # Log-normal around the median: most calls near it, a long tail of slow ones.
        return median * math.exp(self.rng.gauss(0, 0.5))

    def fault_for(self, request: Request) -> str | None:
        chosen = request.headers.get(FAULT_HEADER)
        if chosen in FAULTS:
            return chosen
        if request.method == "POST" and self.rng.random() < self.config.fault_rate:
            return self.rng.choice(RANDOM_FAULTS)
        return None
