"""The customer's choices of how each of their services is renewed: which method pays it,
auto-renew on or off. Every change to those choices is written to the audit trail in the
same transaction (`audit.py`); the registry itself, fed by provisioning, is `registry.py`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, NotFound
from app.core.settings import Settings
from app.events.payloads import ServiceAutoRenewChangedData, ServicePaymentMethodChangedData
from app.events.service import emit
from app.renewals import repository as renewals
from app.services import repository, schedule
from app.services.audit import Actor, record
from app.services.lead_time import next_charge_at
from app.services.methods import MethodFacts, default_method, load_method, method_type
from app.services.models import Service


async def get_owned(
    session: AsyncSession, customer_id: str, service_id: str, *, for_update: bool = False
) -> Service:
    service = await repository.get(
        session, service_id, customer_id=customer_id, for_update=for_update
    )
    if service is None:
        # Another customer's service answers exactly like one that does not exist.
        raise NotFound("No such service.", code="service_not_found")
    return service


def check_method_can_pay(service: Service, method: MethodFacts, settings: Settings) -> None:
    """Raise the 409 that tells the customer why this method cannot renew this service."""
    if method.status != "validated":
        raise Conflict(
            f"Payment method {method.id} is {method.status}; only a validated method can pay.",
            code="payment_method_not_validated",
            extra={"payment_method_id": method.id, "payment_method_status": method.status},
        )
    if not method.supports_currency(service.price_currency):
        raise Conflict(
            f"A {method.type} method cannot pay in {service.price_currency}.",
            code="currency_not_supported",
            extra={"payment_method_id": method.id, "currency": service.price_currency},
        )
    charge_at = next_charge_at(
        settings, expires_at=service.expires_at, kind=service.kind, method_type=method.type
    )
    if method.valid_until is not None and method.valid_until <= charge_at:
        raise Conflict(
            "The card expires before the next renewal is charged.",
            code="card_expires_before_renewal",
            extra={
                "valid_until": method.valid_until.isoformat(),
                "next_charge_at": charge_at.isoformat(),
            },
        )


async def _usable_method(session: AsyncSession, customer_id: str, method_id: str) -> MethodFacts:
    method = await load_method(session, customer_id=customer_id, method_id=method_id)
    if method is None:
        raise NotFound("No such payment method.", code="payment_method_not_found")
    return method


async def _assign(
    session: AsyncSession,
    service: Service,
    method_id: str | None,
    *,
    actor: Actor,
    now: datetime,
    reason: str | None = None,
) -> None:
    if service.payment_method_id == method_id:
        return
    await emit(
        session,
        type="service.payment_method_changed",
        resource_id=service.id,
        customer_id=service.customer_id,
        data=ServicePaymentMethodChangedData(
            service_id=service.id,
            customer_id=service.customer_id,
            payment_method_id=method_id,
            previous_payment_method_id=service.payment_method_id,
        ),
        now=now,
    )
    record(
        session,
        service,
        actor=actor,
        field="payment_method_id",
        before=service.payment_method_id,
        after=method_id,
        now=now,
        reason=reason,
    )
    service.payment_method_id = method_id
    service.payment_method_type = await method_type(session, method_id)
    await renewals.follow_method_type(session, service.id, service.payment_method_type)
    service.updated_at = now
    schedule.renewal_changed(service, now)


async def switch_payment_method(
    session: AsyncSession,
    service: Service,
    method_id: str,
    *,
    actor: Actor,
    reason: str,
    now: datetime,
) -> None:
    """A change of method the system makes on its own (the renewal fallback): the same event
    and audit row as a customer's assignment, with the reason why. The caller has checked,
    with `check_method_can_pay`, that the method is the service customer's and can pay."""
    await _assign(session, service, method_id, actor=actor, now=now, reason=reason)


async def assign_payment_method(
    session: AsyncSession,
    customer_id: str,
    service_id: str,
    method_id: str,
    *,
    auto_renew: bool = True,
    settings: Settings,
    actor: Actor,
    now: datetime,
) -> Service:
    """Choosing a method is the customer's opt-in: auto-renew goes on with it (on an active
    service), unless `auto_renew` says otherwise."""
    service = await get_owned(session, customer_id, service_id, for_update=True)
    method = await _usable_method(session, customer_id, method_id)
    check_method_can_pay(service, method, settings)
    await _assign(session, service, method.id, actor=actor, now=now)
    await _auto_renew(session, service, auto_renew, actor=actor, now=now)
    return service


async def unassign_payment_method(
    session: AsyncSession, customer_id: str, service_id: str, *, actor: Actor, now: datetime
) -> Service:
    service = await get_owned(session, customer_id, service_id, for_update=True)
    await _assign(session, service, None, actor=actor, now=now)
    return service


async def assign_payment_method_to_many(
    session: AsyncSession,
    customer_id: str,
    method_id: str,
    service_ids: Sequence[str] | None,
    *,
    auto_renew: bool = True,
    settings: Settings,
    actor: Actor,
    now: datetime,
    reason: str | None = None,
) -> list[Service]:
    """ "Use this card for everything": all the services switch, or none does. `reason`
    goes to the audit trail (an import says which run and line)."""
    method = await _usable_method(session, customer_id, method_id)
    wanted = (
        sorted(set(service_ids))
        if service_ids is not None
        else (await repository.active_ids_for_customer(session, customer_id))
    )
    services = await repository.get_many(session, wanted, customer_id=customer_id, for_update=True)
    check_many_can_pay(wanted, services, method, settings)
    for service in services:
        await _assign(session, service, method.id, actor=actor, now=now, reason=reason)
        await _auto_renew(session, service, auto_renew, actor=actor, now=now, reason=reason)
    return services


def check_many_can_pay(
    wanted: Sequence[str],
    services: Sequence[Service],
    method: MethodFacts,
    settings: Settings,
    *,
    to_renew: bool = False,
) -> None:
    """All of `wanted` are among `services` (the customer's, locked) and `method` can pay
    each, or the error that says which not (nothing changed). `to_renew`: they must also
    renew automatically, so a cancelled one is refused too."""
    missing = sorted(set(wanted) - {service.id for service in services})
    if missing:
        raise NotFound(
            "Some services do not exist.", code="service_not_found", extra={"service_ids": missing}
        )
    refusals = []
    for service in services:
        try:
            if to_renew and service.status != "active":
                raise Conflict("A cancelled service cannot be renewed.", code="service_cancelled")
            check_method_can_pay(service, method, settings)
        except Conflict as refusal:
            refusals.append(
                {"service_id": service.id, "code": refusal.code, "detail": refusal.detail}
            )
    if refusals:
        raise Conflict(
            "The method cannot pay for every service; nothing was changed.",
            code="bulk_assignment_refused",
            extra={"refusals": refusals},
        )


async def renew_with(
    session: AsyncSession,
    services: Sequence[Service],
    method_id: str,
    *,
    actor: Actor,
    now: datetime,
    reason: str | None = None,
) -> None:
    """Assign `method_id` to `services` and turn their auto-renew on, as the customer's own
    choice would (audit rows, events). The caller ran `check_many_can_pay(…, to_renew=True)`
    on these services, locked."""
    for service in services:
        await _assign(session, service, method_id, actor=actor, now=now, reason=reason)
        await _auto_renew(session, service, True, actor=actor, now=now, reason=reason)


async def services_using(session: AsyncSession, method_id: str) -> list[Service]:
    """The active services a payment method renews, locked: revoking it must not race an
    assignment."""
    return await repository.using_payment_method(session, method_id, for_update=True)


async def detach_payment_method(
    session: AsyncSession, services: Sequence[Service], *, actor: Actor, now: datetime
) -> None:
    for service in services:
        await _assign(session, service, None, actor=actor, now=now)


async def set_auto_renew(
    session: AsyncSession,
    customer_id: str,
    service_id: str,
    enabled: bool,
    *,
    settings: Settings,
    actor: Actor,
    now: datetime,
    reason: str | None = None,
) -> Service:
    """Turning auto-renew on without a method falls back to the customer's default one."""
    service = await get_owned(session, customer_id, service_id, for_update=True)
    if enabled and service.status != "active":
        raise Conflict("A cancelled service cannot be renewed.", code="service_cancelled")
    if enabled and service.payment_method_id is None:
        fallback = await default_method(session, customer_id=customer_id)
        if fallback is None:
            raise Conflict(
                "Choose a payment method for this service first (or set a default method).",
                code="payment_method_required",
            )
        check_method_can_pay(service, fallback, settings)
        await _assign(session, service, fallback.id, actor=actor, now=now, reason=reason)
    await _auto_renew(session, service, enabled, actor=actor, now=now, reason=reason)
    return service


async def _auto_renew(
    session: AsyncSession,
    service: Service,
    enabled: bool,
    *,
    actor: Actor,
    now: datetime,
    reason: str | None = None,
) -> None:
    if service.auto_renew == enabled or (enabled and service.status != "active"):
        return
    await emit(
        session,
        type="service.auto_renew_changed",
        resource_id=service.id,
        customer_id=service.customer_id,
        data=ServiceAutoRenewChangedData(
            service_id=service.id, customer_id=service.customer_id, auto_renew=enabled
        ),
        now=now,
    )
    record(
        session,
        service,
        actor=actor,
        field="auto_renew",
        before=service.auto_renew,
        after=enabled,
        now=now,
        reason=reason,
    )
    service.auto_renew = enabled
    service.updated_at = now
    schedule.renewal_changed(service, now)
