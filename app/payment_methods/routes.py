"""Payment methods over HTTP: IBAN checks, registration (SEPA, card), validation, revocation,
default."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from app.core import ratelimit
from app.core.client_ip import client_ip
from app.core.crypto import FieldCipher, cipher_from_settings
from app.core.deps import (
    BEARER_SECURITY,
    AdminDep,
    CallerDep,
    ClockDep,
    GatewayDep,
    SessionDep,
    SessionmakerDep,
    SettingsDep,
    caller_of,
)
from app.core.errors import problem_responses
from app.core.http import json_response
from app.core.idempotency import IdempotencyDep
from app.core.pagination import Page, PageDep
from app.core.settings import Settings
from app.payment_methods import limits, service
from app.payment_methods.cards import CardRegistration
from app.payment_methods.iban import check_iban
from app.payment_methods.models import PaymentMethodStatus
from app.payment_methods.schemas import (
    CardSetupOut,
    IbanCheckIn,
    IbanCheckOut,
    MandateOut,
    PaymentMethodCreate,
    PaymentMethodOut,
    ValidateIn,
)
from app.payment_methods.sepa import Acceptance, Creditor
from app.payment_methods.views import (
    card_setup_out,
    mandate_out,
    method_out,
    methods_out,
    read_method,
)

router = APIRouter(prefix="/v1", tags=["payment methods"])

MethodId = Annotated[str, Path(max_length=64, description="A payment method id (`pm_…`).")]
StatusFilter = Annotated[PaymentMethodStatus | None, Query(description="Only this status.")]


def get_cipher(settings: SettingsDep) -> FieldCipher:
    return cipher_from_settings(settings)


CipherDep = Annotated[FieldCipher, Depends(get_cipher)]


def _creditor(settings: Settings) -> Creditor:
    return Creditor(identifier=settings.sepa_creditor_id, name=settings.sepa_creditor_name)


async def _count_registration(
    request: Request,
    caller: CallerDep,
    clock: ClockDep,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
) -> None:
    """Counted before the request's own transaction writes anything (SQLite has one
    writer), and not for the replay of an answered Idempotency-Key, which is free."""
    await ratelimit.hit_unless_replayed(
        sessionmaker,
        limits.registrations(settings),
        caller.customer_id,
        request.headers.get("idempotency-key"),
        clock.now(),
    )


@router.post(
    "/iban-checks",
    response_model=IbanCheckOut,
    summary="Check an IBAN as the customer types it",
    responses=problem_responses(401, 422, 429),
)
async def create_iban_check(
    body: IbanCheckIn,
    caller: CallerDep,
    clock: ClockDep,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
) -> IbanCheckOut:
    rule = limits.iban_checks(settings)
    await ratelimit.hit(sessionmaker, rule, caller.customer_id, clock.now())
    check = check_iban(body.iban)
    return IbanCheckOut(
        valid=check.valid,
        iban=check.iban,
        country_code=check.country_code,
        sepa=check.sepa,
        bic=check.bic,
        bank_name=check.bank_name,
        reason=check.reason,
    )


@router.post(
    "/payment-methods",
    response_model=PaymentMethodOut,
    status_code=201,
    summary="Register a payment method",
    responses=problem_responses(400, 401, 402, 409, 422, 429, 503),
    # Before the route's own dependencies: see _count_registration.
    dependencies=[Depends(_count_registration)],
)
async def create_payment_method(
    body: PaymentMethodCreate,
    session: SessionDep,
    caller: CallerDep,
    clock: ClockDep,
    settings: SettingsDep,
    cipher: CipherDep,
    gateway: GatewayDep,
    idempotency: IdempotencyDep,
) -> Response:
    async def register() -> PaymentMethodOut:
        outcome = await service.create(
            session,
            customer_id=caller.customer_id,
            body=body,
            cipher=cipher,
            creditor=_creditor(settings),
            card_registration=CardRegistration(
                gateway=gateway,
                return_url=settings.card_return_url or settings.public_base_url,
                accept_raw_card_data=settings.accept_raw_card_data,
                request_key=idempotency.key,
            ),
            now=clock.now(),
        )
        return method_out(outcome.method, outcome.action_url)

    return await idempotency.respond(201, register)


@router.get(
    "/payment-methods",
    response_model=Page[PaymentMethodOut],
    summary="The caller's payment methods",
    responses=problem_responses(400, 401),
)
async def list_payment_methods(
    session: SessionDep, caller: CallerDep, page: PageDep, status: StatusFilter = None
) -> Page[PaymentMethodOut]:
    methods, next_cursor = await service.list_page(session, caller.customer_id, page, status=status)
    return Page(data=methods_out(methods), next_cursor=next_cursor)


@router.get(
    "/payment-methods/setup",
    response_model=CardSetupOut,
    summary="How the SPA tokenizes a card: the gateway and its publishable key",
    responses=problem_responses(401),
)
async def get_card_setup(_caller: CallerDep, settings: SettingsDep) -> CardSetupOut:
    return card_setup_out(settings)


@router.get(
    "/payment-methods/{method_id}",
    response_model=PaymentMethodOut,
    responses=problem_responses(401, 404),
    openapi_extra=BEARER_SECURITY,
)
async def get_payment_method(method_id: MethodId, request: Request) -> Response:
    # The bearer check and the read pool without dependencies: each one FastAPI resolves
    # costs the hottest read measurable time (bench/api.py).
    caller = caller_of(request)
    method = await read_method(request.app.state.reader, caller.customer_id, method_id)
    return json_response(method)


@router.post(
    "/payment-methods/{method_id}/validate",
    response_model=PaymentMethodOut,
    summary="Complete the step in next_action (SEPA: accept the mandate; card: after 3-D "
    "Secure, no body)",
    responses=problem_responses(401, 404, 409, 422, 429, 503),
)
async def validate_payment_method(
    method_id: MethodId,
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    clock: ClockDep,
    settings: SettingsDep,
    gateway: GatewayDep,
    body: ValidateIn | None = None,
) -> PaymentMethodOut:
    acceptance = None
    if body is not None and body.mandate is not None:
        acceptance = Acceptance(
            accepted=body.mandate.accepted,
            signer_name=body.mandate.signer_name,
            text_sha256=body.mandate.text_sha256,
            ip=client_ip(request, settings),
            user_agent=request.headers.get("user-agent"),
        )
    outcome = await service.validate(
        session,
        customer_id=caller.customer_id,
        method_id=method_id,
        acceptance=acceptance,
        gateway=gateway,
        now=clock.now(),
    )
    return method_out(outcome.method, outcome.action_url)


@router.delete(
    "/payment-methods/{method_id}",
    response_model=PaymentMethodOut,
    summary="Revoke a payment method (the record and mandate evidence are kept)",
    responses=problem_responses(401, 404, 409),
)
async def revoke_payment_method(
    method_id: MethodId,
    session: SessionDep,
    caller: CallerDep,
    clock: ClockDep,
    detach: Annotated[
        bool, Query(description="Also stop using it for the services it renews.")
    ] = False,
) -> PaymentMethodOut:
    revoked = await service.revoke(
        session, caller.customer_id, method_id, clock.now(), detach=detach
    )
    return method_out(revoked)


@router.post(
    "/payment-methods/{method_id}/default",
    response_model=PaymentMethodOut,
    summary="Make this validated method the customer's default",
    responses=problem_responses(401, 404, 409),
)
async def set_default_payment_method(
    method_id: MethodId, session: SessionDep, caller: CallerDep, clock: ClockDep
) -> PaymentMethodOut:
    method = await service.make_default(session, caller.customer_id, method_id, clock.now())
    return method_out(method)


@router.get(
    "/payment-methods/{method_id}/mandate",
    response_model=MandateOut,
    summary="The SEPA mandate and the evidence of its acceptance",
    responses=problem_responses(401, 404),
)
async def get_mandate(method_id: MethodId, session: SessionDep, caller: CallerDep) -> MandateOut:
    mandate, method = await service.mandate_of(session, caller.customer_id, method_id)
    return mandate_out(mandate, method)


@router.get(
    "/admin/customers/{customer_id}/payment-methods",
    response_model=Page[PaymentMethodOut],
    summary="A customer's payment methods (internal)",
    responses=problem_responses(400, 401, 403),
)
async def admin_list_payment_methods(
    customer_id: Annotated[str, Path(max_length=128)],
    session: SessionDep,
    _admin: AdminDep,
    page: PageDep,
    status: StatusFilter = None,
) -> Page[PaymentMethodOut]:
    methods, next_cursor = await service.list_page(session, customer_id, page, status=status)
    return Page(data=methods_out(methods, precise=True), next_cursor=next_cursor)
