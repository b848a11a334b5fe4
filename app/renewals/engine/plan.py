"""Plan: services whose notice time has come get their next period's renewal, announced.

The first stage of a sweep. Each service says when planning must look at it next
(`renewal_notice_at`; a change to the service sets it to now, app/services/schedule.py).
Planning reads only those whose time has come, along ix_services_renewal_notice, page by
page, and for each works out the exact notice time from the settings
(app/services/lead_time.py):

- still ahead: the time is stored and the service waits (it leaves the range);
- come: the renewal of the next period is planned (insert-if-absent on (service,
  period_start), or a canceled one of that period brought back) and the time is cleared.
  A card renewal is announced at once (`renewal.upcoming`) and charged no earlier than the
  notice plus `renewal_notice_days`, at the latest the last moment that still renews in
  time; a SEPA renewal is due for the SEPA cycle, which fixes and announces its collection
  date in the same run;
- the service no longer renews, or is past its expiry plus grace: the time is cleared (the
  lapse job announces the latter).

Planning may run on several replicas at once and repeat itself: the unique key decides who
plans a renewal, and only the one who did announces it. One period at a time: the next
one is planned once the current renewal has moved the expiry on. A service found past its
expiry (the scheduler was down) gets one renewal, for the period that covers today.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.database import transaction
from app.core.ids import new_id
from app.core.settings import Settings
from app.events.service import NewEvent, emit_all
from app.renewals import repository
from app.renewals.models import Renewal
from app.renewals.notify import upcoming_event
from app.services import schedule
from app.services.lead_time import SEPA, ChargePlan, card_charge, next_charge_at, notice_at
from app.services.methods import load_methods
from app.services.models import Service
from app.services.periods import add_months

PLANNING_PAGE = 500


@dataclass
class Planned:
    renewals: int = 0
    notices: int = 0


async def plan(
    sessionmaker: async_sessionmaker[AsyncSession], now: datetime, settings: Settings
) -> Planned:
    """Plan (and announce) every renewal whose notice time has come."""
    planned = Planned()
    async with transaction(sessionmaker) as session:
        await schedule.follow_settings(session, settings, now)
    while True:
        async with transaction(sessionmaker) as session:
            candidates = await repository.services_to_plan(session, now=now, limit=PLANNING_PAGE)
            due = [
                (service, method_type)
                for service, method_type in candidates
                if _look(service, method_type, now, settings)
            ]
            await _plan_due(session, due, now, settings, planned)
        if len(candidates) < PLANNING_PAGE:
            return planned


def _look(service: Service, method_type: str | None, now: datetime, settings: Settings) -> bool:
    """Store when to look at `service` next; True if its renewal is to be planned now."""
    service.renewal_notice_at = None
    if not renews(service) or method_type is None:
        return False
    if now >= service.expires_at + timedelta(days=settings.renewal_grace_days):
        return False
    announce_at = notice_at(
        settings, expires_at=service.expires_at, kind=service.kind, method_type=method_type
    )
    if announce_at > now:
        service.renewal_notice_at = announce_at
        return False
    return True


def renews(service: Service) -> bool:
    return service.status == "active" and service.auto_renew and bool(service.payment_method_id)


async def _plan_due(
    session: AsyncSession,
    due: list[tuple[Service, str | None]],
    now: datetime,
    settings: Settings,
    planned: Planned,
    *,
    customer_act: bool = False,
) -> list[str]:
    """Plan the renewals of `due`, announce the card ones; the ids of those planned here."""
    rows = {}
    for service, method_type in due:
        row, charge = new_renewal(service, method_type, now, settings, customer_act=customer_act)
        rows[service.id] = (service, row, charge)
    done = await repository.insert_or_revive(session, [row for _, row, _ in rows.values()])
    planned.renewals += len(done)
    # SEPA renewals are announced with their collection date by the SEPA cycle; without
    # the notice (business customers) cards are not announced at all.
    announced = [
        (renewal_id, rows[service_id])
        for renewal_id, service_id in done
        if rows[service_id][2] is not None and settings.renewal_notice_days
    ]
    methods = await load_methods(
        session, {service.payment_method_id or "" for _, (service, _, _) in announced}
    )
    events: list[NewEvent] = []
    for renewal_id, (service, row, charge) in announced:
        assert charge is not None
        events.append(
            upcoming_event(
                Renewal(**{**row, "id": renewal_id}),
                service,
                methods[service.payment_method_id or ""],
                notice=charge.notice,
                charge_at=charge.at,
                settings=settings,
            )
        )
    planned.notices += len(events)
    await emit_all(session, events, now=now)
    return [renewal_id for renewal_id, _ in done]


async def start_by_customer(
    session: AsyncSession,
    service: Service,
    method_type: str,
    renewal: Renewal | None,
    now: datetime,
    settings: Settings,
) -> Renewal | None:
    """Plan `service`'s renewal now, or bring back `renewal` (canceled, or failed with a
    method the customer has since replaced), in the caller's transaction: the customer's
    own act started it and is its notice. A card renewal is announced here; a SEPA one by
    its collection (app/runs/customer_act.py)."""
    service.renewal_notice_at = None
    if renewal is None:
        done = await _plan_due(
            session, [(service, method_type)], now, settings, Planned(), customer_act=True
        )
        return await repository.get(session, done[0], for_update=True) if done else None
    row, charge = new_renewal(service, method_type, now, settings, customer_act=True)
    for column in (
        "period_end", "amount", "currency", "payment_method_id", "payment_method_type",
        "status", "due_at",
        "next_attempt_at", "failed_charge_count", "notified_at", "updated_at",
    ):  # fmt: skip
        setattr(renewal, column, row[column])
    renewal.failure_code = renewal.failure_reason = renewal.action_url = None
    renewal.finished_at = None
    if charge is not None and settings.renewal_notice_days:
        [method] = (await load_methods(session, [service.payment_method_id or ""])).values()
        event = upcoming_event(
            renewal, service, method, notice=charge.notice, charge_at=charge.at, settings=settings
        )
        await emit_all(session, [event], now=now)
    return renewal


def period_end(service: Service, now: datetime) -> datetime:
    """The end of the period the renewal pays for: the next one, or, for a service found
    past its expiry, the one that covers today (never the ended period, then the next)."""
    end = add_months(
        service.expires_at, service.period_months, anchor_day=service.expiry_anchor_day
    )
    while end <= now:
        end = add_months(end, service.period_months, anchor_day=service.expiry_anchor_day)
    return end


def new_renewal(
    service: Service,
    method_type: str | None,
    now: datetime,
    settings: Settings,
    *,
    customer_act: bool = False,
) -> tuple[dict[str, object], ChargePlan | None]:
    """The row of the renewal for the period that starts at the service's expiry, planned
    now, and for a card when it is charged and how it is announced."""
    charge: ChargePlan | None = None
    if method_type == SEPA:
        # The SEPA cycle fixes the collection date and announces it; until then, the usual one.
        due_at = next_charge_at(
            settings, expires_at=service.expires_at, kind=service.kind, method_type=SEPA
        )
        next_attempt_at = now
    else:
        charge = card_charge(
            settings,
            expires_at=service.expires_at,
            kind=service.kind,
            now=now,
            customer_act=customer_act,
        )
        due_at = next_attempt_at = charge.at
    row: dict[str, object] = {
        "id": new_id("ren"),
        "service_id": service.id,
        "customer_id": service.customer_id,
        "period_start": service.expires_at,
        "period_end": period_end(service, now),
        "amount": service.price_amount,
        "currency": service.price_currency,
        "payment_method_id": service.payment_method_id,
        "payment_method_type": method_type,
        "status": "scheduled",
        "due_at": due_at,
        "next_attempt_at": next_attempt_at,
        "attempt_count": 0,
        "failed_charge_count": 0,
        "notified_at": now if charge is not None and settings.renewal_notice_days else None,
        "created_at": now,
        "updated_at": now,
    }
    return row, charge
