"""The events a payment method's changes owe other systems (notifications, provisioning).

Only what a receiver may see goes out: the last four digits of an IBAN or a card.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.events.payloads import (
    CardDetails,
    MandateAcceptedData,
    PaymentMethodData,
    SepaDebitDetails,
)
from app.events.service import NewEvent, emit_all
from app.payment_methods.declines import told_to_customer
from app.payment_methods.models import PaymentMethod


def method_data(method: PaymentMethod) -> PaymentMethodData:
    sepa_debit = card = None
    if method.type == "sepa_debit" and method.iban_last4:
        sepa_debit = SepaDebitDetails(
            iban_last4=method.iban_last4,
            country_code=method.iban_country,
            bank_name=method.bank_name,
            bic=method.bic,
            mandate_reference=method.mandate.reference if method.mandate else None,
        )
    if method.type == "card" and method.card_last4:
        card = CardDetails(
            brand=method.card_brand,
            last4=method.card_last4,
            exp_month=method.card_exp_month,
            exp_year=method.card_exp_year,
        )
    return PaymentMethodData(
        id=method.id,
        customer_id=method.customer_id,
        type="card" if method.type == "card" else "sepa_debit",
        status=method.status,
        sepa_debit=sepa_debit,
        card=card,
        # Events are readable by the customer (GET /v1/events): a card's precise decline
        # reason stays on the method's record, for the admin routes.
        failure_code=told_to_customer(method.failure_code)
        if method.type == "card"
        else method.failure_code,
        created_at=method.created_at,
        imported=method.imported_at is not None,
    )


def method_event(kind: str, method: PaymentMethod) -> NewEvent:
    """`kind`: created | validated | failed | expiring | expired | revoked."""
    return NewEvent(f"payment_method.{kind}", method.id, method_data(method), method.customer_id)


async def announce(session: AsyncSession, kind: str, method: PaymentMethod, now: datetime) -> None:
    await emit_all(session, [method_event(kind, method)], now=now)


def mandate_accepted_event(method: PaymentMethod) -> NewEvent:
    mandate = method.mandate
    assert mandate is not None
    assert mandate.signed_at is not None
    return NewEvent(
        "mandate.accepted",
        method.id,
        MandateAcceptedData(
            payment_method_id=method.id,
            customer_id=method.customer_id,
            mandate_reference=mandate.reference,
            creditor_identifier=mandate.creditor_id,
            signed_at=mandate.signed_at,
            signer_name=mandate.signer_name,
            sequence_type="RCUR" if mandate.sequence_type == "RCUR" else "FRST",
            iban_last4=method.iban_last4 or "????",
            imported=method.imported_at is not None,
        ),
        method.customer_id,
    )


async def announce_mandate_accepted(
    session: AsyncSession, method: PaymentMethod, now: datetime
) -> None:
    await emit_all(session, [mandate_accepted_event(method)], now=now)
