"""Renewal rows, with their attempts, as the API shows them."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.money import Money
from app.renewals import repository
from app.renewals.models import Renewal
from app.renewals.picture import next_action
from app.renewals.schemas import DisputeOut, RenewalAttemptOut, RenewalOut
from app.services.schemas import RenewalNextAction


async def many(session: AsyncSession, renewals: Sequence[Renewal]) -> list[RenewalOut]:
    attempts = await repository.attempts_for(session, [r.id for r in renewals])
    return [
        RenewalOut(
            id=r.id,
            service_id=r.service_id,
            customer_id=r.customer_id,
            status=r.status,
            period_start=r.period_start,
            period_end=r.period_end,
            amount=Money(amount=r.amount, currency=r.currency),
            payment_method_id=r.payment_method_id,
            due_at=r.due_at,
            next_attempt_at=r.next_attempt_at,
            failure_code=r.failure_code,
            failure_reason=r.failure_reason,
            action_url=r.action_url,
            next_action=RenewalNextAction(**action) if (action := next_action(r)) else None,
            notified_at=r.notified_at,
            created_at=r.created_at,
            updated_at=r.updated_at,
            finished_at=r.finished_at,
            dispute=_dispute(r),
            attempts=[RenewalAttemptOut.model_validate(a) for a in attempts[r.id]],
        )
        for r in renewals
    ]


def _dispute(renewal: Renewal) -> DisputeOut | None:
    if renewal.dispute_id is None or renewal.disputed_at is None:
        return None
    return DisputeOut(
        id=renewal.dispute_id,
        status=renewal.dispute_status or "unknown",
        reason=renewal.dispute_reason,
        disputed_at=renewal.disputed_at,
    )
