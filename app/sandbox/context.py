"""What every ledger operation knows about the request it serves."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Context:
    now: datetime
    secret: str
    # Absolute URL of this sandbox as browsers see it (for the 3-D Secure page).
    public_url: str
    idempotency_key: str | None = None
    # The request's id (Request-Id header), recorded in the events it causes; None for
    # changes no API request made (the 3-D Secure page).
    request_id: str | None = None
    # A webhook URL is configured: events are queued for delivery.
    webhooks: bool = False

    def challenge_url(self, intent_id: str, token: str | None) -> str | None:
        if token is None:
            return None
        return f"{self.public_url}/3ds/{intent_id}?token={token}"


def new_client_secret(intent_id: str) -> str:
    """Stripe's shape, `<intent id>_secret_<random>`: the credential that lets a browser
    holding only a publishable key confirm or read this one intent."""
    return f"{intent_id}_secret_{secrets.token_urlsafe(18).replace('-', 'x').replace('_', 'y')}"


def new_challenge_token() -> str:
    return secrets.token_urlsafe(24)
