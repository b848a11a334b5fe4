"""The application: settings checked, database migrated, routes mounted, jobs started.

`uvicorn app.main:app` serves it; tests call `create_app(settings, clock=...)`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from app import __version__
from app.api import mount_routes
from app.core import migrations
from app.core.clock import Clock, SystemClock
from app.core.collector import settle_garbage_collector
from app.core.database import create_engine, create_sessionmaker
from app.core.errors import install_error_handlers
from app.core.http import configure_logging, install_edge
from app.core.openapi import install_readable_names, operation_id
from app.core.reads import Reader
from app.core.scheduler import JobContext, start_scheduler, stop_scheduler
from app.core.server_proxy import disable_uvicorn_proxy_headers
from app.core.settings import Settings, get_settings
from app.core.settings_checks import check_settings
from app.gateways.availability import GatewayAvailability
from app.gateways.factory import build_gateway, build_sandbox
from app.health.gauges import DatabaseGauges
from app.jobs import JOBS

log = logging.getLogger("autorenew")

DOCS_ASSETS_URL = "/docs-assets"

API_DESCRIPTION = """\
Recurring billing for domains and hosting plans.

Customers register a payment method (SEPA direct debit or card), validate it, and choose
which method renews each service. Shortly before a service expires the renewal is charged
once, and the service is extended by one period.

All errors are RFC 9457 problem documents (`application/problem+json`) with a stable `code`.
Money is `{"amount": <integer minor units>, "currency": "<ISO 4217>"}`; times are UTC.
"""


def create_app(
    settings: Settings | None = None, *, clock: Clock | None = None, serving: bool = False
) -> FastAPI:
    """`serving`: the process exists to serve this app (`uvicorn app.main:app`), so its
    garbage collector may be tuned for it; tests build many apps in one process."""
    settings = settings or get_settings()
    check_settings(settings)
    configure_logging(settings.log_level)
    clock = clock or SystemClock()
    sandbox = build_sandbox(settings, clock=clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.reader = Reader(engine, pool_size=settings.db_pool_size)
        if settings.migrate_on_start:
            await migrations.upgrade(engine)
        if sandbox is not None:
            await sandbox.start()
        app.state.gateway = build_gateway(settings, sandbox=sandbox)
        app.state.job_context = JobContext(
            app.state.sessionmaker,
            app.state.clock,
            settings,
            gateway=app.state.gateway,
            gateway_availability=app.state.gateway_availability,
        )
        app.state.database_gauges = DatabaseGauges(app.state.sessionmaker, app.state.clock)
        app.state.scheduler = start_scheduler(JOBS, app.state.job_context)
        log.info("autorenew started", extra={"version": __version__, "env": settings.env})
        if serving:
            settle_garbage_collector()
        try:
            yield
        finally:
            await stop_scheduler(app.state.scheduler, app.state.job_context)
            await app.state.gateway.aclose()
            if sandbox is not None:
                await sandbox.stop()
            await engine.dispose()
            await app.state.reader.dispose()

    # FastAPIOffline: /docs and /redoc load their scripts from the installed package, not
    # from a CDN, so the documentation works where only the service is reachable.
    app = FastAPIOffline(
        title="autorenew",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        static_url=DOCS_ASSETS_URL,
        # Swagger UI would otherwise send the API description to its online validator.
        swagger_ui_parameters={"validatorUrl": None},
        # The service's metrics are Prometheus' (/metrics). FastAPI's native OpenTelemetry
        # looked for global providers nobody configures, in the environment, per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.clock = clock
    # Whether the card gateway accepts our API key, as the last sweep found (see /readyz).
    app.state.gateway_availability = GatewayAvailability()
    install_error_handlers(app)
    install_readable_names(app)
    install_edge(app, settings)
    mount_routes(app)
    if sandbox is not None:
        # The Stripe-compatible sandbox gateway (form-encoded, outside /v1/ and so outside the
        # edge's JSON-only rule); its lifespan is driven by ours above.
        app.mount("/sandbox", sandbox.app)
    return app


def __getattr__(name: str) -> FastAPI:
    # `uvicorn app.main:app` builds the app on first access, so importing this module (for
    # tests, for the CLI) does not read the environment or touch a database.
    if name == "app":
        # Read by uvicorn's Config while it loads us: make it pass the real TCP peer.
        disable_uvicorn_proxy_headers()
        application = create_app(serving=True)
        globals()["app"] = application
        return application
    raise AttributeError(name)
