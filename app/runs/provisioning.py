"""Provisioning's update of a service, with what renewals know of it.

The registry (app/services/registry.py) refuses to move an expiry before the end of a paid
period unless told to; which period was paid is the renewals' to say. This module sits
above both, as the runs do, so that services never import renewals.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.renewals.repository import latest_paid
from app.services import registry
from app.services import repository as services
from app.services.audit import Actor
from app.services.models import Service
from app.services.schemas import ServiceUpsert


async def upsert_service(
    session: AsyncSession,
    service_id: str,
    body: ServiceUpsert,
    *,
    if_match: str | None,
    actor: Actor,
    now: datetime,
) -> tuple[Service, bool]:
    # The service row is locked first: a renewal settling now waits for us, or has
    # finished and its period is seen below.
    existing = await services.get(session, service_id, for_update=True)
    paid = await latest_paid(session, service_id) if existing is not None else None
    return await registry.upsert_service(
        session,
        service_id,
        body,
        actor=actor,
        now=now,
        if_match=if_match,
        paid=registry.PaidPeriod(paid.id, paid.period_end) if paid is not None else None,
    )
