"""Who am I: lets the SPA and operators check a token against the running service."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from app import __version__
from app.core.deps import AdminDep, CallerDep, SettingsDep
from app.core.errors import problem_responses

router = APIRouter(prefix="/v1", tags=["caller"])


class Me(BaseModel):
    customer_id: str
    scopes: list[str]
    admin: bool


class ServiceInfo(BaseModel):
    version: str
    environment: str
    database: str


@router.get("/me", response_model=Me, responses=problem_responses(401))
async def get_me(caller: CallerDep) -> Me:
    return Me(customer_id=caller.customer_id, scopes=sorted(caller.scopes), admin=caller.is_admin)


@router.get(
    "/admin/info",
    response_model=ServiceInfo,
    summary="What this replica runs on",
    responses=problem_responses(401, 403),
)
async def get_service_info(_admin: AdminDep, settings: SettingsDep) -> ServiceInfo:
    return ServiceInfo(
        version=__version__,
        environment=settings.env,
        database="sqlite" if settings.is_sqlite else "postgresql",
    )
