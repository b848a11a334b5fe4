"""Responses built from payment methods and mandates (what the customer is shown)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound
from app.core.reads import Reader, read_models, read_only
from app.core.settings import Settings
from app.payment_methods import repository
from app.payment_methods.declines import told_to_customer
from app.payment_methods.models import (
    Mandate,
    MandateStatus,
    PaymentMethod,
    PaymentMethodStatus,
)
from app.payment_methods.schemas import (
    CardSetupOut,
    Creditor,
    MandateOut,
    MandateToAccept,
    PaymentMethodNextAction,
    PaymentMethodOut,
)
from app.payment_methods.sepa import mandate_text


def _next_action(method: PaymentMethod) -> PaymentMethodNextAction | None:
    if method.status != PaymentMethodStatus.REQUIRES_ACTION or method.type != "sepa_debit":
        return None
    mandate = method.mandate
    if mandate is None or mandate.status != MandateStatus.PENDING:
        return None
    text = mandate_text(mandate, method)
    return PaymentMethodNextAction(
        type="accept_mandate",
        method="POST",
        url=f"/v1/payment-methods/{method.id}/validate",
        mandate=MandateToAccept(
            reference=mandate.reference,
            creditor=Creditor(identifier=mandate.creditor_id, name=mandate.creditor_name),
            text_version=text.version,
            text_sha256=text.sha256,
            texts=text.texts,
        ),
    )


def _three_d_secure(
    method: PaymentMethod, action_url: str | None
) -> PaymentMethodNextAction | None:
    if method.status != PaymentMethodStatus.REQUIRES_ACTION or action_url is None:
        return None
    return PaymentMethodNextAction(type="three_d_secure", method="GET", url=action_url)


def method_out(
    method: PaymentMethod, action_url: str | None = None, *, precise: bool = False
) -> PaymentMethodOut:
    """`action_url`: the gateway's 3-D Secure page, known right after registering or
    validating a card (it is not stored: reading a card waiting for it shows no URL; POST
    /validate gives the current one). `precise`: an admin's view, with the card's exact
    failure code (customers see only what they can act on: app/payment_methods/declines.py)."""
    if method.type != "card":
        # The repository loads the mandate with every SEPA method (lazy loads are off).
        mandate = method.mandate
        reference = mandate.reference if mandate is not None else None
        return PaymentMethodOut.of(method, _next_action(method), mandate_reference=reference)
    out = PaymentMethodOut.of(method, _three_d_secure(method, action_url), mandate_reference=None)
    if precise:
        return out
    return out.model_copy(update={"failure_code": told_to_customer(method.failure_code)})


async def read_method(reader: Reader, customer_id: str, method_id: str) -> PaymentMethodOut:
    """GET /v1/payment-methods/{id}: one statement and no model, the usual case. A SEPA
    method still waiting for its mandate shows the mandate's text to accept: that one is
    built from the models, as `method_out` does after registering."""
    row = await read_only(reader, lambda reads: repository.owned_row(reads, customer_id, method_id))
    if row is None:
        raise NotFound("No such payment method.", code="payment_method_not_found")
    if row.type == "sepa_debit" and row.status == PaymentMethodStatus.REQUIRES_ACTION:

        async def from_models(session: AsyncSession) -> PaymentMethodOut | None:
            method = await repository.get_owned(session, customer_id, method_id)
            return method_out(method) if method is not None else None

        with_mandate = await read_models(reader, from_models)
        if with_mandate is not None:
            return with_mandate
    # A card waiting for 3-D Secure shows no URL when read (see method_out).
    out = PaymentMethodOut.of(row, mandate_reference=row.mandate_reference)
    if row.type != "card":
        return out
    return out.model_copy(update={"failure_code": told_to_customer(row.failure_code)})


def methods_out(
    methods: Sequence[PaymentMethod], *, precise: bool = False
) -> list[PaymentMethodOut]:
    return [method_out(method, precise=precise) for method in methods]


def mandate_out(mandate: Mandate, method: PaymentMethod) -> MandateOut:
    text = mandate_text(mandate, method)
    return MandateOut(
        reference=mandate.reference,
        payment_method_id=method.id,
        status=MandateStatus(mandate.status).value,
        creditor=Creditor(identifier=mandate.creditor_id, name=mandate.creditor_name),
        scheme=mandate.scheme,
        type=mandate.mandate_type,
        sequence_type=mandate.sequence_type,
        debtor_name=mandate.debtor_name,
        iban=method.iban_masked or "",
        bic=method.bic,
        text_version=mandate.text_version,
        text_sha256=mandate.text_sha256,
        texts=text.texts,
        signer_name=mandate.signer_name,
        signed_at=mandate.signed_at,
        signer_ip=mandate.signer_ip,
        signer_user_agent=mandate.signer_user_agent,
        created_at=mandate.created_at,
        revoked_at=mandate.revoked_at,
    )


def card_setup_out(settings: Settings) -> CardSetupOut:
    sandbox_url = None
    if settings.gateway == "sandbox":
        # Mounted: under this service's public address; alone: where the service reaches it
        # (AUTORENEW_GATEWAY_BASE_URL), which must then be reachable from browsers too.
        sandbox_url = (
            settings.gateway_base_url.rstrip("/")
            if settings.gateway_base_url
            else settings.public_base_url.rstrip("/") + "/sandbox"
        )
    return CardSetupOut(
        gateway=settings.gateway,
        publishable_key=settings.publishable_key,
        sandbox_url=sandbox_url,
    )
