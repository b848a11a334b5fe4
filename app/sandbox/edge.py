"""What stands between a caller and the sandbox ledger: API keys, rate limit, latency, faults.

Faults are the ones a real gateway has, in the three shapes that matter to a billing engine:
- `error_before`: a 5xx and nothing happened (safe to retry);
- `error_after`: the charge *was* made, then the response was lost as a 5xx;
- `hang_after`: the charge was made and the response comes too late (the client times out).
A test picks one for a request with the `X-Sandbox-Fault` header; otherwise each POST draws
one with probability `fault_rate`.
"""

from __future__ import annotations

import base64
import math
import random
import time

from starlette.requests import Request

from app.sandbox.config import SandboxConfig
from app.sandbox.objects import StripeError

FAULTS = ("error_before", "error_after", "hang_after")
FAULT_HEADER = "x-sandbox-fault"


def check_api_key(request: Request) -> None:
    """Any test-mode secret key (`sk_test_…`) opens the sandbox; live keys never do, so a
    production key pointed here by mistake is refused rather than accepted."""
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
    if not key.startswith("sk_test_"):
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

    def latency_seconds(self) -> float:
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
            return self.rng.choice(FAULTS)
        return None


def internal_error() -> StripeError:
    return StripeError(
        500, "api_error", "An unknown error occurred while processing your request (sandbox fault)."
    )
