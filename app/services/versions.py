"""Versions of a service for optimistic concurrency: the `ETag` of every answer that shows
one service, and the `If-Match` that provisioning sends back with an update.

Provisioning reads a service, changes its price, and sends the whole description back. If a
renewal extended the service in between, the expiry it sends is stale, and applying it would
take back a period the customer paid for. With `If-Match`, such an update is refused (412)
and provisioning reads again. The tag is a hash of what the service is, not a counter, so it
changes with every change whoever makes it (the renewal engine included) without a column.
"""

from __future__ import annotations

import hashlib
import json

from app.core.errors import PreconditionFailed
from app.services.models import Service


def etag(service: Service) -> str:
    state = [
        service.id,
        service.customer_id,
        service.kind,
        service.name,
        service.status,
        service.expires_at.isoformat(),
        service.period_months,
        service.price_amount,
        service.price_currency,
        service.auto_renew,
        service.payment_method_id,
        service.updated_at.isoformat(),
    ]
    digest = hashlib.sha256(json.dumps(state).encode()).hexdigest()[:32]
    return f'"{digest}"'


def check_if_match(service: Service | None, if_match: str | None) -> None:
    """RFC 9110 §13.1.1: the update goes ahead only if the service is still the version the
    caller read (`*`: if it exists at all)."""
    if if_match is None:
        return
    tags = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
    if service is not None and ("*" in tags or etag(service) in tags):
        return
    current = etag(service) if service is not None else None
    raise PreconditionFailed(
        "The service has changed since you read it (or does not exist); read it again.",
        code="precondition_failed",
        extra={"etag": current},
    )
