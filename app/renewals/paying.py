"""Pay a renewal now: the customer, present, pays it with the service's current method.

    pay           POST /v1/renewals/{id}/pay, and the renewal's `next_action.url` (the
                  browser's way in to 3-D Secure): a new on-session attempt
    come_back     the browser back from the gateway's 3-D Secure page: the payment is
                  settled from what the gateway says (never from the query string)

Exactly once, as the sweep charges: the renewal's row is locked, the new attempt is written
`processing` with its own idempotency key and a lease, and that is committed before the
gateway is called. A sweep on any replica skips a renewal under lease, and a second click
finds it in progress or paid (409 either way). The answer is written back only while the
lease is ours; one that never arrives (a crash, a timeout) is reconciled by a sweep once
the lease runs out, under the same key.

A renewal waiting for 3-D Secure keeps one charge at the gateway: paying again confirms
that same charge on-session (with the service's method as it is now), so a page left open
in an old tab can never take the money a second time.

Cards only: a SEPA direct debit is collected on its pre-notified date, never on demand.

These run in the request's session and commit it themselves, as a job does: the attempt
must be on record before money can move.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import AppError, Conflict, NotFound, ServiceUnavailable
from app.core.settings import Settings
from app.events.service import emit_all
from app.gateways.port import (
    GatewayError,
    GatewayUnavailable,
    InvalidCardRequest,
    PaymentGateway,
    RateLimited,
)
from app.payment_methods.models import PaymentMethod
from app.renewals import links, repository
from app.renewals.engine.authentication import settle_authentication, waiting_at_gateway
from app.renewals.engine.charge import send
from app.renewals.engine.job import ChargeJob, chargeable, prepare_attempt
from app.renewals.engine.outcomes import close_attempt
from app.renewals.engine.settle import settle_attempt
from app.renewals.engine.summary import SweepSummary
from app.renewals.engine.sweep import worker_name
from app.renewals.models import Renewal, RenewalAttempt
from app.services.models import Service

_NOTHING_TO_PAY = ("succeeded", "canceled", "refunded")


@dataclass
class Paid:
    """The renewal after the customer's payment. `refused`: the gateway never took the
    request (rate limited, unavailable); the renewal is as it was, and the caller answers
    this error once the attempt's record is committed."""

    renewal: Renewal
    refused: AppError | None = None


async def pay(
    session: AsyncSession,
    gateway: PaymentGateway,
    *,
    customer_id: str | None,
    renewal_id: str,
    now: datetime,
    settings: Settings,
    worker: str | None = None,
) -> Paid:
    """Pay the renewal now (`customer_id` None: the caller proved it otherwise, by the
    renewal's link). Refusals are raised before anything changes. `worker` names the lease
    holder (each request its own by default)."""
    worker = worker or f"pay:{worker_name()}"
    renewal = await repository.get(session, renewal_id, customer_id=customer_id)
    if renewal is None:
        raise NotFound("No such renewal.", code="renewal_not_found")
    waiting = await repository.latest_attempt(session, renewal)
    if waiting is not None and waiting_at_gateway(renewal, waiting):
        # The customer was sent to the gateway's page before: how did it end?
        await come_back(session, gateway, renewal, now=now, settings=settings)
        if renewal.status != "requires_action":
            return Paid(renewal)
    await session.refresh(renewal, with_for_update=True)
    service = await session.get_one(Service, renewal.service_id)
    method = await session.get(PaymentMethod, service.payment_method_id or "")
    latest = await repository.latest_attempt(session, renewal)
    _refuse(renewal, service, method, latest, now, settings)
    assert method is not None
    if latest is not None and waiting_at_gateway(renewal, latest) and _same_card(latest, method):
        return Paid(renewal)  # its page still waits for the customer: nothing new to send
    before = _Snapshot.of(renewal)
    open_charge = await repository.open_customer_charge(session, renewal)
    job = _start_attempt(session, renewal, method, open_charge, now, settings, worker=worker)
    in_progress = _in_progress(renewal)
    try:
        await session.commit()
    except IntegrityError as exc:
        # Another click (or a sweep) made this attempt first: SQLite has no row lock to
        # make us wait for it, the attempt's unique key stops us instead.
        await session.rollback()
        raise in_progress from exc

    outcome = await send(gateway, job)
    if job.mode == "confirm" and isinstance(outcome, InvalidCardRequest):
        # The charge could not be confirmed (paid meanwhile in an old tab, canceled): how
        # it stands decides, not the refusal.
        job = replace(job, lookup_only=True)
        outcome = await send(gateway, job)
    renewal, attempt, service = (await repository.lock_for_settlement(session, [job.attempt_id]))[
        job.attempt_id
    ]
    if renewal.lease_owner != worker or attempt.status != "processing":
        return Paid(renewal)  # a sweep took it over after our lease; its answer wins
    if isinstance(outcome, RateLimited | GatewayUnavailable):
        # The gateway did nothing with the request: the renewal is as it was.
        close_attempt(attempt, "not_sent", now, code=outcome.code)
        before.restore(renewal)
        return Paid(renewal, refused=_gateway_refusal(outcome))
    events = await settle_attempt(
        session,
        renewal,
        attempt,
        service,
        outcome,
        now,
        SweepSummary(),
        settings,
        looked_up=job.lookup_only,
    )
    await emit_all(session, events, now=now)
    return Paid(renewal)


async def come_back(
    session: AsyncSession,
    gateway: PaymentGateway,
    renewal: Renewal,
    *,
    now: datetime,
    settings: Settings,
) -> None:
    """Settle the renewal's attempt waiting at the gateway's 3-D Secure page, if any, from
    its charge as the gateway reports it now. A gateway that cannot answer leaves it
    waiting: the sweep asks again."""
    attempt = await repository.latest_attempt(session, renewal)
    if attempt is None or attempt.gateway_charge_id is None:
        return
    if not waiting_at_gateway(renewal, attempt):
        return
    try:
        charge = await gateway.get_charge(attempt.gateway_charge_id)
    except GatewayError:
        return
    renewal, attempt, service = (await repository.lock_for_settlement(session, [attempt.id]))[
        attempt.id
    ]
    events = await settle_authentication(
        session, renewal, attempt, service, charge, now, SweepSummary(), settings
    )
    await emit_all(session, events, now=now)


async def gateway_page(session: AsyncSession, renewal: Renewal) -> str | None:
    """The gateway's 3-D Secure page the renewal's payment waits at, if it does."""
    attempt = await repository.latest_attempt(session, renewal)
    if attempt is None or not waiting_at_gateway(renewal, attempt):
        return None
    return attempt.action_url


def _refuse(
    renewal: Renewal,
    service: Service,
    method: PaymentMethod | None,
    latest: RenewalAttempt | None,
    now: datetime,
    settings: Settings,
) -> None:
    """Why this renewal cannot be paid now, as the problem the customer gets."""
    # Not "status": that is the problem document's own (the HTTP status).
    status = {"renewal_status": renewal.status}
    if renewal.status in _NOTHING_TO_PAY:
        raise Conflict(
            f"Nothing to pay: this renewal is {renewal.status}.",
            code="renewal_not_payable",
            extra=status,
        )
    if method is not None and method.type != "card":
        # Before "in progress": a pre-notified collection is under way too, but what the
        # customer can do is choose a card (which takes back a collection not yet filed).
        raise Conflict(
            "A direct debit is collected on its pre-notified date, not on demand: to pay "
            "now, choose a card for the service.",
            code="pay_now_card_only",
            extra={"payment_method_id": method.id},
        )
    if renewal.status == "processing" or (latest is not None and latest.status == "processing"):
        # A charge (or a pre-notified SEPA collection) is under way: its answer decides.
        raise _in_progress(renewal)
    if service.status != "active" or service.expires_at != renewal.period_start:
        raise Conflict(
            "Nothing to pay: the service is no longer in the period this renewal is for.",
            code="renewal_not_payable",
            extra=status,
        )
    if now >= service.expires_at + timedelta(days=settings.renewal_grace_days):
        raise Conflict(
            "The service expired past its grace period; contact us to get it back.",
            code="service_lapsed",
            extra=status,
        )
    if method is None:
        raise Conflict("Choose a payment method for the service first.", code="no_payment_method")
    if not chargeable(method):
        raise Conflict(
            "The service's payment method cannot be charged: choose another one.",
            code="payment_method_not_usable",
            extra={"payment_method_id": method.id, "payment_method_status": method.status},
        )


def _in_progress(renewal: Renewal) -> Conflict:
    return Conflict(
        "A payment of this renewal is already under way.",
        code="renewal_payment_in_progress",
        extra={"renewal_status": renewal.status, "due_at": renewal.due_at.isoformat()},
    )


def _same_card(attempt: RenewalAttempt, method: PaymentMethod) -> bool:
    return attempt.payment_method_id == method.id


def _start_attempt(
    session: AsyncSession,
    renewal: Renewal,
    method: PaymentMethod,
    confirm: str | None,
    now: datetime,
    settings: Settings,
    *,
    worker: str,
) -> ChargeJob:
    """`confirm`: the renewal's charge a browser could still confirm (waiting for, or failed
    at, authentication): confirmed again rather than doubled, so whichever page or client
    secret the customer uses, it is one payment."""
    renewal.finished_at = None  # a failed renewal is open again while it is paid
    job, row = prepare_attempt(
        renewal,
        method,
        now,
        worker=worker,
        lease_seconds=settings.renewal_lease_seconds,
        mode="confirm" if confirm else "on_session",
        charge_id=confirm,
        return_url=links.return_url(settings, renewal.id),
    )
    session.add(RenewalAttempt(**row))
    return job


@dataclass(frozen=True)
class _Snapshot:
    """What a renewal looked like before an attempt the gateway never took."""

    status: str
    next_attempt_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, renewal: Renewal) -> _Snapshot:
        return cls(renewal.status, renewal.next_attempt_at, renewal.finished_at)

    def restore(self, renewal: Renewal) -> None:
        renewal.status, renewal.next_attempt_at = self.status, self.next_attempt_at
        renewal.finished_at = self.finished_at
        renewal.lease_owner = renewal.lease_expires_at = None


def _gateway_refusal(outcome: RateLimited | GatewayUnavailable) -> AppError:
    retry_after = int(outcome.retry_after or 1) if isinstance(outcome, RateLimited) else 60
    return ServiceUnavailable(
        "The payment gateway cannot take the payment right now; try again shortly.",
        code="gateway_unavailable",
        extra={"retry_after": retry_after},
        headers={"Retry-After": str(retry_after)},
    )
