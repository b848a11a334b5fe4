"""HTTP for services: the registry (admin, fed by provisioning) and the customer's view."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import Clock, Instant
from app.core.deps import (
    BEARER_SECURITY,
    AdminDep,
    CallerDep,
    ClockDep,
    SessionDep,
    SettingsDep,
    caller_of,
)
from app.core.errors import NotFound, problem_responses
from app.core.http import data_json_response
from app.core.pagination import (
    DEFAULT_LIMIT,
    CursorQuery,
    LimitQuery,
    Page,
    PageDep,
    PageParams,
    paginate,
)
from app.core.reads import Reads, read_only
from app.core.settings import Settings
from app.runs import provisioning
from app.runs.customer_act import after_customer_act
from app.services import presenter, registry, repository
from app.services import service as rules
from app.services.audit import Actor
from app.services.models import Service
from app.services.schemas import (
    AutoRenewPatch,
    BulkAssignmentResult,
    BulkPaymentMethodAssignment,
    PaymentMethodAssignment,
    ServiceChangeOut,
    ServiceId,
    ServiceOut,
    ServiceUpsert,
)
from app.services.versions import etag

router = APIRouter(prefix="/v1", tags=["services"])
admin_router = APIRouter(prefix="/v1/admin", tags=["services (admin)"])

CREATED: dict[int | str, dict[str, Any]] = {201: {"model": ServiceOut, "description": "Created"}}
ServicePath = Annotated[ServiceId, Path(description="The id provisioning gave the service.")]


async def _one(
    response: Response, session: AsyncSession, service: Service, settings: Settings, clock: Clock
) -> ServiceOut:
    """One service as answered, with its ETag (sent back in If-Match by provisioning)."""
    response.headers["ETag"] = etag(service)
    return await presenter.one(session, service, settings=settings, now=clock.now())


# --- customer ---------------------------------------------------------------------------


@router.get(
    "/services",
    response_model=Page[ServiceOut],
    responses=problem_responses(400, 401),
    openapi_extra=BEARER_SECURITY,
)
async def list_my_services(
    request: Request,
    expiring_before: Instant | None = None,
    auto_renew: bool | None = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Response:
    # The bearer check, app state and the page's parameters without dependencies: each one
    # FastAPI resolves costs this hot read measurable time (bench/api.py). The parameters
    # are those of `PageDep`, in the order the OpenAPI document lists them.
    caller = caller_of(request)
    page = PageParams(limit=limit, cursor=cursor)
    state = request.app.state
    settings: Settings = state.settings
    now = state.clock.now()

    async def read(reads: Reads) -> dict[str, Any]:
        rows, next_cursor = await repository.customer_page(
            reads,
            caller.customer_id,
            page,
            auto_renew=auto_renew,
            expiring_before=expiring_before,
        )
        data = await presenter.read_many(reads, rows, settings=settings, now=now)
        return {"data": data, "next_cursor": next_cursor}

    # `Page[ServiceOut]`'s JSON, from plain data (app/services/presenter.py).
    return data_json_response(await read_only(state.reader, read))


@router.get(
    "/services/{service_id}", response_model=ServiceOut, responses=problem_responses(401, 404)
)
async def get_my_service(
    service_id: ServicePath,
    session: SessionDep,
    response: Response,
    caller: CallerDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> ServiceOut:
    service = await rules.get_owned(session, caller.customer_id, service_id)
    return await _one(response, session, service, settings, clock)


@router.patch(
    "/services/{service_id}",
    response_model=ServiceOut,
    summary="Turn auto-renew on or off",
    description="Turned on inside the notice window (days before expiry), the answer is the "
    "renewal's notice: `next_charge` says when and how much, and `renewal.upcoming` goes out.",
    responses=problem_responses(401, 404, 409),
)
async def patch_my_service(
    service_id: ServicePath,
    body: AutoRenewPatch,
    session: SessionDep,
    response: Response,
    caller: CallerDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> ServiceOut:
    service = await rules.set_auto_renew(
        session,
        caller.customer_id,
        service_id,
        body.auto_renew,
        settings=settings,
        actor=Actor(caller.customer_id, "customer"),
        now=clock.now(),
    )
    await after_customer_act(session, [service], settings=settings, now=clock.now())
    return await _one(response, session, service, settings, clock)


@router.put(
    "/services/payment-method",
    response_model=BulkAssignmentResult,
    summary="Use one payment method for many services, all or nothing",
    responses=problem_responses(401, 404, 409),
)
async def assign_method_to_many(
    body: BulkPaymentMethodAssignment,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> BulkAssignmentResult:
    services = await rules.assign_payment_method_to_many(
        session,
        caller.customer_id,
        body.payment_method_id,
        body.service_ids,
        auto_renew=body.auto_renew,
        settings=settings,
        actor=Actor(caller.customer_id, "customer"),
        now=clock.now(),
    )
    await after_customer_act(session, services, settings=settings, now=clock.now())
    return BulkAssignmentResult(
        payment_method_id=body.payment_method_id,
        services=await presenter.many(session, services, settings=settings, now=clock.now()),
    )


@router.put(
    "/services/{service_id}/payment-method",
    response_model=ServiceOut,
    summary="Choose the payment method that renews this service",
    description="Choosing a validated method turns automatic renewal on (unless the body "
    'says `"auto_renew": false`). Inside the notice window the answer is the renewal\'s '
    "notice: `next_charge` says when and how much, and `renewal.upcoming` goes out.",
    responses=problem_responses(401, 404, 409),
)
async def assign_method(
    service_id: ServicePath,
    body: PaymentMethodAssignment,
    session: SessionDep,
    response: Response,
    caller: CallerDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> ServiceOut:
    service = await rules.assign_payment_method(
        session,
        caller.customer_id,
        service_id,
        body.payment_method_id,
        auto_renew=body.auto_renew,
        settings=settings,
        actor=Actor(caller.customer_id, "customer"),
        now=clock.now(),
    )
    await after_customer_act(session, [service], settings=settings, now=clock.now())
    return await _one(response, session, service, settings, clock)


@router.delete(
    "/services/{service_id}/payment-method",
    response_model=ServiceOut,
    summary="Stop using a payment method for this service",
    responses=problem_responses(401, 404),
)
async def unassign_method(
    service_id: ServicePath,
    session: SessionDep,
    response: Response,
    caller: CallerDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> ServiceOut:
    service = await rules.unassign_payment_method(
        session,
        caller.customer_id,
        service_id,
        actor=Actor(caller.customer_id, "customer"),
        now=clock.now(),
    )
    return await _one(response, session, service, settings, clock)


# --- admin (provisioning) -----------------------------------------------------------------


@admin_router.put(
    "/services/{service_id}",
    response_model=ServiceOut,
    summary="Create or update a service (idempotent)",
    description="Send `If-Match` with the `ETag` of the service as you read it: if it changed "
    "since (a renewal extended it), the update is refused with 412 instead of applying a "
    "stale expiry. An expiry before the end of a paid period is refused with 409 "
    "`expiry_before_paid_period` unless the body says `reverse_paid_period`.",
    responses=CREATED | problem_responses(401, 403, 409, 412),
)
async def upsert_service(
    service_id: ServicePath,
    body: ServiceUpsert,
    response: Response,
    session: SessionDep,
    admin: AdminDep,
    settings: SettingsDep,
    clock: ClockDep,
    if_match: Annotated[
        str | None,
        Header(alias="If-Match", max_length=1024, description="The ETag the update is based on."),
    ] = None,
) -> ServiceOut:
    service, created = await provisioning.upsert_service(
        session,
        service_id,
        body,
        if_match=if_match,
        actor=Actor(admin.customer_id, "admin"),
        now=clock.now(),
    )
    response.status_code = 201 if created else 200
    return await _one(response, session, service, settings, clock)


@admin_router.delete(
    "/services/{service_id}",
    response_model=ServiceOut,
    summary="Cancel a service: no further renewals",
    responses=problem_responses(401, 403, 404),
)
async def cancel_service(
    service_id: ServicePath,
    session: SessionDep,
    response: Response,
    admin: AdminDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> ServiceOut:
    service = await registry.cancel_service(
        session, service_id, actor=Actor(admin.customer_id, "admin"), now=clock.now()
    )
    return await _one(response, session, service, settings, clock)


@admin_router.get(
    "/services", response_model=Page[ServiceOut], responses=problem_responses(400, 401, 403)
)
async def list_services(
    session: SessionDep,
    _admin: AdminDep,
    settings: SettingsDep,
    clock: ClockDep,
    page: PageDep,
    customer_id: str | None = None,
    status: Literal["active", "cancelled"] | None = None,
    expiring_before: Instant | None = None,
) -> Page[ServiceOut]:
    query = repository.list_query(
        customer_id=customer_id, status=status, expiring_before=expiring_before
    )
    rows, next_cursor = await paginate(
        session, query, page, created_at=Service.created_at, row_id=Service.id
    )
    return Page(
        data=await presenter.many(session, rows, settings=settings, now=clock.now()),
        next_cursor=next_cursor,
    )


@admin_router.get(
    "/services/{service_id}", response_model=ServiceOut, responses=problem_responses(401, 403, 404)
)
async def get_service(
    service_id: ServicePath,
    session: SessionDep,
    response: Response,
    _admin: AdminDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> ServiceOut:
    service = await repository.get(session, service_id)
    if service is None:
        raise NotFound("No such service.", code="service_not_found")
    return await _one(response, session, service, settings, clock)


@admin_router.get(
    "/services/{service_id}/changes",
    response_model=list[ServiceChangeOut],
    summary="The audit trail: who changed the method, auto-renew, price, … and when",
    responses=problem_responses(401, 403, 404),
)
async def list_service_changes(
    service_id: ServicePath, session: SessionDep, _admin: AdminDep
) -> list[ServiceChangeOut]:
    if await repository.get(session, service_id) is None:
        raise NotFound("No such service.", code="service_not_found")
    return [
        ServiceChangeOut.model_validate(change, from_attributes=True)
        for change in await repository.changes(session, service_id)
    ]
