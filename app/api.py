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
from app.gateway_events.routes import router as gateway_webhooks_router
from app.health.routes import router as health_router
from app.imports.routes import router as imports_router
from app.payment_methods.routes import router as payment_methods_router
from app.renewals.routes import admin_router as renewals_admin_router
from app.renewals.routes import router as renewals_router
from app.runs.routes import admin_router as runs_admin_router
from app.sepa.routes import router as sepa_router
from app.services.routes import admin_router as services_admin_router
from app.services.routes import router as services_router

ROUTERS = (
    health_router,  # /healthz /readyz /metrics
    caller_router,  # /v1/me /v1/admin/info
    payment_methods_router,  # /v1/iban-checks /v1/payment-methods… /v1/admin/customers/…
    services_router,  # /v1/services…
    services_admin_router,  # /v1/admin/services…
    renewals_router,  # /v1/renewals… /v1/services/{id}/renewals
    renewals_admin_router,  # /v1/admin/renewals… (list, forecast)
    runs_admin_router,  # /v1/admin/renewals/run (card sweep + SEPA cycle)
    sepa_router,  # /v1/admin/sepa/batches… /v1/admin/sepa/collections /v1/admin/sepa/returns
    events_router,  # /v1/events /v1/admin/events[/{id}/redeliver|/dispatch]
    webhook_endpoints_router,  # /v1/admin/webhook-endpoints
    gateway_webhooks_router,  # /v1/gateway-webhooks/stripe (signed by Stripe, no token)
    imports_router,  # /v1/admin/imports/payment-methods
)


def mount_routes(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
    document_webhooks(app)  # OpenAPI `webhooks`: what subscribers receive
