"""Which events a renewal's state change owes the other systems, decided in one place.

The engine changes a renewal, then calls `emit_transition` in the same transaction with a
snapshot of how it was before; the outbox makes the events commit (or roll back) with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.money import format_money
from app.core.settings import Settings
from app.events.payloads import (
    EventMoney,
    EventNextAction,
    MethodSummary,
    RenewalData,
    RenewalUpcomingData,
    SepaCollectionDetails,
    ServiceRenewedData,
    ServiceSummary,
    StopInstruction,
)
from app.events.service import NewEvent, emit_all
from app.renewals.picture import next_action
from app.renewals.state import RenewalState
from app.services.lead_time import NoticeKind, notice_days
from app.services.methods import MethodFacts
from app.services.state import ServiceState


@dataclass(frozen=True)
class Before:
    status: str
    failed_charge_count: int
    service_expires_at: datetime

    @classmethod
    def of(cls, renewal: RenewalState, service: ServiceState) -> Before:
        return cls(renewal.status, renewal.failed_charge_count, service.expires_at)


def renewal_data(renewal: RenewalState) -> RenewalData:
    action = next_action(renewal)
    return RenewalData(
        id=renewal.id,
        service_id=renewal.service_id,
        customer_id=renewal.customer_id,
        status=renewal.status,
        amount=EventMoney(amount=renewal.amount, currency=renewal.currency),
        payment_method_id=renewal.payment_method_id,
        period_start=renewal.period_start,
        period_end=renewal.period_end,
        scheduled_for=renewal.due_at,
        attempt_count=renewal.attempt_count,
        next_attempt_at=renewal.next_attempt_at,
        failure_code=renewal.failure_code,
        failure_message=renewal.failure_reason,
        next_action_url=renewal.action_url,
        next_action=EventNextAction(**action) if action else None,
    )


async def emit_transition(
    session: AsyncSession,
    renewal: RenewalState,
    service: ServiceState,
    before: Before,
    now: datetime,
) -> None:
    await emit_all(session, transition_events(renewal, service, before), now=now)


def transition_events(
    renewal: RenewalState, service: ServiceState, before: Before
) -> list[NewEvent]:
    """The events a renewal's change from `before` to its present state owes."""

    def renewal_event(kind: str) -> NewEvent:
        return NewEvent(
            type=f"renewal.{kind}",
            resource_id=renewal.id,
            customer_id=renewal.customer_id,
            data=renewal_data(renewal),
        )

    if renewal.status == "succeeded" and before.status != "succeeded":
        events = [renewal_event("succeeded")]
        if service.expires_at != before.service_expires_at:
            events.append(
                NewEvent(
                    type="service.renewed",
                    resource_id=service.id,
                    customer_id=service.customer_id,
                    data=ServiceRenewedData(
                        service_id=service.id,
                        customer_id=service.customer_id,
                        renewal_id=renewal.id,
                        previous_expires_at=before.service_expires_at,
                        expires_at=service.expires_at,
                        period_months=service.period_months,
                    ),
                )
            )
        return events
    if renewal.status == "failed" and before.status != "failed":
        return [renewal_event("failed")]
    if renewal.failed_charge_count > before.failed_charge_count:
        # A failed charge that will be retried: the customer can still fix the method.
        return [renewal_event("retry_scheduled")]
    if renewal.status == "requires_action" and before.status != "requires_action":
        return [renewal_event("requires_action")]
    if renewal.status == "canceled" and before.status != "canceled":
        return [renewal_event("canceled")]
    return []


def upcoming_event(
    renewal: RenewalState,
    service: ServiceState,
    method: MethodFacts,
    *,
    notice: NoticeKind,
    charge_at: datetime,
    settings: Settings,
    sepa_debit: SepaCollectionDetails | None = None,
) -> NewEvent:
    """`renewal.upcoming`: the one notice a renewal gets (and, for SEPA, each collection's
    pre-notification). The renewal is already planned for `charge_at`."""
    amount = format_money(renewal.amount, renewal.currency)
    day = charge_at.date().isoformat()
    taken = f"debited from {method.display}" if sepa_debit else f"charged to {method.display}"
    message = (
        f"Your {service.kind} {service.name} renews on {renewal.period_start.date()} until "
        f"{(renewal.period_end or renewal.period_start).date()} for {amount}, {taken} on "
        f"{day}. To stop it, turn automatic renewal off before then."
    )
    if notice == "short":
        message += (
            f" This notice is shorter than {notice_days(settings, method.type)} days: the "
            f"service expires on {service.expires_at.date()}, so the charge is made at the "
            "last moment that still renews it in time."
        )
    elif notice == "retry":
        message = (
            f"We will present the direct debit for your {service.kind} {service.name} again "
            f"on {day}: {amount} from {method.display}. To stop it, turn automatic renewal "
            "off before then."
        )
    data = renewal_data(renewal).model_dump()
    return NewEvent(
        type="renewal.upcoming",
        resource_id=renewal.id,
        customer_id=renewal.customer_id,
        data=RenewalUpcomingData(
            **{**data, "sepa_debit": sepa_debit},
            notice=notice,
            charge_at=charge_at,
            service=ServiceSummary(
                id=service.id, kind=service.kind, name=service.name, expires_at=service.expires_at
            ),
            payment_method=MethodSummary(
                id=method.id,
                type="sepa_debit" if method.type == "sepa_debit" else "card",
                display=method.display,
            ),
            how_to_stop=StopInstruction(
                path=f"/v1/services/{service.id}", body={"auto_renew": False}
            ),
            message=message,
        ),
    )
