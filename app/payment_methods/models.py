"""Payment methods (SEPA direct debit and card, one table) and SEPA mandates."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, LargeBinary, String, false, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.database import Base, UTCDateTime


class PaymentMethodType(StrEnum):
    SEPA_DEBIT = "sepa_debit"
    CARD = "card"


class PaymentMethodStatus(StrEnum):
    REQUIRES_ACTION = "requires_action"
    VALIDATED = "validated"
    FAILED = "failed"
    EXPIRED = "expired"
    REVOKED = "revoked"


class MandateStatus(StrEnum):
    PENDING = "pending"  # shown to the customer, not accepted yet
    ACTIVE = "active"
    REVOKED = "revoked"


_LIVE = text("status <> 'revoked'")
# A card counts as registered while it can still pay or is being authenticated; an expired,
# failed or revoked one may be registered again (a renewed card keeps its fingerprint).
_LIVE_CARD = text("type = 'card' AND status IN ('validated', 'requires_action')")


class PaymentMethod(Base):
    __tablename__ = "payment_methods"
    __table_args__ = (
        # One live method per customer and bank account; a revoked one may be registered
        # again. The service checks first (to answer with the existing id); this is the
        # guarantee under concurrency.
        Index(
            "uq_payment_methods_customer_iban_live",
            "customer_id",
            "iban_fingerprint",
            unique=True,
            sqlite_where=_LIVE,
            postgresql_where=_LIVE,
        ),
        # The same for cards, by the gateway's fingerprint of the number.
        Index(
            "uq_payment_methods_customer_card_live",
            "customer_id",
            "card_fingerprint",
            unique=True,
            sqlite_where=_LIVE_CARD,
            postgresql_where=_LIVE_CARD,
        ),
        Index(
            "uq_payment_methods_customer_default",
            "customer_id",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
        Index("ix_payment_methods_customer_created", "customer_id", "created_at", "id"),
        # The gateway's webhooks name a card by its gateway ids; an import re-run finds the
        # cards it already brought in by theirs.
        Index("ix_payment_methods_gateway_payment_method_id", "gateway_payment_method_id"),
        Index("ix_payment_methods_gateway_setup_id", "gateway_setup_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    failure_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    validated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set for a method moved in from the previous customer panel (app/imports).
    imported_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # sepa_debit. Only the masked IBAN and what a bank statement shows anyway are in clear.
    iban_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    iban_key_id: Mapped[str | None] = mapped_column(String(32))
    iban_fingerprint: Mapped[str | None] = mapped_column(String(64))
    iban_masked: Mapped[str | None] = mapped_column(String(64))
    iban_last4: Mapped[str | None] = mapped_column(String(4))
    iban_country: Mapped[str | None] = mapped_column(String(2))
    bank_code: Mapped[str | None] = mapped_column(String(16))
    bic: Mapped[str | None] = mapped_column(String(11))
    bank_name: Mapped[str | None] = mapped_column(String(200))
    account_holder_name: Mapped[str | None] = mapped_column(String(70))

    # card: a gateway token and what may be kept about a card; never its number or CVC.
    gateway_customer_id: Mapped[str | None] = mapped_column(String(255))
    gateway_payment_method_id: Mapped[str | None] = mapped_column(String(255))
    gateway_setup_id: Mapped[str | None] = mapped_column(String(255))
    card_brand: Mapped[str | None] = mapped_column(String(32))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    card_exp_month: Mapped[int | None]
    card_exp_year: Mapped[int | None]
    card_funding: Mapped[str | None] = mapped_column(String(16))
    card_country: Mapped[str | None] = mapped_column(String(2))
    card_fingerprint: Mapped[str | None] = mapped_column(String(64))

    mandate: Mapped[Mandate | None] = relationship(
        back_populates="payment_method", lazy="raise", uselist=False
    )


class Mandate(Base):
    """A SEPA Core recurrent mandate and the evidence of its acceptance.

    Kept after revocation (legal retention: the rulebook asks the creditor to keep mandates
    and their amendments for as long as disputes are possible, 14 months after the last
    collection at least). References are never reused.
    """

    __tablename__ = "mandates"
    # References are unique regardless of case, as banks compare them.
    __table_args__ = (
        Index("uq_mandates_reference_upper", func.upper(text("reference")), unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    payment_method_id: Mapped[str] = mapped_column(ForeignKey("payment_methods.id"), unique=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    reference: Mapped[str] = mapped_column(String(35))
    creditor_id: Mapped[str] = mapped_column(String(35))
    creditor_name: Mapped[str] = mapped_column(String(70))
    scheme: Mapped[str] = mapped_column(String(8))
    mandate_type: Mapped[str] = mapped_column(String(16))
    # FRST until the first collection goes out, then RCUR (the SEPA batch moves it).
    sequence_type: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(16))
    debtor_name: Mapped[str] = mapped_column(String(70))
    text_version: Mapped[str] = mapped_column(String(32))
    text_sha256: Mapped[str] = mapped_column(String(64))
    signer_name: Mapped[str | None] = mapped_column(String(140))
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    signer_ip: Mapped[str | None] = mapped_column(String(64))
    signer_user_agent: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # For an imported mandate: the previous panel's last collection under it. The 36-month
    # lapse runs from it as from a collection presented here (app/sepa/sequence.py).
    last_collected_before_import_on: Mapped[date | None]

    payment_method: Mapped[PaymentMethod] = relationship(back_populates="mandate", lazy="raise")
