"""HTTP for renewals: the customer's history and "pay now" (with the browser's 3-D Secure
links), the admin's lists and forecast (a manual run of the sweep is in app/runs)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import ratelimit
from app.core.deps import (
    AdminDep,
    CallerDep,
    ClockDep,
    GatewayDep,
    SessionDep,
    SessionmakerDep,
    SettingsDep,
)
from app.core.errors import Conflict, NotFound, problem_responses
from app.core.idempotency import IdempotencyDep
from app.core.pagination import Page, PageDep, paginate
from app.core.settings import Settings
from app.renewals import limits, links, paying, presenter, repository
from app.renewals.forecast import forecast
from app.renewals.models import Renewal
from app.renewals.schemas import Forecast, RenewalOut
from app.services import service as services
from app.services.routes import ServicePath

router = APIRouter(prefix="/v1", tags=["renewals"])
admin_router = APIRouter(prefix="/v1/admin", tags=["renewals (admin)"])

RenewalId = Annotated[str, Path(max_length=64, description="A renewal id (`ren_…`).")]
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
async def get_my_renewal(
    renewal_id: RenewalId, session: SessionDep, caller: CallerDep
) -> RenewalOut:
    renewal = await repository.get(session, renewal_id, customer_id=caller.customer_id)
    if renewal is None:
        raise NotFound("No such renewal.", code="renewal_not_found")
    return (await presenter.many(session, [renewal]))[0]


async def _count_payment(
    request: Request,
    caller: CallerDep,
    clock: ClockDep,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
) -> None:
    """One try counted per customer, before the request's transaction begins; the replay of
    an answered Idempotency-Key is free."""
    await ratelimit.hit_unless_replayed(
        sessionmaker,
        limits.pay_now(settings),
        caller.customer_id,
        request.headers.get("idempotency-key"),
        clock.now(),
    )


CountPayment = Depends(_count_payment)
LinkToken = Annotated[
    str, Query(max_length=128, description="The token the renewal's link carries.")
]
_REDIRECT: dict[int | str, dict[str, Any]] = {303: {"description": "Where the browser goes next."}}


@router.post(
    "/renewals/{renewal_id}/pay",
    response_model=RenewalOut,
    summary="Pay a renewal now with the service's current method (card), exactly once",
    description="For a renewal that is scheduled, retrying, waiting for the customer "
    "(3-D Secure) or failed, while the service has not lapsed. Answers the renewal's new "
    "state: `succeeded`; `requires_action` with `next_action.url` (3-D Secure); or the "
    "decline in `failure_code` / `failure_reason`. 409 when there is nothing to pay "
    "(`renewal_not_payable`), a payment is under way (`renewal_payment_in_progress`), "
    "the service lapsed (`service_lapsed`), or the method cannot pay now "
    "(`no_payment_method`, `pay_now_card_only`, `payment_method_not_usable`).",
    responses=problem_responses(400, 401, 404, 409, 422, 429, 503),
    # Counted before the request's session claims the Idempotency-Key (a write).
    dependencies=[CountPayment],
)
async def pay_my_renewal(
    renewal_id: RenewalId,
    session: SessionDep,
    caller: CallerDep,
    clock: ClockDep,
    settings: SettingsDep,
    gateway: GatewayDep,
    idempotency: IdempotencyDep,
) -> Response:
    async def paid() -> RenewalOut:
        result = await paying.pay(
            session,
            gateway,
            customer_id=caller.customer_id,
            renewal_id=renewal_id,
            now=clock.now(),
            settings=settings,
        )
        if result.refused is not None:
            # The attempt the gateway never took stays on record; the key is free again.
            await idempotency.forget()
            await session.commit()
            raise result.refused
        return (await presenter.many(session, [result.renewal]))[0]

    return await idempotency.respond(200, paid)


# Kept for clients written before /pay: the same route under its old path.
router.add_api_route(
    "/renewals/{renewal_id}/retry",
    pay_my_renewal,
    methods=["POST"],
    name="retry_my_renewal",
    response_model=RenewalOut,
    summary="Deprecated alias of POST /v1/renewals/{renewal_id}/pay",
    deprecated=True,
    responses=problem_responses(400, 401, 404, 409, 422, 429, 503),
    dependencies=[CountPayment],
)


@router.get(
    "/renewals/{renewal_id}/authenticate",
    response_class=RedirectResponse,
    status_code=303,
    summary="The browser's way to authenticate a renewal's payment (`next_action.url`)",
    description="No bearer token: the link's token opens this renewal's payment only. "
    "Confirms the payment on-session and sends the browser to the gateway's 3-D Secure "
    "page, or, when there is nothing to authenticate, to the customer area "
    "(`AUTORENEW_PAYMENT_RETURN_URL`, with `renewal_id` and `status`).",
    responses={**_REDIRECT, **problem_responses(404, 422, 429)},
)
async def authenticate_renewal(
    renewal_id: RenewalId,
    token: LinkToken,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    gateway: GatewayDep,
    sessionmaker: SessionmakerDep,
) -> RedirectResponse:
    # The link opens one renewal, so it is counted per renewal (its customer is not known
    # before a read, and the count must come first); a link that is not ours counts nothing.
    if not links.token_valid(settings, renewal_id, token):
        raise NotFound("No such renewal.", code="renewal_not_found")
    await ratelimit.hit(sessionmaker, limits.pay_now(settings), renewal_id, clock.now())
    renewal = await _linked(session, settings, renewal_id, token)
    try:
        result = await paying.pay(
            session,
            gateway,
            customer_id=None,
            renewal_id=renewal_id,
            now=clock.now(),
            settings=settings,
        )
    except Conflict:
        # Nothing to authenticate (paid meanwhile, under way, lapsed): the customer area
        # shows the renewal as it stands.
        return _to_customer_area(settings, renewal)
    page = await paying.gateway_page(session, result.renewal)
    if page is not None and result.refused is None:
        return RedirectResponse(page, status_code=303)
    return _to_customer_area(settings, result.renewal)


@router.get(
    "/renewals/{renewal_id}/payment-return",
    response_class=RedirectResponse,
    status_code=303,
    summary="Where the gateway sends the browser back after 3-D Secure",
    description="Settles the payment from what the gateway reports (never from the query "
    "string), then sends the browser on to the customer area "
    "(`AUTORENEW_PAYMENT_RETURN_URL`, with `renewal_id` and `status`).",
    responses={**_REDIRECT, **problem_responses(404, 422)},
)
async def renewal_payment_return(
    renewal_id: RenewalId,
    token: LinkToken,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    gateway: GatewayDep,
) -> RedirectResponse:
    renewal = await _linked(session, settings, renewal_id, token)
    await paying.come_back(session, gateway, renewal, now=clock.now(), settings=settings)
    return _to_customer_area(settings, renewal)


async def _linked(
    session: AsyncSession, settings: Settings, renewal_id: str, token: str
) -> Renewal:
    renewal = await repository.get(session, renewal_id)
    if renewal is None or not links.token_valid(settings, renewal_id, token):
        raise NotFound("No such renewal.", code="renewal_not_found")
    return renewal


def _to_customer_area(settings: Settings, renewal: Renewal) -> RedirectResponse:
    return RedirectResponse(
        links.customer_area_url(settings, renewal.id, renewal.status), status_code=303
    )


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
    return Page(data=await presenter.many(session, rows, for_admin=True), next_cursor=next_cursor)


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
