"""Events received from a card gateway's webhooks, one row per event id.

The row is written before the event is applied, in the same transaction: a delivery that
comes again (the gateway retries until it gets a 2xx, and may send one event twice) finds
it and changes nothing; an event whose handling failed rolls back with its row, so the
gateway's retry applies it then. The event's body is not kept: it may carry a customer's
billing details, and what matters of it is applied to our own rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base, UTCDateTime


class GatewayEvent(Base):
    __tablename__ = "gateway_events"
    __table_args__ = (Index(None, "type", "received_at"),)

    # The gateway's event id (Stripe: evt_…): unique, so an event is applied once.
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    gateway: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(128))
    # The object the event is about (pm_…, seti_…, pi_…, dp_…, ch_…), when it names one.
    object_id: Mapped[str | None] = mapped_column(String(255))
    # What applying it did: applied | unchanged | not_ours | unhandled (a type we ignore).
    outcome: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
