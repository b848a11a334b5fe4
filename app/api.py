"""The URL map on one screen: every router the service serves.

Each module's router carries its full prefix (`APIRouter(prefix="/v1")`) instead of getting
it here, so the matched route's `path` is the whole template that logs and metrics use.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.caller.routes import router as caller_router
from app.events.catalogue import document_webhooks
from app.events.endpoint_routes import router as webhook_endpoints_router
from app.events.routes import router as events_router
from app.health.routes import router as health_router

ROUTERS = (
    health_router,  # /healthz /readyz /metrics
    caller_router,  # /v1/me /v1/admin/info
    events_router,  # /v1/events /v1/admin/events[/{id}/redeliver|/dispatch]
    webhook_endpoints_router,  # /v1/admin/webhook-endpoints
)


def mount_routes(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
    document_webhooks(app)  # OpenAPI `webhooks`: what subscribers receive
