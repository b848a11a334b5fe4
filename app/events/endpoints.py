"""Webhook endpoints: who receives events, which ones, and with which secret.

URL rules: in production only `https://` to a public host; loopback, private, link-local
and other special addresses are refused so the service cannot be turned into a probe of
its own network (SSRF). Development also allows `http://` and loopback, for local
receivers and tests.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound, Unprocessable
from app.core.ids import new_id
from app.core.settings import Settings
from app.events import repository as repo
from app.events.catalogue import check_event_types
from app.events.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.events.secrets import generate_secret, seal

_LOCAL_NAMES = ("localhost", "localhost.localdomain")


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, settings: Settings) -> str:
    production = settings.env == "production"
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        _ = parts.port  # raises on a bad port
    except ValueError:
        host = None
    if host is None or parts.scheme not in ("https", "http"):
        raise Unprocessable("The URL must be an absolute http(s) URL.", code="invalid_webhook_url")
    if parts.username or parts.password:
        # Credentials in a URL end up in logs; receivers authenticate us by signature.
        raise Unprocessable("The URL may not carry credentials.", code="invalid_webhook_url")
    if production:
        if parts.scheme != "https":
            raise Unprocessable("Webhook URLs must use https.", code="webhook_url_not_https")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        local_name = host.lower().rstrip(".") in _LOCAL_NAMES or host.endswith(".localhost")
        if local_name or (literal is not None and not is_public_address(str(literal))):
            raise Unprocessable(
                "Webhook URLs may not point at loopback or private addresses.",
                code="webhook_url_not_allowed",
            )
    return url.strip()


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
        url=check_url(url, settings),
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
    new_url = check_url(url, settings) if url is not None else None
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
