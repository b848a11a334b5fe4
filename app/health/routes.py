"""Liveness, readiness and metrics: what the orchestrator and Prometheus scrape."""

from __future__ import annotations

import hmac
from datetime import datetime

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.core.errors import ServiceUnavailable, Unauthorized, problem_responses
from app.gateways.availability import GatewayAvailability

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


class GatewayReadiness(BaseModel):
    available: bool = Field(
        description="False while the card gateway refuses our API key: renewal sweeps stop "
        "charging and leave renewals due until an operator deploys a working key."
    )
    reason: str | None
    since: datetime | None = Field(description="When it was found unavailable.")


class Readiness(Health):
    gateway: GatewayReadiness


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="The database is reachable (and how the card gateway stands)",
    description="503 when the database is unreachable. An unavailable card gateway does not "
    "make the replica unready (the customer area works without it); `gateway` says so.",
    responses=problem_responses(503),
)
async def readyz(request: Request) -> Readiness:
    try:
        async with request.app.state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        raise ServiceUnavailable(
            "The database is not reachable.", code="database_unavailable"
        ) from exc
    gateway: GatewayAvailability = request.app.state.gateway_availability
    return Readiness(
        status="ready",
        gateway=GatewayReadiness(
            available=gateway.available, reason=gateway.reason, since=gateway.since
        ),
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    description="With `AUTORENEW_METRICS_TOKEN` set, only `Authorization: Bearer <token>`.",
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Metrics"},
        **problem_responses(401),
    },
)
async def metrics(request: Request) -> Response:
    token = request.app.state.settings.metrics_token
    if token is not None:
        # Volumes, failures and backlogs are business data: only the scraper that holds
        # AUTORENEW_METRICS_TOKEN reads them (compared in constant time).
        given = request.headers.get("authorization", "").encode("utf-8", "replace")
        wanted = f"Bearer {token.get_secret_value()}".encode()
        if not hmac.compare_digest(given, wanted):
            raise Unauthorized("The metrics need the scraper's token.", code="invalid_token")
    await request.app.state.database_gauges.refresh()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
