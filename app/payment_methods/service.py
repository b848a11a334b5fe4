"""Payment method rules common to both types: find, validate, revoke, default.

SEPA specifics live in `sepa.py`, card registration and 3-D Secure in `cards.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.crypto import FieldCipher
from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.pagination import PageParams, paginate
from app.gateways.port import PaymentGateway
from app.payment_methods import cards, events, repository, sepa
from app.payment_methods.models import Mandate, PaymentMethod, PaymentMethodStatus
from app.payment_methods.schemas import CardCreate, PaymentMethodCreate, SepaDebitCreate
from app.services import service as services
from app.services.audit import Actor


def _not_found() -> NotFound:
    return NotFound("No such payment method.", code="payment_method_not_found")


async def get(session: AsyncSession, customer_id: str, method_id: str) -> PaymentMethod:
    method = await repository.get_owned(session, customer_id, method_id)
    if method is None:
        raise _not_found()
    return method


async def _get_for_update(session: AsyncSession, customer_id: str, method_id: str) -> PaymentMethod:
    method = await repository.get_owned(session, customer_id, method_id, for_update=True)
    if method is None:
        raise _not_found()
    return method


async def list_page(
    session: AsyncSession, customer_id: str, page: PageParams, *, status: str | None = None
) -> tuple[Sequence[PaymentMethod], str | None]:
    query = repository.owned_by(customer_id, status=status)
    return await paginate(
        session, query, page, created_at=PaymentMethod.created_at, row_id=PaymentMethod.id
    )


async def create(
    session: AsyncSession,
    *,
    customer_id: str,
    body: PaymentMethodCreate,
    cipher: FieldCipher,
    creditor: sepa.Creditor,
    card_registration: cards.CardRegistration,
    now: datetime,
) -> cards.MethodOutcome:
    """Register a method. A card's outcome carries the 3-D Secure URL when it needs one."""
    if isinstance(body, CardCreate):
        return await cards.register(
            session,
            customer_id=customer_id,
            card=body.card,
            registration=card_registration,
            now=now,
        )
    assert isinstance(body, SepaDebitCreate)
    method = await sepa.register(
        session,
        customer_id=customer_id,
        iban=body.sepa_debit.iban,
        account_holder_name=body.sepa_debit.account_holder_name,
        cipher=cipher,
        creditor=creditor,
        now=now,
    )
    await events.announce(session, "created", method, now)
    return cards.MethodOutcome(method)


async def validate(
    session: AsyncSession,
    *,
    customer_id: str,
    method_id: str,
    acceptance: sepa.Acceptance | None,
    gateway: PaymentGateway,
    now: datetime,
) -> cards.MethodOutcome:
    """Complete the step in next_action: a card asks the gateway how 3-D Secure went; a
    SEPA method takes the mandate acceptance."""
    method = await _get_for_update(session, customer_id, method_id)
    if method.type == "card":
        return await cards.refresh(session, method, gateway, now)
    return cards.MethodOutcome(await _validate_sepa(session, method, acceptance, now))


async def _validate_sepa(
    session: AsyncSession, method: PaymentMethod, acceptance: sepa.Acceptance | None, now: datetime
) -> PaymentMethod:
    if method.status != PaymentMethodStatus.REQUIRES_ACTION:
        raise Conflict(
            f"The payment method is {method.status}, not waiting for validation.",
            code="payment_method_not_pending",
            extra={"payment_method_status": method.status},
        )
    if acceptance is None:
        raise Unprocessable(
            "Send the mandate acceptance: {'mandate': {'accepted': true, 'signer_name': …}}.",
            code="mandate_acceptance_required",
        )
    sepa.accept_mandate(method, acceptance, now)
    await session.flush()
    await events.announce_mandate_accepted(session, method, now)
    await events.announce(session, "validated", method, now)
    return method


async def revoke(
    session: AsyncSession, customer_id: str, method_id: str, now: datetime, *, detach: bool = False
) -> PaymentMethod:
    """The method can no longer pay; the record and the mandate evidence stay. Repeating
    it changes nothing. While services renew with it the answer is 409 listing them, unless
    `detach`: then those services lose it (audited) and wait for another method."""
    method = await _get_for_update(session, customer_id, method_id)
    if method.status == PaymentMethodStatus.REVOKED:
        return method
    using = await services.services_using(session, method.id)
    if using and not detach:
        raise Conflict(
            "Services still renew with this payment method; choose another for them first, "
            "or revoke with ?detach=true.",
            code="payment_method_in_use",
            extra={"service_ids": [service.id for service in using]},
        )
    await services.detach_payment_method(
        session, using, actor=Actor(customer_id, "customer"), now=now
    )
    method.status = PaymentMethodStatus.REVOKED
    method.revoked_at = now
    method.updated_at = now
    method.is_default = False
    sepa.revoke_mandate(method, now)
    await session.flush()
    await events.announce(session, "revoked", method, now)
    return method


async def make_default(
    session: AsyncSession, customer_id: str, method_id: str, now: datetime
) -> PaymentMethod:
    method = await _get_for_update(session, customer_id, method_id)
    if method.status != PaymentMethodStatus.VALIDATED:
        raise Conflict(
            "Only a validated payment method can be the default.",
            code="payment_method_not_validated",
            extra={"payment_method_status": method.status},
        )
    if not method.is_default:
        # Clear the old default first: a partial unique index allows one per customer.
        await repository.clear_default(session, customer_id)
        method.is_default = True
        method.updated_at = now
        await session.flush()
    return method


async def mandate_of(
    session: AsyncSession, customer_id: str, method_id: str
) -> tuple[Mandate, PaymentMethod]:
    method = await get(session, customer_id, method_id)
    if method.mandate is None:
        raise NotFound("This payment method has no mandate.", code="mandate_not_found")
    return method.mandate, method
