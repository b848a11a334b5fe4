"""HTTP for renewals: the customer's history, the admin's lists and forecast (a manual run
of the sweep is in app/runs)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.core.deps import AdminDep, CallerDep, ClockDep, SessionDep, SettingsDep
from app.core.errors import NotFound, problem_responses
from app.core.pagination import Page, PageDep, paginate
from app.renewals import presenter, repository
from app.renewals import service as customer_actions
from app.renewals.forecast import forecast
from app.renewals.models import Renewal
from app.renewals.schemas import Forecast, RenewalOut
from app.services import service as services
from app.services.routes import ServicePath

router = APIRouter(prefix="/v1", tags=["renewals"])
admin_router = APIRouter(prefix="/v1/admin", tags=["renewals (admin)"])

RenewalStatus = Literal[
    "scheduled", "processing", "succeeded", "failed", "requires_action", "canceled", "refunded"
]


@router.get(
    "/services/{service_id}/renewals",
    response_model=Page[RenewalOut],
    summary="A service's renewals, with every charge attempt",
    responses=problem_responses(400, 401, 404),
)
async def list_service_renewals(
    service_id: ServicePath, session: SessionDep, caller: CallerDep, page: PageDep
) -> Page[RenewalOut]:
    await services.get_owned(session, caller.customer_id, service_id)
    query = repository.list_query(customer_id=caller.customer_id, service_id=service_id)
    rows, next_cursor = await paginate(
        session, query, page, created_at=Renewal.created_at, row_id=Renewal.id
    )
    return Page(data=await presenter.many(session, rows), next_cursor=next_cursor)


@router.get(
    "/renewals",
    response_model=Page[RenewalOut],
    summary="The caller's renewals",
    responses=problem_responses(400, 401),
)
async def list_my_renewals(
    session: SessionDep, caller: CallerDep, page: PageDep, status: RenewalStatus | None = None
) -> Page[RenewalOut]:
    query = repository.list_query(customer_id=caller.customer_id, status=status)
    rows, next_cursor = await paginate(
        session, query, page, created_at=Renewal.created_at, row_id=Renewal.id
    )
    return Page(data=await presenter.many(session, rows), next_cursor=next_cursor)


@router.get(
    "/renewals/{renewal_id}", response_model=RenewalOut, responses=problem_responses(401, 404)
)
async def get_my_renewal(renewal_id: str, session: SessionDep, caller: CallerDep) -> RenewalOut:
    renewal = await repository.get(session, renewal_id, customer_id=caller.customer_id)
    if renewal is None:
        raise NotFound("No such renewal.", code="renewal_not_found")
    return (await presenter.many(session, [renewal]))[0]


@router.post(
    "/renewals/{renewal_id}/retry",
    response_model=RenewalOut,
    summary="Try a renewal again after authenticating or changing the payment method",
    responses=problem_responses(401, 404, 409),
)
async def retry_my_renewal(
    renewal_id: str, session: SessionDep, caller: CallerDep, clock: ClockDep
) -> RenewalOut:
    renewal = await customer_actions.retry(session, caller.customer_id, renewal_id, now=clock.now())
    return (await presenter.many(session, [renewal]))[0]


@admin_router.get(
    "/renewals", response_model=Page[RenewalOut], responses=problem_responses(400, 401, 403)
)
async def list_renewals(
    session: SessionDep,
    _admin: AdminDep,
    page: PageDep,
    status: RenewalStatus | None = None,
    customer_id: str | None = None,
    service_id: str | None = None,
) -> Page[RenewalOut]:
    query = repository.list_query(customer_id=customer_id, service_id=service_id, status=status)
    rows, next_cursor = await paginate(
        session, query, page, created_at=Renewal.created_at, row_id=Renewal.id
    )
    return Page(data=await presenter.many(session, rows), next_cursor=next_cursor)


@admin_router.get(
    "/renewals/forecast",
    response_model=Forecast,
    summary="What will be charged per day and currency",
    responses=problem_responses(401, 403),
)
async def get_forecast(
    session: SessionDep,
    _admin: AdminDep,
    clock: ClockDep,
    settings: SettingsDep,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> Forecast:
    now = clock.now()
    data = await forecast(session, now=now, days=days, settings=settings)
    return Forecast(days=days, generated_at=now, data=data)
