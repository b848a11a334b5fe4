"""The charge job a claim hands to the gateway call, the lease that keeps it ours, and
which methods can be charged at all.

Claim (a new attempt) and reconcile (an attempt whose lease ran out) both produce jobs;
charge sends them; settle writes their answers back only while the lease is still ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from app.core.ids import new_id
from app.gateways.port import Charge, GatewayError
from app.payment_methods.models import PaymentMethod
from app.renewals.state import RenewalState

# How the gateway is asked: a saved card with the customer away (the sweep), with the
# customer present (pay now: a new charge), or an existing charge confirmed with the customer
# present (one an off-session try left waiting for 3-D Secure).
ChargeMode = Literal["off_session", "on_session", "confirm"]


@dataclass(frozen=True)
class ChargeJob:
    """Everything the gateway call needs, copied out of the claim transaction."""

    renewal_id: str
    attempt_id: str
    idempotency_key: str
    amount: int
    currency: str
    gateway_customer_id: str
    gateway_payment_method_id: str
    service_id: str
    reconcile: bool = False
    # A reconciliation that must look the charge up instead of re-sending it: past the
    # gateway's idempotency window, or once the gateway refused or replays the key.
    lookup_only: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    mode: ChargeMode = "off_session"
    # confirm: the charge confirmed again (known before the call, so a lost answer is
    # looked up by it).
    charge_id: str | None = None
    # on_session, confirm: where the gateway sends the browser back after 3-D Secure.
    return_url: str = ""


# The gateway's answer, or the error it raised; None means "no charge exists" (a lookup).
Outcome = Charge | GatewayError | None


def prepare_attempt(
    renewal: RenewalState,
    method: PaymentMethod,
    now: datetime,
    *,
    worker: str,
    lease_seconds: int,
    mode: ChargeMode = "off_session",
    charge_id: str | None = None,
    return_url: str = "",
) -> tuple[ChargeJob, dict[str, Any]]:
    """The renewal's next attempt, `processing` with its own idempotency key under our
    lease, and its job. The attempt comes back as a row: the caller inserts it (claim, a
    whole batch's in one statement) and commits before the job is sent."""
    renewal.payment_method_id = method.id
    renewal.attempt_count += 1
    key = f"renewal:{renewal.id}:attempt:{renewal.attempt_count}"
    row: dict[str, Any] = {
        "id": new_id("att"),
        "renewal_id": renewal.id,
        "number": renewal.attempt_count,
        "idempotency_key": key,
        "payment_method_id": method.id,
        "amount": renewal.amount,
        "currency": renewal.currency,
        "status": "processing",
        "on_session": mode != "off_session",
        # A confirmation names its charge before the call: a lost answer is read by it.
        "gateway_charge_id": charge_id,
        "failure_code": None,
        "decline_code": None,
        "hard_decline": False,
        "reconciled": False,
        "action_url": None,
        "started_at": now,
        "finished_at": None,
    }
    take_lease(renewal, worker=worker, now=now, lease_seconds=lease_seconds)
    job = ChargeJob(
        renewal_id=renewal.id,
        attempt_id=row["id"],
        idempotency_key=key,
        amount=renewal.amount,
        currency=renewal.currency,
        gateway_customer_id=method.gateway_customer_id or "",
        gateway_payment_method_id=method.gateway_payment_method_id or "",
        service_id=renewal.service_id,
        metadata=charge_metadata(renewal, key),
        mode=mode,
        charge_id=charge_id,
        return_url=return_url,
    )
    return job, row


def take_lease(renewal: RenewalState, *, worker: str, now: datetime, lease_seconds: int) -> None:
    """Mark the renewal ours until the lease runs out: past it, any worker may reconcile it."""
    renewal.status = "processing"
    renewal.lease_owner = worker
    renewal.lease_expires_at = now + timedelta(seconds=lease_seconds)
    renewal.updated_at = now


def charge_metadata(renewal: RenewalState, key: str) -> dict[str, str]:
    """What the gateway keeps with the charge, so a payment can be traced back to us."""
    return {
        "renewal_id": renewal.id,
        "service_id": renewal.service_id,
        "customer_id": renewal.customer_id,
        "idempotency_key": key,
    }


def chargeable(method: PaymentMethod) -> bool:
    """A validated method the gateway can charge off-session."""
    return method.status == "validated" and bool(method.gateway_payment_method_id)
