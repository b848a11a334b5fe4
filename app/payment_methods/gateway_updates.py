"""What the card gateway reports about a card on its own (its webhooks), applied to our rows.

    card_updated    the card updater (or the issuer) gave new details: brand, last 4, expiry;
                    an `expired` card with a future expiry can pay again
    card_detached   the card was detached from its gateway customer: it can no longer be
                    charged; it becomes `failed` (code payment_method_detached)
    setup_finished  a 3-D Secure set-up ended while the customer's page was closed: the card
                    is validated or failed exactly as `validate` would have done it

A detached card becomes `failed`, not `revoked`: revoking is the customer's own act (it
unassigns the method and cancels renewals at once), whereas a card the gateway dropped
stays on the services it pays, whose readiness says so, and the renewal engine treats it
like any card that cannot pay: the renewal waits on its dunning schedule (or the fallback
picks another card) while the customer chooses another method. The SEPA returns that end a
mandate do the same (app/sepa/return_import.py).

Each function locks the rows it may change and answers what it did (`NoticeOutcome`).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import AppError
from app.gateways.notices import NoticeOutcome
from app.gateways.port import CardDetails, PaymentGateway
from app.payment_methods import cards, events, repository
from app.payment_methods.models import PaymentMethod, PaymentMethodStatus
from app.services.methods import card_valid_until

log = logging.getLogger("autorenew.payment_methods")

DETACHED = "payment_method_detached"
# Failed or revoked cards stay as they are: a failed card's customer registers it again (a
# new set-up), and a revoked one was removed by its customer.
_SETTLED = (PaymentMethodStatus.FAILED, PaymentMethodStatus.REVOKED)


async def card_updated(
    session: AsyncSession, gateway_payment_method_id: str, card: CardDetails, now: datetime
) -> NoticeOutcome:
    """New card details from the gateway (never a number: brand, last 4, expiry)."""
    methods = await repository.cards_with_gateway_id(session, gateway_payment_method_id)
    if not methods:
        return "not_ours"
    updated = []
    for method in methods:
        if method.status not in _SETTLED and await _take(session, method, card, now):
            updated.append(method)
    await session.flush()
    for method in updated:
        await events.announce(session, "updated", method, now)
    return "applied" if updated else "unchanged"


async def _take(
    session: AsyncSession, method: PaymentMethod, card: CardDetails, now: datetime
) -> bool:
    details = (card.brand, card.last4, card.exp_month, card.exp_year)
    current = (method.card_brand, method.card_last4, method.card_exp_month, method.card_exp_year)
    revive = (
        method.status == PaymentMethodStatus.EXPIRED
        and card_valid_until(card.exp_month, card.exp_year) > now
    )
    if details == current and not revive:
        return False
    (method.card_brand, method.card_last4, method.card_exp_month, method.card_exp_year) = details
    method.updated_at = now
    if revive and await _may_go_live(session, method):
        # Back to what it was before it expired. The expiry warning is per expiry date
        # (app/services/expiry_watch.py), so the new date gets its own in time.
        was_validated = method.validated_at is not None
        method.status = (
            PaymentMethodStatus.VALIDATED if was_validated else PaymentMethodStatus.REQUIRES_ACTION
        )
    return True


async def _may_go_live(session: AsyncSession, method: PaymentMethod) -> bool:
    """Whether the card can be live again: not if its customer has registered the same card
    since (one live registration per card), which then pays instead."""
    if not method.card_fingerprint:
        return True
    live = await repository.find_live_card(session, method.customer_id, method.card_fingerprint)
    return live is None or live.id == method.id


async def card_detached(
    session: AsyncSession, gateway_payment_method_id: str, now: datetime
) -> NoticeOutcome:
    """The gateway will no longer charge this card."""
    methods = await repository.cards_with_gateway_id(session, gateway_payment_method_id)
    if not methods:
        return "not_ours"
    failed = [m for m in methods if m.status not in _SETTLED]
    for method in failed:
        method.status = PaymentMethodStatus.FAILED
        method.failure_code = DETACHED
        method.updated_at = now
    await session.flush()
    for method in failed:
        await events.announce(session, "failed", method, now)
    return "applied" if failed else "unchanged"


async def setup_finished(
    session: AsyncSession, setup_id: str, gateway: PaymentGateway, now: datetime
) -> NoticeOutcome:
    """A set-up (3-D Secure) ended: the card is validated or failed by the same code that
    `POST /v1/payment-methods/{id}/validate` runs, which asks the gateway for the set-up as
    it stands (so an event that arrives late or twice cannot undo a newer state)."""
    method = await repository.card_with_setup_id(session, setup_id)
    if method is None:
        return "not_ours"
    if method.status != PaymentMethodStatus.REQUIRES_ACTION:
        return "unchanged"  # validated by the customer's own call first, or no longer live
    try:
        outcome = await cards.refresh(session, method, gateway, now)
    except AppError as problem:
        if problem.status >= 500 or problem.status == 429:
            raise  # the gateway is away: answer so that the event is sent again later
        log.warning(
            "gateway set-up could not be read back",
            extra={"payment_method_id": method.id, "code": problem.code},
        )
        return "unchanged"
    changed = outcome.method.status != PaymentMethodStatus.REQUIRES_ACTION
    return "applied" if changed else "unchanged"
