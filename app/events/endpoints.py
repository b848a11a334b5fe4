"""Webhook endpoints: who receives events, which ones, and with which secret.

URL rules: in production only `https://`; development also allows `http://`. Where a URL
may point is `destinations.py`'s to say (public addresses, plus the configured networks:
loopback by default in development), at registration and again at each send.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound, Unprocessable
from app.core.ids import new_id
from app.core.settings import Settings
from app.events import destinations
from app.events import repository as repo
from app.events.catalogue import check_event_types
from app.events.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.events.secrets import generate_secret, seal


def check_url(url: str, settings: Settings) -> str:
    """The URL's form: absolute http(s), no credentials, https in production, and a host
    that, if written as an address, is one allowed."""
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url.strip()):
        # A space or a control character has no place in a URL: it would be read one way
        # here and another by whatever parses it next.
        raise Unprocessable(
            "The URL may not contain spaces or control characters.", code="invalid_webhook_url"
        )
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        _ = parts.port  # raises on a bad port
    except ValueError:
        host = None
    if host and "%" in host:  # a percent-encoded host name is not one DNS would look up
        host = None
    if not host or parts.scheme not in ("https", "http"):
        raise Unprocessable("The URL must be an absolute http(s) URL.", code="invalid_webhook_url")
    if parts.username or parts.password:
        # Credentials in a URL end up in logs; receivers authenticate us by signature.
        raise Unprocessable("The URL may not carry credentials.", code="invalid_webhook_url")
    if settings.env == "production" and parts.scheme != "https":
        raise Unprocessable("Webhook URLs must use https.", code="webhook_url_not_https")
    try:
        literal = destinations.literal_address(host)
        if literal is not None and not destinations.allowed(
            literal, destinations.allowed_networks(settings)
        ):
            raise destinations.Refused(
                "Webhook URLs may not point at loopback, private, link-local or other "
                f"non-public addresses ({literal})."
            )
    except destinations.Refused as refused:
        raise Unprocessable(str(refused), code=refused.code) from None
    return url.strip()


async def checked_url(url: str, settings: Settings) -> str:
    """`check_url`, then what the host resolves to now (names in /etc/hosts or DNS that
    point inward are refused at registration, not only at send time)."""
    url = check_url(url, settings)
    try:
        await destinations.check_destination(url, settings)
    except destinations.Refused as refused:
        raise Unprocessable(str(refused), code=refused.code) from None
    return url


async def create_endpoint(
    session: AsyncSession,
    settings: Settings,
    *,
    url: str,
    description: str | None,
    event_types: Sequence[str],
    enabled: bool,
    now: datetime,
) -> tuple[WebhookEndpoint, str]:
    """Returns the endpoint and its secret, which is never shown again."""
    secret = generate_secret()
    endpoint = WebhookEndpoint(
        id=new_id("we"),
        url=await checked_url(url, settings),
        description=description,
        enabled=enabled,
        event_types=check_event_types(event_types, where=("body", "event_types")),
        secret_ciphertext=seal(settings, secret),
        previous_secret_ciphertext=None,
        previous_secret_expires_at=None,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def get_endpoint(session: AsyncSession, endpoint_id: str) -> WebhookEndpoint:
    endpoint = await repo.get_endpoint(session, endpoint_id)
    if endpoint is None:
        raise NotFound("No such webhook endpoint.", code="webhook_endpoint_not_found")
    return endpoint


async def update_endpoint(
    session: AsyncSession,
    settings: Settings,
    endpoint_id: str,
    *,
    now: datetime,
    url: str | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    event_types: Sequence[str] | None = None,
) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, endpoint_id)
    # Validate everything before touching the row: bad input changes nothing.
    new_url = await checked_url(url, settings) if url is not None else None
    new_types = (
        check_event_types(event_types, where=("body", "event_types"))
        if event_types is not None
        else None
    )
    if new_url is not None:
        endpoint.url = new_url
    if new_types is not None:
        endpoint.event_types = new_types
    if description is not None:
        endpoint.description = description
    if enabled is not None:
        endpoint.enabled = enabled
    endpoint.updated_at = now
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, endpoint_id: str) -> None:
    await get_endpoint(session, endpoint_id)
    await repo.delete_endpoint(session, endpoint_id)


async def rotate_secret(
    session: AsyncSession,
    settings: Settings,
    endpoint_id: str,
    *,
    now: datetime,
    overlap: timedelta | None = None,
) -> tuple[WebhookEndpoint, str]:
    """New secret now; the old one keeps signing alongside it until the overlap ends, so
    receivers can switch at their own pace without rejecting a single delivery."""
    endpoint = await get_endpoint(session, endpoint_id)
    overlap = (
        overlap if overlap is not None else timedelta(hours=settings.webhook_secret_overlap_hours)
    )
    secret = generate_secret()
    if overlap > timedelta(0):
        endpoint.previous_secret_ciphertext = endpoint.secret_ciphertext
        endpoint.previous_secret_expires_at = now + overlap
    else:
        endpoint.previous_secret_ciphertext = None
        endpoint.previous_secret_expires_at = None
    endpoint.secret_ciphertext = seal(settings, secret)
    endpoint.updated_at = now
    await session.flush()
    return endpoint, secret


async def list_endpoints(session: AsyncSession) -> list[WebhookEndpoint]:
    return await repo.list_endpoints(session)


async def deliveries(
    session: AsyncSession, endpoint_id: str, *, status: str | None, limit: int
) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """What an endpoint was sent, newest first: the dead-letter view with `status="dead"`."""
    await get_endpoint(session, endpoint_id)
    found = await repo.deliveries_for_endpoint(session, endpoint_id, status, limit)
    attempts = await repo.attempts_for(session, [delivery.id for delivery in found])
    return [(delivery, attempts[delivery.id]) for delivery in found]


async def redeliver_dead(session: AsyncSession, endpoint_id: str, *, now: datetime) -> int:
    """After a receiver's long outage: every dead delivery is due again, with a new window."""
    await get_endpoint(session, endpoint_id)
    return await repo.revive_dead_deliveries(session, endpoint_id, now)
