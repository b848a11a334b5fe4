"""Authentication: on-session attempts waiting at the gateway's 3-D Secure page are settled
from what the gateway says of their charge.

The customer who pays now (app/renewals/paying.py) may have to authenticate at the
gateway's page, and may never come back to us from it (the tab closed, the network gone).
Their attempt is `requires_action` and `on_session`; whoever learns first how the charge
stands settles it, once, under the row locks of settle.py:

    the return route   the browser comes back from the page (app/renewals/paying.py)
    the sweep          each sweep asks the gateway about the waiting attempts (this module),
                       newest first, a batch per sweep
    the webhook        payment_intent.succeeded (app/renewals/gateway_events.py)

A completed payment settles the renewal and moves the service one period; a failed or
abandoned authentication leaves the renewal waiting for the customer (pay again, or with
another method); a charge still waiting is left alone.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.database import transaction
from app.core.settings import Settings
from app.events.service import NewEvent, emit_all
from app.gateways.port import Charge, GatewayError, PaymentGateway
from app.renewals import links, repository
from app.renewals.engine import outcomes
from app.renewals.engine.settle import settle_attempt
from app.renewals.engine.summary import SweepSummary
from app.renewals.models import Renewal, RenewalAttempt
from app.services.models import Service

log = logging.getLogger("autorenew.renewals")

# Stripe's code for a PaymentIntent whose 3-D Secure the customer failed or abandoned.
AUTHENTICATION_FAILURE = "payment_intent_authentication_failure"


def waiting_at_gateway(renewal: Renewal, attempt: RenewalAttempt) -> bool:
    """The renewal's latest attempt waits for the customer at the gateway's page."""
    return (
        renewal.status == "requires_action"
        and attempt.number == renewal.attempt_count
        and attempt.on_session
        and attempt.status == "requires_action"
        and attempt.gateway_charge_id is not None
    )


async def settle_authentication(
    session: AsyncSession,
    renewal: Renewal,
    attempt: RenewalAttempt,
    service: Service,
    charge: Charge,
    now: datetime,
    tally: SweepSummary,
    settings: Settings,
) -> list[NewEvent]:
    """Settle a waiting attempt (rows locked by the caller) with its charge as it stands;
    the events the change owes, for the caller to emit. Anything but a waiting attempt
    and a charge that has finished is left alone."""
    if not waiting_at_gateway(renewal, attempt) or charge.charge_id != attempt.gateway_charge_id:
        return []
    if charge.status in ("requires_action", "processing"):
        return []
    if (charge.amount, charge.currency) != (attempt.amount, attempt.currency):
        log.error(
            "the gateway reports another amount than the attempt charged; not settled",
            extra={"renewal_id": renewal.id, "charge": charge.charge_id},
        )
        return []
    if charge.status != "succeeded" and charge.failure_code in (AUTHENTICATION_FAILURE, None):
        outcomes.authentication_failed(
            renewal, attempt, now, link=links.authenticate_url(settings, renewal.id)
        )
        return []
    # Paid, or declined once authenticated: the engine's own rules, as for any answer.
    return await settle_attempt(
        session, renewal, attempt, service, charge, now, tally, settings, looked_up=True
    )


async def settle_waiting(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: PaymentGateway,
    now: datetime,
    settings: Settings,
    summary: SweepSummary,
    slots: asyncio.Semaphore,
) -> None:
    """The sweep's stage: ask the gateway about a batch of waiting attempts, settle them."""
    async with transaction(sessionmaker) as session:
        waiting = await repository.waiting_for_authentication(
            session, limit=settings.renewal_batch_size
        )
    if not waiting:
        return

    async def look(charge_id: str) -> Charge | None:
        async with slots:
            try:
                return await gateway.get_charge(charge_id)
            except GatewayError as error:
                log.warning("could not read a charge waiting for authentication: %s", error)
                return None

    charges = await asyncio.gather(*(look(charge_id) for _, charge_id in waiting))
    found = {
        attempt_id: charge
        for (attempt_id, _), charge in zip(waiting, charges, strict=True)
        if charge is not None and charge.status not in ("requires_action", "processing")
    }
    if not found:
        return
    tally = SweepSummary()
    async with transaction(sessionmaker) as session:
        locked = await repository.lock_for_settlement(session, list(found))
        events: list[NewEvent] = []
        for attempt_id, charge in found.items():
            renewal, attempt, service = locked[attempt_id]
            events += await settle_authentication(
                session, renewal, attempt, service, charge, now, tally, settings
            )
        await emit_all(session, events, now=now)
    summary.merge(tally)
