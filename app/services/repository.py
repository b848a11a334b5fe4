"""All SQL about services. Every customer-facing query starts from `_owned_by`, so the
ownership filter is written once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.services.models import Service, ServiceChange


def _owned_by(customer_id: str | None) -> Select[tuple[Service]]:
    query = select(Service)
    if customer_id is not None:
        query = query.where(Service.customer_id == customer_id)
    return query


async def get(
    session: AsyncSession,
    service_id: str,
    *,
    customer_id: str | None = None,
    for_update: bool = False,
) -> Service | None:
    """One service; with `customer_id`, only if it is that customer's."""
    query = _owned_by(customer_id).where(Service.id == service_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def get_many(
    session: AsyncSession, service_ids: Sequence[str], *, customer_id: str, for_update: bool
) -> list[Service]:
    query = _owned_by(customer_id).where(Service.id.in_(service_ids)).order_by(Service.id)
    if for_update:
        query = query.with_for_update()
    return list((await session.execute(query)).scalars())


def list_query(
    *,
    customer_id: str | None,
    status: str | None = None,
    auto_renew: bool | None = None,
    expiring_before: datetime | None = None,
) -> Select[tuple[Service]]:
    """Services filtered for a list; app.core.pagination orders and pages it."""
    query = _owned_by(customer_id)
    if status is not None:
        query = query.where(Service.status == status)
    if auto_renew is not None:
        query = query.where(Service.auto_renew == auto_renew)
    if expiring_before is not None:
        query = query.where(Service.expires_at < expiring_before)
    return query


async def active_ids_for_customer(session: AsyncSession, customer_id: str) -> list[str]:
    query = (
        select(Service.id)
        .where(Service.customer_id == customer_id, Service.status == "active")
        .order_by(Service.id)
    )
    return list((await session.execute(query)).scalars())


async def using_payment_method(
    session: AsyncSession, payment_method_id: str, *, for_update: bool = False
) -> list[Service]:
    query = (
        select(Service)
        .where(Service.payment_method_id == payment_method_id, Service.status == "active")
        .order_by(Service.id)
    )
    if for_update:
        query = query.with_for_update()
    return list((await session.execute(query)).scalars())


async def changes(session: AsyncSession, service_id: str) -> list[ServiceChange]:
    query = (
        select(ServiceChange)
        .where(ServiceChange.service_id == service_id)
        .order_by(ServiceChange.id)
    )
    return list((await session.execute(query)).scalars())
