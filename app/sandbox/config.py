"""What the sandbox needs to know, independent of the service's settings object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.core.settings import Settings


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

    @classmethod
    def from_settings(cls, settings: Settings, *, public_url: str | None = None) -> SandboxConfig:
        return cls(
            database_url=settings.sandbox_database_url,
            public_url=public_url,
            latency_ms=settings.sandbox_latency_ms,
            latency_mode=settings.sandbox_latency_mode,
            fault_rate=settings.sandbox_fault_rate,
            fault_hang_seconds=settings.sandbox_fault_hang_seconds,
            rate_limit_per_second=settings.sandbox_rate_limit_per_second,
        )
