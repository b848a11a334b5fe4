"""HTTP for renewal runs: an admin runs one now instead of waiting for the schedule."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.core.deps import AdminDep
from app.core.errors import problem_responses
from app.renewals.engine.sweep import RenewalEngine
from app.renewals.schemas import SweepSummaryOut
from app.runs.service import run_renewals

admin_router = APIRouter(prefix="/v1/admin", tags=["renewals (admin)"])


@admin_router.post(
    "/renewals/run",
    response_model=SweepSummaryOut,
    summary="Run one renewal sweep now",
    responses=problem_responses(401, 403),
)
async def run_sweep(request: Request, _admin: AdminDep) -> SweepSummaryOut:
    # The sweep opens its own transactions (it must commit before calling the gateway), so
    # it takes the sessionmaker, not the request's session.
    engine = RenewalEngine(
        request.app.state.sessionmaker,
        request.app.state.gateway,
        request.app.state.clock,
        request.app.state.settings,
        availability=request.app.state.gateway_availability,
    )
    summary = await run_renewals(engine)
    return SweepSummaryOut(**vars(summary))
