"""Renewal rows, with their attempts, as the API shows them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.money import Money
from app.renewals import repository
from app.renewals.models import Renewal, RenewalAttempt
from app.renewals.picture import next_action
from app.renewals.reasons import told_to_customer
from app.renewals.schemas import DisputeOut, RenewalAttemptOut, RenewalOut
from app.services.schemas import RenewalNextAction

Shown = Callable[[str | None], str | None]


async def many(
    session: AsyncSession, renewals: Sequence[Renewal], *, for_admin: bool = False
) -> list[RenewalOut]:
    """`for_admin`: the precise decline codes; a customer sees only what they can act on
    (app/renewals/reasons.py: lost_card or stolen_card would help a card tester)."""
    shown = (lambda code: code) if for_admin else told_to_customer
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
            failure_code=shown(r.failure_code),
            failure_reason=r.failure_reason,
            action_url=r.action_url,
            next_action=RenewalNextAction(**action) if (action := next_action(r)) else None,
            notified_at=r.notified_at,
            created_at=r.created_at,
            updated_at=r.updated_at,
            finished_at=r.finished_at,
            dispute=_dispute(r),
            attempts=[_attempt(a, shown) for a in attempts[r.id]],
        )
        for r in renewals
    ]


def _attempt(
    attempt: RenewalAttempt, shown: Callable[[str | None], str | None]
) -> RenewalAttemptOut:
    out = RenewalAttemptOut.model_validate(attempt)
    return out.model_copy(
        update={"failure_code": shown(out.failure_code), "decline_code": shown(out.decline_code)}
    )


def _dispute(renewal: Renewal) -> DisputeOut | None:
    if renewal.dispute_id is None or renewal.disputed_at is None:
        return None
    return DisputeOut(
        id=renewal.dispute_id,
        status=renewal.dispute_status or "unknown",
        reason=renewal.dispute_reason,
        disputed_at=renewal.disputed_at,
    )
