"""What the card gateway reports about renewal charges on its own (its webhooks).

    settle_from_gateway  a charge's outcome: the attempt that made it is settled once, by
                         the engine's own rules (engine/settle.py). It serves an attempt
                         whose answer was lost (still `processing`), and one waiting for the
                         customer's 3-D Secure (`requires_action`, or queued again by a
                         retry) that the customer then paid on session. Anything else is
                         left alone: an attempt settled already, or one whose renewal has
                         moved on (a later attempt).
    record_dispute       a charge disputed with the bank: the renewal shows the dispute and
                         `renewal.disputed` goes out; nothing is reversed here, provisioning
                         decides
    refund_charge        a charge refunded in full: the renewal is refunded and the period
                         it granted taken back, by the rule SEPA refunds follow
                         (reversal.refund); a partial refund changes nothing

All of them run in the caller's transaction (never commit) and take the same row locks as
the engine's settlement, so a webhook racing a sweep settles an attempt once. Charges are
found by the id the attempt recorded, or, for an attempt whose answer never arrived, by the
idempotency key the engine sent in the charge's metadata.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.events.payloads import DisputeDetails, EventMoney, RenewalDisputedData
from app.events.service import emit, emit_all
from app.gateways.notices import DISPUTE_CLOSED_STATUSES, Dispute, NoticeOutcome, Refund
from app.gateways.port import AuthenticationRequired, CardDeclined, Charge
from app.renewals import repository, reversal
from app.renewals.engine.job import Outcome
from app.renewals.engine.settle import settle_attempt
from app.renewals.engine.summary import SweepSummary
from app.renewals.models import Renewal, RenewalAttempt
from app.renewals.notify import renewal_data
from app.services.models import Service

log = logging.getLogger("autorenew.renewals")

# The renewal's code once its charge was refunded, and the reason its reversal gives.
REFUNDED_CODE = "charge_refunded"
REFUND_REASON = "card_refund"


async def settle_from_gateway(
    session: AsyncSession,
    charge: Charge,
    now: datetime,
    settings: Settings,
    *,
    failure: CardDeclined | AuthenticationRequired | None = None,
) -> NoticeOutcome:
    """Settle the attempt that made `charge` with what the charge says.

    `failure`: for a failed charge, its last error as the gateway adapter classifies it (a
    hard or soft decline, or 3-D Secure required). Without it a failed charge counts as a
    soft decline, as when the engine finds one by lookup.
    """
    found = await _attempt_of(session, charge)
    if found is None:
        return "not_ours"
    renewal, attempt, service = await _lock(session, found)
    outcome: Outcome = failure if charge.status == "failed" and failure is not None else charge
    if not _still_open(renewal, attempt, outcome):
        if charge.status == "succeeded" and attempt.status != "succeeded":
            # Money moved for an attempt we consider settled otherwise: operators must look
            # (a refund, or a renewal to mark paid); the service is not extended blindly.
            log.error(
                "a charge succeeded for an attempt that was settled otherwise",
                extra={"renewal_id": renewal.id, "charge": charge.charge_id},
            )
        return "unchanged"
    if (charge.amount, charge.currency) != (attempt.amount, attempt.currency):
        log.error(
            "the gateway reports another amount than the attempt charged; not settled",
            extra={"renewal_id": renewal.id, "charge": charge.charge_id},
        )
        return "unchanged"
    events = await settle_attempt(
        session, renewal, attempt, service, outcome, now, SweepSummary(), settings
    )
    await emit_all(session, events, now=now)
    return "applied"


async def _attempt_of(session: AsyncSession, charge: Charge) -> RenewalAttempt | None:
    attempt = await repository.attempt_with_charge(session, charge.charge_id)
    if attempt is not None:
        return attempt
    # The answer to the charge call never arrived, so the attempt never learnt the charge's
    # id: the engine's metadata names the attempt by its idempotency key.
    for key in (charge.idempotency_key, charge.metadata.get("idempotency_key")):
        attempt = await repository.attempt_with_key(session, key) if key else None
        if attempt is not None:
            break
    if attempt is None:
        return None
    renewal_id = charge.metadata.get("renewal_id")
    if (renewal_id is not None and renewal_id != attempt.renewal_id) or (
        attempt.gateway_charge_id not in (None, charge.charge_id)
    ):
        log.warning(
            "a charge's metadata names an attempt that is not its own",
            extra={"charge": charge.charge_id, "attempt_id": attempt.id},
        )
        return None
    return attempt


async def _lock(
    session: AsyncSession, attempt: RenewalAttempt
) -> tuple[Renewal, RenewalAttempt, Service]:
    """The attempt, its renewal and service, locked and read again under the lock: the
    engine may have settled them since they were found. The caller's pending changes are
    written first, as reading again replaces what the session holds."""
    await session.flush()
    return (await repository.lock_for_settlement(session, [attempt.id]))[attempt.id]


def _still_open(renewal: Renewal, attempt: RenewalAttempt, outcome: Outcome) -> bool:
    if attempt.number != renewal.attempt_count:
        return False  # a later attempt (or another method) has taken over the renewal
    if attempt.status == "processing":
        return renewal.status == "processing"
    if attempt.status == "requires_action" and renewal.status in ("requires_action", "scheduled"):
        # Only the customer's completed payment changes a renewal that waits for them; a
        # failed authentication leaves it waiting (they can pay with another method). Paid
        # after a retry put it back in the queue (an old tab), it is paid: charging it
        # again at the next sweep would take the money twice.
        return isinstance(outcome, Charge) and outcome.status == "succeeded"
    return False


async def record_dispute(session: AsyncSession, dispute: Dispute, now: datetime) -> NoticeOutcome:
    """Show the dispute on the renewal its charge paid; announce it when it opens and when
    it is decided."""
    attempt = await repository.attempt_with_charge(session, dispute.charge_id)
    if attempt is None:
        return "not_ours"
    renewal = await repository.get(session, attempt.renewal_id, for_update=True)
    assert renewal is not None  # an attempt's renewal is never deleted
    opened = renewal.dispute_id != dispute.dispute_id
    if not opened and renewal.dispute_status == dispute.status:
        return "unchanged"
    decided = dispute.closed and (opened or renewal.dispute_status not in DISPUTE_CLOSED_STATUSES)
    if opened:
        renewal.dispute_id = dispute.dispute_id
        renewal.disputed_at = dispute.opened_at or now
    renewal.dispute_status, renewal.dispute_reason = dispute.status, dispute.reason
    renewal.updated_at = now
    if opened or decided:
        await _announce_dispute(session, renewal, dispute, now)
    return "applied"


async def _announce_dispute(
    session: AsyncSession, renewal: Renewal, dispute: Dispute, now: datetime
) -> None:
    assert renewal.disputed_at is not None
    await emit(
        session,
        type="renewal.disputed",
        resource_id=renewal.id,
        customer_id=renewal.customer_id,
        data=RenewalDisputedData(
            **renewal_data(renewal).model_dump(),
            dispute=DisputeDetails(
                id=dispute.dispute_id,
                status=dispute.status,
                reason=dispute.reason,
                amount=EventMoney(
                    amount=dispute.amount, currency=dispute.currency or renewal.currency
                ),
                disputed_at=renewal.disputed_at,
            ),
        ),
        now=now,
    )


async def refund_charge(session: AsyncSession, refund: Refund, now: datetime) -> NoticeOutcome:
    """A renewal's charge given back in full: the renewal is refunded."""
    found = await repository.attempt_with_charge(session, refund.charge_id)
    if found is None:
        return "not_ours"
    renewal, attempt, service = await _lock(session, found)
    if attempt.status != "succeeded" or renewal.status != "succeeded":
        return "unchanged"  # refunded already, or never paid by this charge
    if not refund.full:
        # A partial refund is a goodwill gesture or a price correction: the period stays paid.
        log.info(
            "partial refund of a renewal's charge; the renewal stands",
            extra={"renewal_id": renewal.id, "refunded": refund.amount_refunded},
        )
        return "unchanged"
    await reversal.refund(
        session, renewal, service, reason=REFUND_REASON, code=REFUNDED_CODE, now=now
    )
    return "applied"
