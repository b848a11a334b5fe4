"""The sandbox's ledger: its own metadata and tables, never the service's database schema.

Card numbers and CVCs are never stored, here either: a payment method keeps brand, last 4,
expiry, a keyed fingerprint and the *behaviour* its test number stands for, decided once when
the card is tokenized.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.core.database import NAMING_CONVENTION, UTCDateTime


class SandboxBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Account(SandboxBase):
    """One row: the secret that keys fingerprints and parameter digests, shared by every
    process on this ledger so they agree on both."""

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
    created: Mapped[datetime] = mapped_column(UTCDateTime)


class SetupIntent(SandboxBase):
    __tablename__ = "sandbox_setup_intents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("sandbox_customers.id"))
    payment_method_id: Mapped[str] = mapped_column(ForeignKey("sandbox_payment_methods.id"))
    status: Mapped[str] = mapped_column(String(30))
    usage: Mapped[str] = mapped_column(String(20))
    return_url: Mapped[str | None] = mapped_column(Text)
    # The secret in the 3-D Secure page URL; cleared once the challenge is answered.
    challenge_token: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created: Mapped[datetime] = mapped_column(UTCDateTime)


class PaymentIntent(SandboxBase):
    __tablename__ = "sandbox_payment_intents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("sandbox_customers.id"))
    payment_method_id: Mapped[str] = mapped_column(ForeignKey("sandbox_payment_methods.id"))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(30))
    # The request's Idempotency-Key: unique, so one key can never make two charges, whatever
    # the idempotency layer above does.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
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


class IdempotencyKey(SandboxBase):
    """Stripe's idempotency layer: the first response to a key, kept with a keyed digest of
    the request (method, path, parameters) so a reuse with other parameters is refused."""

    __tablename__ = "sandbox_idempotency_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
