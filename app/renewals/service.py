"""What a customer may do about a renewal: try it again after fixing what stopped it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, NotFound
from app.renewals import repository
from app.renewals.models import Renewal
from app.services.models import Service


async def retry(
    session: AsyncSession, customer_id: str, renewal_id: str, *, now: datetime
) -> Renewal:
    """Put a renewal that needs the customer (3-D Secure, a failed card) back in the queue.

    Only for the period the service is in: an older renewal has nothing left to pay for.
    The next sweep charges it with the service's method at that time, so the usual fix is
    to assign another method (or authenticate) and then retry.
    """
    renewal = await repository.get(session, renewal_id, customer_id=customer_id, for_update=True)
    if renewal is None:
        raise NotFound("No such renewal.", code="renewal_not_found")
    if renewal.status not in ("requires_action", "failed"):
        raise Conflict(
            f"A {renewal.status} renewal cannot be retried.",
            code="renewal_not_retryable",
            extra={"renewal_status": renewal.status},
        )
    service = await session.get(Service, renewal.service_id)
    if service is None or service.status != "active" or service.expires_at != renewal.period_start:
        raise Conflict(
            "This renewal is for a period the service is no longer in.",
            code="renewal_not_retryable",
            extra={"renewal_status": renewal.status},
        )
    if now >= renewal.period_start:
        raise Conflict("The service has already expired.", code="service_expired")
    renewal.status = "scheduled"
    renewal.next_attempt_at = now
    renewal.action_url = None
    renewal.failure_code = renewal.failure_reason = None
    renewal.finished_at = None
    renewal.updated_at = now
    return renewal
