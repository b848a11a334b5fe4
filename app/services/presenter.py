"""Turns service rows into what the API shows: the method's summary and the picture of the
next renewal (readiness, next charge, the current renewal), from the same facts and rules
the renewal engine uses (app/renewals/picture.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.reads import Reads
from app.core.settings import Settings
from app.renewals import repository as renewals
from app.renewals.models import Renewal
from app.renewals.picture import next_action, picture
from app.renewals.reasons import told_to_customer
from app.services.methods import MethodFacts, load_methods, read_methods
from app.services.models import Service
from app.services.schemas import ServiceOut

# What the API shows of a service: `ServiceOut`'s fields, in its order, as plain data. The
# customer's list answers it as JSON without building the models (`read_many`, a tenth of
# that hot read's time); the other routes validate it into a `ServiceOut`. Either way the
# JSON is the same, byte for byte (tests/services/test_customer_list.py).
ServiceView = dict[str, Any]


def _money(amount: int, currency: str) -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


def current_renewal(renewal: Renewal | Row[Any] | None) -> dict[str, Any] | None:
    """`CurrentRenewal`'s fields."""
    if renewal is None:
        return None
    action = next_action(renewal)
    return {
        "id": renewal.id,
        "status": renewal.status,
        "amount": _money(renewal.amount, renewal.currency),
        "attempt_count": renewal.attempt_count,
        "next_attempt_at": renewal.next_attempt_at,
        # The customer's view and the admin's alike: the admin's renewal list has the precise
        # decline (app/renewals/reasons.py).
        "failure_code": told_to_customer(renewal.failure_code),
        "failure_reason": renewal.failure_reason,
        "next_action": {"type": action["type"], "url": action.get("url")} if action else None,
        "notified_at": renewal.notified_at,
    }


def view(
    service: Service | Row[Any],
    method: MethodFacts | None,
    renewal: Renewal | Row[Any] | None,
    settings: Settings,
    now: datetime,
) -> ServiceView:
    seen = picture(service, method, renewal, settings, now)
    charge = seen.next_charge
    return {
        "id": service.id,
        "customer_id": service.customer_id,
        "kind": service.kind,
        "name": service.name,
        "status": service.status,
        "expires_at": service.expires_at,
        "period_months": service.period_months,
        "price": _money(service.price_amount, service.price_currency),
        "auto_renew": service.auto_renew,
        "payment_method": (
            {
                "id": method.id,
                "type": method.type,
                "status": method.status,
                "display": method.display,
                "valid_until": method.valid_until,
            }
            if method
            else None
        ),
        "next_charge": (
            {
                "at": charge.at,
                "amount": _money(charge.amount, charge.currency),
                "lead_days": charge.lead_days,
                "kind": charge.kind,
            }
            if charge
            else None
        ),
        "renewal_readiness": seen.readiness,
        "renewal_readiness_message": seen.message,
        "current_renewal": current_renewal(renewal),
        "created_at": service.created_at,
        "updated_at": service.updated_at,
        "cancelled_at": service.cancelled_at,
    }


def _all_views(
    services: Sequence[Service] | Sequence[Row[Any]],
    methods: Mapping[str, MethodFacts],
    current: Mapping[str, Renewal] | Mapping[str, Row[Any]],
    settings: Settings,
    now: datetime,
) -> list[ServiceView]:
    return [
        view(s, methods.get(s.payment_method_id or ""), current.get(s.id), settings, now)
        for s in services
    ]


async def many(
    session: AsyncSession, services: Sequence[Service], *, settings: Settings, now: datetime
) -> list[ServiceOut]:
    ids = {s.payment_method_id for s in services if s.payment_method_id is not None}
    methods = await load_methods(session, ids)
    current = await renewals.current_for(session, services)
    views = _all_views(services, methods, current, settings, now)
    return [ServiceOut.model_validate(one) for one in views]


async def read_many(
    reads: Reads, rows: Sequence[Any], *, settings: Settings, now: datetime
) -> list[ServiceView]:
    """`many` for read-only routes, from rows of the services table: the methods' facts and
    the current renewals come as rows too, and no model is built, not even the answer's."""
    ids = {r.payment_method_id for r in rows if r.payment_method_id}
    methods = await read_methods(reads, ids)
    current = await renewals.current_rows(reads, [(r.id, r.expires_at) for r in rows])
    return _all_views(rows, methods, current, settings, now)


async def one(
    session: AsyncSession, service: Service, *, settings: Settings, now: datetime
) -> ServiceOut:
    return (await many(session, [service], settings=settings, now=now))[0]
