"""How often a customer may pay renewals now (each try can reach the card gateway).

Counted across every replica (app/core/ratelimit.py), before the request's own transaction
reads or writes anything: on SQLite a transaction that has read cannot write once another
one has committed.
"""

from __future__ import annotations

from datetime import timedelta

from app.core import ratelimit
from app.core.settings import Settings


def pay_now(settings: Settings) -> ratelimit.RateLimit:
    return ratelimit.RateLimit(
        "renewal_pay",
        settings.renewal_pay_rate_limit,
        timedelta(seconds=settings.renewal_pay_rate_window_seconds),
    )
