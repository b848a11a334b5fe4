"""Whether the card gateway works for us at all, as this process last found out.

"Unavailable" is not a slow or failing gateway (those answers leave single charges open to
reconcile): it is a gateway that refuses every request, today a rotated, revoked or
restricted API key (401/403). The renewal sweep stops charging when it meets one and
records it here; operators see it in `/readyz` (`gateway`), in the metric
`autorenew_gateway_unavailable` (1/0) and in the sweep's summary. The next sweep that gets
a real answer from the gateway marks it available again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from app.gateways import metrics

log = logging.getLogger("autorenew.gateway")


@dataclass
class GatewayAvailability:
    """One per process (app.state, the scheduler's job context), shared by its sweeps."""

    available: bool = True
    reason: str | None = None
    # When it was first found unavailable (None while available).
    since: datetime | None = None

    def mark_unavailable(self, reason: str, *, now: datetime) -> None:
        if self.available:
            log.error("card gateway unavailable: renewals wait", extra={"reason": reason})
            self.since = now
        self.available, self.reason = False, reason
        metrics.UNAVAILABLE.set(1)

    def mark_available(self) -> None:
        if not self.available:
            log.warning("card gateway available again", extra={"since": self.since})
        self.available, self.reason, self.since = True, None, None
        metrics.UNAVAILABLE.set(0)
