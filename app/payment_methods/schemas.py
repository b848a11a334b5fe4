"""Payment method requests and responses. No response ever carries a full IBAN."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictBool, StrictInt
from sqlalchemy import Row

from app.core.unions import TaggedUnion
from app.payment_methods.models import PaymentMethod, PaymentMethodStatus


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IbanCheckIn(_In):
    iban: str = Field(max_length=100, description="Any spacing and case.")


class IbanCheckOut(BaseModel):
    valid: bool
    iban: str | None = Field(description="Electronic format (no spaces) when valid.")
    country_code: str | None
    sepa: bool | None = Field(description="Whether the country is in the SEPA scheme.")
    bic: str | None
    bank_name: str | None
    reason: str | None = Field(
        description="Why it is invalid: invalid_characters, invalid_country, invalid_length, "
        "invalid_format, invalid_checksum, invalid_national_checksum."
    )


class SepaDebitIn(_In):
    iban: str = Field(max_length=100)
    account_holder_name: str = Field(max_length=200)


class SepaDebitCreate(_In):
    type: Literal["sepa_debit"]
    sepa_debit: SepaDebitIn


class CardIn(_In):
    """A gateway token, or (only with AUTORENEW_ACCEPT_RAW_CARD_DATA) the card itself.

    Number and CVC are `SecretStr`: they never appear in a repr, a log line or a traceback,
    and validation errors never echo input back.
    """

    token: str | None = Field(
        default=None, max_length=255, description="The gateway's payment-method id (`pm_…`)."
    )
    number: SecretStr | None = Field(
        default=None,
        max_length=32,
        description="Refused (422 raw_card_data_not_accepted) unless the service accepts "
        "raw card data from trusted internal callers.",
    )
    exp_month: StrictInt | None = Field(default=None, ge=1, le=12)
    exp_year: StrictInt | None = Field(default=None, ge=2000, le=2100)
    cvc: SecretStr | None = Field(default=None, max_length=8)

    @property
    def carries_card_data(self) -> bool:
        return self.number is not None or self.cvc is not None


class CardCreate(_In):
    type: Literal["card"]
    card: CardIn


# Validated by `type`, with errors located in the body as sent (see app/core/unions.py).
PaymentMethodCreate = Annotated[SepaDebitCreate | CardCreate, TaggedUnion("type")]


class MandateAcceptance(_In):
    accepted: StrictBool
    signer_name: str = Field(min_length=1, max_length=140)
    text_sha256: str | None = Field(
        default=None,
        max_length=64,
        description="The hash of the text shown (from next_action); refused when it changed.",
    )


class ValidateIn(_In):
    """SEPA: the mandate acceptance. Card: nothing (the body may be left out)."""

    mandate: MandateAcceptance | None = None


class Creditor(BaseModel):
    identifier: str
    name: str


class MandateToAccept(BaseModel):
    reference: str
    creditor: Creditor
    scheme: Literal["CORE"] = "CORE"
    type: Literal["recurrent"] = "recurrent"
    text_version: str
    text_sha256: str
    texts: dict[str, str] = Field(description="The mandate text by language (es, en).")


class PaymentMethodNextAction(BaseModel):
    type: Literal["accept_mandate", "three_d_secure"]
    method: Literal["GET", "POST"]
    url: str = Field(description="Where to send the acceptance, or where to go.")
    mandate: MandateToAccept | None = None


class SepaDebitOut(BaseModel):
    iban: str = Field(description="Masked: country, check digits and the last four.")
    last4: str
    country_code: str
    bank_code: str | None
    bic: str | None
    bank_name: str | None
    account_holder_name: str
    mandate_reference: str | None


class CardSetupOut(BaseModel):
    """What the SPA needs to tokenize a card at the gateway, so it never hard-codes it."""

    gateway: Literal["sandbox", "stripe"] = Field(
        description="`stripe`: load Stripe.js with the key; `sandbox`: post Stripe's form "
        "fields to `sandbox_url` + `/v1/payment_methods` with the key."
    )
    publishable_key: str | None = Field(
        description="The gateway's publishable key (`pk_…`); never a secret key."
    )
    sandbox_url: str | None = Field(
        description="Where browsers reach the sandbox gateway's API (gateway `sandbox` only)."
    )


class CardOut(BaseModel):
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    funding: str | None
    country: str | None


class PaymentMethodOut(BaseModel):
    id: str
    customer_id: str
    type: Literal["sepa_debit", "card"]
    status: PaymentMethodStatus
    default: bool
    created_at: datetime
    validated_at: datetime | None
    revoked_at: datetime | None
    failure_code: str | None
    sepa_debit: SepaDebitOut | None = None
    card: CardOut | None = None
    next_action: PaymentMethodNextAction | None = None

    @classmethod
    def of(
        cls,
        method: PaymentMethod | Row[Any],
        next_action: PaymentMethodNextAction | None = None,
        *,
        mandate_reference: str | None,
    ) -> PaymentMethodOut:
        """From the model, or from a row of the table's columns (app/payment_methods/reads.py)."""
        sepa = card = None
        if method.type == "sepa_debit":
            assert method.iban_masked and method.iban_last4 and method.iban_country
            sepa = SepaDebitOut(
                iban=method.iban_masked,
                last4=method.iban_last4,
                country_code=method.iban_country,
                bank_code=method.bank_code,
                bic=method.bic,
                bank_name=method.bank_name,
                account_holder_name=method.account_holder_name or "",
                mandate_reference=mandate_reference,
            )
        else:
            card = CardOut(
                brand=method.card_brand,
                last4=method.card_last4,
                exp_month=method.card_exp_month,
                exp_year=method.card_exp_year,
                funding=method.card_funding,
                country=method.card_country,
            )
        return cls(
            id=method.id,
            customer_id=method.customer_id,
            type="card" if method.type == "card" else "sepa_debit",
            status=PaymentMethodStatus(method.status),
            default=method.is_default,
            created_at=method.created_at,
            validated_at=method.validated_at,
            revoked_at=method.revoked_at,
            failure_code=method.failure_code,
            sepa_debit=sepa,
            card=card,
            next_action=next_action,
        )


class MandateOut(BaseModel):
    reference: str
    payment_method_id: str
    status: Literal["pending", "active", "revoked"]
    creditor: Creditor
    scheme: str
    type: str
    sequence_type: str = Field(description="FRST before the first collection, then RCUR.")
    debtor_name: str
    iban: str = Field(description="Masked.")
    bic: str | None
    text_version: str
    text_sha256: str
    texts: dict[str, str]
    signer_name: str | None
    signed_at: datetime | None
    signer_ip: str | None
    signer_user_agent: str | None
    created_at: datetime
    revoked_at: datetime | None
