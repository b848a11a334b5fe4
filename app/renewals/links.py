"""The links a renewal gives the customer's browser: authenticate its payment, come back.

The browser follows them without the customer's bearer token (the gateway's redirect back
from its 3-D Secure page carries none), so each carries a keyed token of the renewal id
instead, as the gateway's own hosted pages do: it opens that renewal's payment steps and
nothing else, and only what the gateway itself says about the payment is ever believed.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from app.core.crypto import cipher_from_settings
from app.core.settings import Settings

_PURPOSE = "renewal-payment-link/v1"
# The keyed digest in letters only (hex digits 0-9 become g-p): the link travels in events,
# whose last check refuses any run of digits that passes Luhn as a card number would.
_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def token(settings: Settings, renewal_id: str) -> str:
    fingerprint = cipher_from_settings(settings).fingerprint(renewal_id, purpose=_PURPOSE)
    return fingerprint.translate(_LETTERS)


def token_valid(settings: Settings, renewal_id: str, given: str | None) -> bool:
    """Under any configured key, so links sent before a key rotation keep working."""
    if not given or len(given) > 128:
        return False
    fingerprints = cipher_from_settings(settings).fingerprints(renewal_id, purpose=_PURPOSE)
    return any(
        hmac.compare_digest(given.encode(), known.translate(_LETTERS).encode())
        for known in fingerprints
    )


def _service_url(settings: Settings, renewal_id: str, step: str) -> str:
    base = settings.public_base_url.rstrip("/")
    query = urlencode({"token": token(settings, renewal_id)})
    return f"{base}/v1/renewals/{renewal_id}/{step}?{query}"


def authenticate_url(settings: Settings, renewal_id: str) -> str:
    """`next_action.url` of a renewal waiting for the customer: following it confirms the
    payment on-session and leads to the gateway's 3-D Secure page."""
    return _service_url(settings, renewal_id, "authenticate")


def return_url(settings: Settings, renewal_id: str) -> str:
    """Where the gateway sends the browser back after its 3-D Secure page."""
    return _service_url(settings, renewal_id, "payment-return")


def customer_area_url(settings: Settings, renewal_id: str, status: str) -> str:
    """The customer-area page the browser ends on, told which renewal and how it stands."""
    target = settings.payment_return_url or settings.public_base_url.rstrip("/") + "/"
    parts = urlsplit(target)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [("renewal_id", renewal_id), ("status", status)]
    return urlunsplit(parts._replace(query=urlencode(query)))
