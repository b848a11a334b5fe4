"""The sandbox's ledger: its own metadata and tables, never the service's database schema.

Card numbers and CVCs are never stored, here either: a payment method keeps brand, last 4,
expiry, a keyed fingerprint and the *behaviour* its test number stands for, decided once when
the card is tokenized.

The tables are created by `create_all`, not migrated: the ledger is test data. `LEDGER_VERSION`
says which shape they have; a ledger of an older shape is refused at start with a message,
never altered behind the operator's back (`app.ledger_schema`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.core.database import NAMING_CONVENTION, UTCDateTime

# Raise with every change to the tables below.
LEDGER_VERSION = 2


class SandboxBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class LedgerVersion(SandboxBase):
    __tablename__ = "sandbox_ledger_version"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)


class Account(SandboxBase):
    """One row: the secret that keys fingerprints, parameter digests and client secrets,
    shared by every process on this ledger so they agree on all three."""

    __tablename__ = "sandbox_account"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secret: Mapped[str] = mapped_column(String(64))


class Customer(SandboxBase):
    __tablename__ = "sandbox_customers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(500))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created: Mapped[datetime] = mapped_column(UTCDateTime)


class PaymentMethod(SandboxBase):
    __tablename__ = "sandbox_payment_methods"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("sandbox_customers.id"))
    brand: Mapped[str] = mapped_column(String(20))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int] = mapped_column(Integer)
    exp_year: Mapped[int] = mapped_column(Integer)
    funding: Mapped[str] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2))
    fingerprint: Mapped[str] = mapped_column(String(32), index=True)
    behaviour: Mapped[str] = mapped_column(String(40))
    cvc_check: Mapped[str | None] = mapped_column(String(20))
    # Set when a SetupIntent for off-session use succeeded with this card.
    set_up_off_session: Mapped[bool] = mapped_column(Boolean, default=False)
    # Stripe: a detached method can never be used or attached again.
    detached: Mapped[bool] = mapped_column(Boolean, default=False)
    billing_name: Mapped[str | None] = mapped_column(String(200))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created: Mapped[datetime] = mapped_column(UTCDateTime)


class SetupIntent(SandboxBase):
    __tablename__ = "sandbox_setup_intents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    client_secret: Mapped[str] = mapped_column(String(120))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("sandbox_customers.id"))
    payment_method_id: Mapped[str | None] = mapped_column(ForeignKey("sandbox_payment_methods.id"))
    status: Mapped[str] = mapped_column(String(30))
    usage: Mapped[str] = mapped_column(String(20))
    description: Mapped[str | None] = mapped_column(String(500))
    return_url: Mapped[str | None] = mapped_column(Text)
    # The secret in the 3-D Secure page URL; cleared once the challenge is answered.
    challenge_token: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created: Mapped[datetime] = mapped_column(UTCDateTime)


class PaymentIntent(SandboxBase):
    __tablename__ = "sandbox_payment_intents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    client_secret: Mapped[str] = mapped_column(String(120))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("sandbox_customers.id"))
    payment_method_id: Mapped[str | None] = mapped_column(ForeignKey("sandbox_payment_methods.id"))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(30))
    description: Mapped[str | None] = mapped_column(String(500))
    setup_future_usage: Mapped[str | None] = mapped_column(String(20))
    # The request's Idempotency-Key: unique, so one key can never make two charges, whatever
    # the idempotency layer above does.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    return_url: Mapped[str | None] = mapped_column(Text)
    challenge_token: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    latest_charge: Mapped[str | None] = mapped_column(String(40))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class PaymentIntentMetadata(SandboxBase):
    """Metadata pairs as rows, so search by metadata is an index lookup, not a scan."""

    __tablename__ = "sandbox_payment_intent_metadata"
    __table_args__ = (Index("ix_sandbox_payment_intent_metadata_key_value", "key", "value"),)

    payment_intent_id: Mapped[str] = mapped_column(
        ForeignKey("sandbox_payment_intents.id"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(500))


class Charge(SandboxBase):
    """One attempt to move money for a PaymentIntent: succeeded or failed, as at Stripe."""

    __tablename__ = "sandbox_charges"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payment_intent_id: Mapped[str] = mapped_column(
        ForeignKey("sandbox_payment_intents.id"), index=True
    )
    customer_id: Mapped[str | None] = mapped_column(String(40))
    payment_method_id: Mapped[str] = mapped_column(ForeignKey("sandbox_payment_methods.id"))
    amount: Mapped[int] = mapped_column(Integer)
    amount_refunded: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))
    failure_code: Mapped[str | None] = mapped_column(String(60))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    outcome: Mapped[dict[str, Any]] = mapped_column(JSON)
    disputed: Mapped[bool] = mapped_column(Boolean, default=False)
    # 3-D Secure was completed for this payment (on-session confirmation).
    authenticated: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str | None] = mapped_column(String(500))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created: Mapped[datetime] = mapped_column(UTCDateTime)


class Refund(SandboxBase):
    __tablename__ = "sandbox_refunds"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    charge_id: Mapped[str] = mapped_column(ForeignKey("sandbox_charges.id"), index=True)
    payment_intent_id: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created: Mapped[datetime] = mapped_column(UTCDateTime)


class Dispute(SandboxBase):
    __tablename__ = "sandbox_disputes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    charge_id: Mapped[str] = mapped_column(ForeignKey("sandbox_charges.id"), index=True)
    payment_intent_id: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(30))
    created: Mapped[datetime] = mapped_column(UTCDateTime)


class Event(SandboxBase):
    """An event and its delivery to the configured webhook URL (an outbox: written in the
    transaction of the change it reports, sent afterwards by `webhooks.WebhookSender`)."""

    __tablename__ = "sandbox_events"
    __table_args__ = (Index("ix_sandbox_events_delivery", "delivery", "next_attempt_at"),)

    # The order events were written in (several share a timestamp): lists and sends follow it.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(60))
    # The event object exactly as sent (and as GET /v1/events/{id} answers it).
    body: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # pending → delivered | failed; `none` when no webhook URL was configured.
    delivery: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Another sender process leaves a claimed event alone until then.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(300))


class IdempotencyKey(SandboxBase):
    """Stripe's idempotency layer: the first response to a key, kept with a keyed digest of
    the request (method, path, parameters) so a reuse with other parameters is refused.
    While the first request runs, the row is claimed (no response yet, `claimed_until` set)."""

    __tablename__ = "sandbox_idempotency_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
