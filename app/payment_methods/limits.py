"""The two oracles of payment methods, and how often a caller may ask them.

`POST /v1/iban-checks` tells whether an account number exists; `POST /v1/payment-methods`
tells why an IBAN is refused and, for cards, would let someone test stolen numbers against
the gateway. Both are limited per caller, across every replica (app/core/ratelimit.py).
"""

from __future__ import annotations

from datetime import timedelta

from app.core import ratelimit
from app.core.settings import Settings


def iban_checks(settings: Settings) -> ratelimit.RateLimit:
    return ratelimit.RateLimit(
        "iban_check",
        settings.iban_check_rate_limit,
        timedelta(seconds=settings.iban_check_rate_window_seconds),
    )


def registrations(settings: Settings) -> ratelimit.RateLimit:
    return ratelimit.RateLimit(
        "payment_method_create",
        settings.payment_method_create_rate_limit,
        timedelta(seconds=settings.payment_method_create_rate_window_seconds),
    )
