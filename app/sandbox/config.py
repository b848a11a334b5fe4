"""What the sandbox needs to know, independent of the service's settings object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.core.settings import DEV_SANDBOX_WEBHOOK_SECRET, Settings


@dataclass(frozen=True)
class SandboxConfig:
    database_url: str
    # Absolute URL under which browsers reach this sandbox (for the 3-D Secure page); None:
    # taken from each request, right when the sandbox is reached directly.
    public_url: str | None = None
    latency_ms: float = 0.0
    latency_mode: Literal["fixed", "random"] = "fixed"
    fault_rate: float = 0.0
    fault_hang_seconds: float = 60.0
    rate_limit_per_second: float = 0.0
    # Browser origins allowed to call the sandbox (the SPA tokenizing with a publishable key).
    cors_origins: tuple[str, ...] = ()
    # Where events are sent, signed with `webhook_secret` as Stripe signs them; None: events
    # are only recorded (GET /v1/events).
    webhook_url: str | None = None
    webhook_secret: str = DEV_SANDBOX_WEBHOOK_SECRET
    webhook_timeout_seconds: float = 10.0
    # A delivery is tried this many times in all, a little further apart each time.
    webhook_max_attempts: int = 4
    webhook_retry_seconds: float = 2.0
    # How often the sender looks for due deliveries it was not woken for (other processes'
    # events, retries).
    webhook_poll_seconds: float = 1.0

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        public_url: str | None = None,
        extra_cors_origins: tuple[str, ...] = (),
    ) -> SandboxConfig:
        return cls(
            database_url=settings.sandbox_database_url,
            public_url=public_url,
            latency_ms=settings.sandbox_latency_ms,
            latency_mode=settings.sandbox_latency_mode,
            fault_rate=settings.sandbox_fault_rate,
            fault_hang_seconds=settings.sandbox_fault_hang_seconds,
            rate_limit_per_second=settings.sandbox_rate_limit_per_second,
            cors_origins=tuple(
                dict.fromkeys((*settings.sandbox_cors_origins, *extra_cors_origins))
            ),
            webhook_url=settings.sandbox_webhook_url,
            webhook_secret=settings.sandbox_webhook_secret.get_secret_value(),
        )
