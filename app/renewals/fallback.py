"""The optional payment-method fallback of the renewal engine (off by default; on with
`AUTORENEW_RENEWAL_FALLBACK_ENABLED=true`).

When the method of a renewal fails for good — a hard decline, the last soft decline of the
dunning schedule, a method the gateway refuses, or a method that can no longer be used
(expired card, failed verification) — the renewal does not fail yet. The service switches to
the customer's next method that can pay, and the renewal is charged again at once with a new
attempt, so with a new idempotency key: a key is never re-sent with another method.

The next method is the customer's default method, then their other validated methods, oldest
first; never one already tried on this renewal, never another customer's. Card renewals fall
back to cards only: a SEPA debit must be pre-notified days before its collection date, and
the engine does not charge SEPA renewals at all (pain.008 batches collect them), so a switch
to SEPA at the last moment could neither be announced nor collected in time.

Each switch is on record: a row in the service's audit trail (actor `system:renewal-fallback`,
with a reason naming the renewal and the failure) and a `service.payment_method_changed`
event, both in the engine's transaction. The grace rule bounds everything: a switch is made
only while the service has not lapsed past its grace days, and the new method's dunning is
bounded by the same rule (`dunning.after_soft_failure`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict
from app.core.settings import Settings
from app.payment_methods.models import PaymentMethod
from app.renewals.models import RenewalAttempt
from app.renewals.state import RenewalState
from app.services import service as services
from app.services.audit import Actor
from app.services.methods import facts
from app.services.models import Service

ACTOR = Actor("system:renewal-fallback", "system")


def within_grace(service: Service, now: datetime, grace_days: int) -> bool:
    """A switch charges at once: only while the service has not lapsed past its grace."""
    return now < service.expires_at + timedelta(days=grace_days)


def can_pay_now(service: Service, method: PaymentMethod, settings: Settings, now: datetime) -> bool:
    """Whether `method` may pay `service`'s renewal right now, by the rules a customer's own
    assignment follows (status, currency, card expiry), plus: a card, with a gateway token,
    valid today."""
    if method.customer_id != service.customer_id:
        return False
    if method.type != "card" or not method.gateway_payment_method_id:
        return False  # card → card only: see the module's docstring
    method_facts = facts(method)
    if method_facts.valid_until is not None and method_facts.valid_until <= now:
        return False
    try:
        services.check_method_can_pay(service, method_facts, settings)
    except Conflict:
        return False
    return True


def next_method(
    service: Service,
    methods: Iterable[PaymentMethod],
    *,
    tried: set[str],
    settings: Settings,
    now: datetime,
) -> PaymentMethod | None:
    """The method to fall back to: the default one first, then the oldest; None if none is left."""
    usable = [m for m in methods if m.id not in tried and can_pay_now(service, m, settings, now)]
    usable.sort(key=lambda m: (not m.is_default, m.created_at, m.id))
    return usable[0] if usable else None


async def tried_method_ids(session: AsyncSession, renewal: RenewalState) -> set[str]:
    """The methods this renewal has already been charged with (each attempt names its own)."""
    query = select(RenewalAttempt.payment_method_id).where(RenewalAttempt.renewal_id == renewal.id)
    return set((await session.execute(query)).scalars())


async def validated_methods(session: AsyncSession, customer_id: str) -> Sequence[PaymentMethod]:
    query = select(PaymentMethod).where(
        PaymentMethod.customer_id == customer_id, PaymentMethod.status == "validated"
    )
    return list((await session.execute(query)).scalars())


async def switch_to_next_method(
    session: AsyncSession,
    renewal: RenewalState,
    service_id: str,
    *,
    failed_method_id: str | None,
    failure: str,
    settings: Settings,
    now: datetime,
) -> PaymentMethod | None:
    """Move the service (and `renewal`) from `failed_method_id` to the next method that can pay,
    on record; None when there is none left or the switch is not allowed any more (the
    service changed meanwhile, or lapsed past its grace). The caller reschedules."""
    # Lock the service: a method the customer assigns at this moment must not be overwritten,
    # so the switch is made only from the method that failed. Read as a mapped instance
    # (the sweep's own copy is a plain row): the switch goes on record through the ORM.
    service = await session.get(Service, service_id, with_for_update=True, populate_existing=True)
    if service is None:
        return None
    if (
        failed_method_id is None
        or service.payment_method_id != failed_method_id
        or service.customer_id != renewal.customer_id
        or service.status != "active"
        or not service.auto_renew
        or not within_grace(service, now, settings.renewal_grace_days)
    ):
        return None
    tried = await tried_method_ids(session, renewal) | {failed_method_id}
    method = next_method(
        service,
        await validated_methods(session, service.customer_id),
        tried=tried,
        settings=settings,
        now=now,
    )
    if method is None:
        return None
    await services.switch_payment_method(
        session,
        service,
        method.id,
        actor=ACTOR,
        reason=f"renewal {renewal.id}: {failed_method_id} failed ({failure})"[:255],
        now=now,
    )
    renewal.payment_method_id = method.id
    return method
