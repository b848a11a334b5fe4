"""Turns service rows into what the API shows: the method's summary and the picture of the
next renewal (readiness, next charge, the current renewal), from the same facts and rules
the renewal engine uses (app/renewals/picture.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.money import Money
from app.core.settings import Settings
from app.renewals import repository as renewals
from app.renewals.models import Renewal
from app.renewals.picture import next_action, picture
from app.renewals.reasons import told_to_customer
from app.services.methods import MethodFacts, load_methods, read_methods
from app.services.models import Service
from app.services.schemas import (
    CurrentRenewal,
    NextCharge,
    PaymentMethodSummary,
    RenewalNextAction,
    ServiceOut,
)


def current_renewal(renewal: Renewal | Row[Any] | None) -> CurrentRenewal | None:
    if renewal is None:
        return None
    action = next_action(renewal)
    return CurrentRenewal(
        id=renewal.id,
        status=renewal.status,
        amount=Money(amount=renewal.amount, currency=renewal.currency),
        attempt_count=renewal.attempt_count,
        next_attempt_at=renewal.next_attempt_at,
        # The customer's view and the admin's alike: the admin's renewal list has the precise
        # decline (app/renewals/reasons.py).
        failure_code=told_to_customer(renewal.failure_code),
        failure_reason=renewal.failure_reason,
        next_action=RenewalNextAction(**action) if action else None,
        notified_at=renewal.notified_at,
    )


def _out(
    service: Service | Row[Any],
    method: MethodFacts | None,
    renewal: Renewal | Row[Any] | None,
    settings: Settings,
    now: datetime,
) -> ServiceOut:
    seen = picture(service, method, renewal, settings, now)
    charge = seen.next_charge
    return ServiceOut(
        id=service.id,
        customer_id=service.customer_id,
        kind=service.kind,
        name=service.name,
        status=service.status,
        expires_at=service.expires_at,
        period_months=service.period_months,
        price=Money(amount=service.price_amount, currency=service.price_currency),
        auto_renew=service.auto_renew,
        payment_method=(
            PaymentMethodSummary(
                id=method.id,
                type=method.type,
                status=method.status,
                display=method.display,
                valid_until=method.valid_until,
            )
            if method
            else None
        ),
        next_charge=(
            NextCharge(
                at=charge.at,
                amount=Money(amount=charge.amount, currency=charge.currency),
                lead_days=charge.lead_days,
                kind=charge.kind,
            )
            if charge
            else None
        ),
        renewal_readiness=seen.readiness,
        renewal_readiness_message=seen.message,
        current_renewal=current_renewal(renewal),
        created_at=service.created_at,
        updated_at=service.updated_at,
        cancelled_at=service.cancelled_at,
    )


def _all_out(
    services: Sequence[Service] | Sequence[Row[Any]],
    methods: Mapping[str, MethodFacts],
    current: Mapping[str, Renewal] | Mapping[str, Row[Any]],
    settings: Settings,
    now: datetime,
) -> list[ServiceOut]:
    return [
        _out(s, methods.get(s.payment_method_id or ""), current.get(s.id), settings, now)
        for s in services
    ]


async def many(
    session: AsyncSession, services: Sequence[Service], *, settings: Settings, now: datetime
) -> list[ServiceOut]:
    ids = {s.payment_method_id for s in services if s.payment_method_id is not None}
    methods = await load_methods(session, ids)
    current = await renewals.current_for(session, services)
    return _all_out(services, methods, current, settings, now)


async def read_many(
    session: AsyncSession, rows: Sequence[Row[Any]], *, settings: Settings, now: datetime
) -> list[ServiceOut]:
    """`many` for read-only routes, from rows of the services table: the methods' facts and
    the current renewals come as rows too, and no model is built."""
    ids = {r.payment_method_id for r in rows if r.payment_method_id}
    methods = await read_methods(session, ids)
    current = await renewals.current_rows(session, [(r.id, r.expires_at) for r in rows])
    return _all_out(rows, methods, current, settings, now)


async def one(
    session: AsyncSession, service: Service, *, settings: Settings, now: datetime
) -> ServiceOut:
    return (await many(session, [service], settings=settings, now=now))[0]
