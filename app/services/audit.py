"""Who changed a service, and the audit trail every change to it writes (`service_changes`),
in the same transaction as the change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.services.models import Service, ServiceChange

ActorKind = Literal["customer", "admin", "system"]


@dataclass(frozen=True)
class Actor:
    id: str
    kind: ActorKind


def record(
    session: AsyncSession,
    service: Service,
    *,
    actor: Actor,
    field: str,
    before: Any,
    after: Any,
    now: datetime,
    reason: str | None = None,
) -> None:
    session.add(
        ServiceChange(
            service_id=service.id,
            at=now,
            actor_id=actor.id,
            actor_kind=actor.kind,
            field=field,
            before=before,
            after=after,
            reason=reason,
        )
    )
