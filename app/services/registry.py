"""The registry of services, as provisioning describes them: created, updated, cancelled.

A service belongs to the provider's catalogue, not to the customer; the customer's choices
about how it renews are in `service.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, NotFound
from app.events.payloads import ServiceRenewalReversedData
from app.events.service import emit
from app.services import repository, schedule
from app.services.audit import Actor, record
from app.services.models import Service
from app.services.schemas import ServiceUpsert
from app.services.versions import check_if_match


@dataclass(frozen=True)
class PaidPeriod:
    """The latest period a renewal was paid for (found by the caller, app/runs)."""

    renewal_id: str
    period_end: datetime


async def upsert_service(
    session: AsyncSession,
    service_id: str,
    body: ServiceUpsert,
    *,
    actor: Actor,
    now: datetime,
    if_match: str | None = None,
    paid: PaidPeriod | None = None,
) -> tuple[Service, bool]:
    """Create or update a service as provisioning describes it. Returns (service, created).

    A price change applies to renewals not charged yet. A service that moves to another
    customer loses its payment method and auto-renew: the old owner's card must never pay
    for the new owner's service. `if_match` is the caller's ETag (412 when stale); `paid`
    the last paid period, before whose end the expiry moves only when the body says
    `reverse_paid_period` (409 otherwise).
    """
    service = await repository.get(session, service_id, for_update=True)
    check_if_match(service, if_match)
    if service is None:
        service = Service(
            id=service_id,
            customer_id=body.customer_id,
            kind=body.kind,
            name=body.name,
            status=body.status,
            expires_at=body.expires_at,
            expiry_anchor_day=body.expires_at.day,
            period_months=body.period_months,
            price_amount=body.price.amount,
            price_currency=body.price.currency,
            auto_renew=bool(body.auto_renew),
            created_at=now,
            updated_at=now,
            cancelled_at=now if body.status == "cancelled" else None,
        )
        schedule.expiry_changed(service, now)
        session.add(service)
        record(
            session, service, actor=actor, field="created", before=None, after=body.status, now=now
        )
        await session.flush()
        return service, True

    def note(field: str, before: Any, after: Any, reason: str | None = None) -> None:
        record(
            session, service, actor=actor, field=field, before=before, after=after, now=now,
            reason=reason,
        )  # fmt: skip

    if service.customer_id != body.customer_id:
        note("customer_id", service.customer_id, body.customer_id)
        if service.payment_method_id is not None:
            note("payment_method_id", service.payment_method_id, None, "customer changed")
        if service.auto_renew:
            note("auto_renew", True, False, "customer changed")
        service.customer_id = body.customer_id
        service.payment_method_id = service.payment_method_type = None
        service.auto_renew = False
        schedule.renewal_changed(service, now)
    new_price = {"amount": body.price.amount, "currency": body.price.currency}
    if _price(service) != new_price:
        note("price", _price(service), new_price)
        service.price_amount, service.price_currency = body.price.amount, body.price.currency
    if service.expires_at != body.expires_at:
        reverses = paid is not None and body.expires_at < paid.period_end
        if reverses and paid is not None:
            await _before_paid_period(session, service, body, paid, now)
        note(
            "expires_at",
            service.expires_at.isoformat(),
            body.expires_at.isoformat(),
            "before the paid period, as provisioning asked" if reverses else None,
        )
        service.expires_at = body.expires_at
        service.expiry_anchor_day = body.expires_at.day
        schedule.expiry_changed(service, now)
    if service.status != body.status:
        note("status", service.status, body.status)
        service.status = body.status
        service.cancelled_at = now if body.status == "cancelled" else None
        schedule.kind_or_status_changed(service, now)
    if service.kind != body.kind:
        schedule.kind_or_status_changed(service, now)
    service.kind, service.name, service.period_months = body.kind, body.name, body.period_months
    service.updated_at = now
    await session.flush()
    return service, False


async def _before_paid_period(
    session: AsyncSession, service: Service, body: ServiceUpsert, paid: PaidPeriod, now: datetime
) -> None:
    """An expiry moved before the end of a paid period takes back what the customer paid
    for: refused unless said explicitly, and then announced as a reversal."""
    if not body.reverse_paid_period:
        raise Conflict(
            "The new expiry is before the end of a period the customer has paid for (a "
            "stale expiry?). Read the service again, or send reverse_paid_period: true.",
            code="expiry_before_paid_period",
            extra={"paid_until": paid.period_end.isoformat(), "renewal_id": paid.renewal_id},
        )
    await announce_reversal(
        session,
        service,
        renewal_id=paid.renewal_id,
        reason="provisioning",
        expires_at=body.expires_at,
        reversed_expires_at=service.expires_at,
        now=now,
    )


async def announce_reversal(
    session: AsyncSession,
    service: Service,
    *,
    renewal_id: str,
    reason: str,
    expires_at: datetime,
    reversed_expires_at: datetime,
    now: datetime,
) -> None:
    """`service.renewal_reversed`: a paid period was taken off the service (a refund, a SEPA
    return, or provisioning saying so)."""
    await emit(
        session,
        type="service.renewal_reversed",
        resource_id=service.id,
        customer_id=service.customer_id,
        data=ServiceRenewalReversedData(
            service_id=service.id,
            customer_id=service.customer_id,
            renewal_id=renewal_id,
            reason=reason,
            expires_at=expires_at,
            reversed_expires_at=reversed_expires_at,
        ),
        now=now,
    )


async def cancel_service(
    session: AsyncSession, service_id: str, *, actor: Actor, now: datetime
) -> Service:
    service = await repository.get(session, service_id, for_update=True)
    if service is None:
        raise NotFound("No such service.", code="service_not_found")
    if service.status != "cancelled":
        record(
            session,
            service,
            actor=actor,
            field="status",
            before=service.status,
            after="cancelled",
            now=now,
        )
        service.status = "cancelled"
        service.cancelled_at = now
        service.updated_at = now
        schedule.renewal_changed(service, now)
    return service


def _price(service: Service) -> dict[str, Any]:
    return {"amount": service.price_amount, "currency": service.price_currency}
