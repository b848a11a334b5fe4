"""What a gateway tells us on its own (its webhooks), as plain values.

The port (port.py) covers what we ask the gateway; these cover what it reports without
being asked, once its adapter has verified and read the report (stripe_events.py for
Stripe). Charges are named by the same id as `Charge.charge_id` (a Stripe PaymentIntent),
which is what renewal attempts keep.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

# A dispute in one of these has been decided; the others still wait for evidence or a ruling.
DISPUTE_CLOSED_STATUSES = frozenset({"won", "lost", "warning_closed", "prevented"})


@dataclass(frozen=True)
class Dispute:
    """The cardholder disputed a charge with their bank (a chargeback, or an inquiry)."""

    dispute_id: str
    charge_id: str
    status: str
    reason: str | None
    amount: int
    currency: str
    opened_at: datetime | None = None

    @property
    def closed(self) -> bool:
        return self.status in DISPUTE_CLOSED_STATUSES


@dataclass(frozen=True)
class Refund:
    """Money of a charge given back, all of it or a part."""

    charge_id: str
    amount: int
    amount_refunded: int
    currency: str

    @property
    def full(self) -> bool:
        return self.amount_refunded >= self.amount > 0


# What applying a report did to our records: changed them; found them already so (or left
# them alone by rule); or the report names nothing of ours (another system's object on the
# same gateway account, or one we no longer hold).
NoticeOutcome = Literal["applied", "unchanged", "not_ours"]
