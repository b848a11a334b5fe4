"""The baseline bench/api.py measures the real routes against: a minimal FastAPI app with
two customer reads over plain asyncpg.

    GET /bench/raw/payment-methods/{id}   ~ GET /v1/payment-methods/{id}
    GET /bench/raw/services               ~ GET /v1/services (first page, no filters)

Same bearer check (`verify_token`, PyJWT), same ownership filter, the same reads (the method
with its mandate's reference in one join; the services page, then the methods they use and
their current renewals), the same renewal rules and byte-for-byte the same JSON; but no
SQLAlchemy, no dependency injection, no pydantic and none of the product's middleware (the
access log, metrics, body limits): the cost of the work itself, which bench/api.py compares
the product's stack with. Its own process (`uvicorn --factory
bench.raw_routes:create_raw_app`), so each side's CPU is read from its own /proc/<pid>/stat.
The app's error handlers render 401/404 as the product does.

Only what the benchmark seeds is covered: the raw method route never shows a `next_action`
(the seeded methods are all validated), and the services route takes no query parameters.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from starlette.requests import Request
from starlette.responses import Response

from app.core.auth import Caller, verify_token
from app.core.clock import Clock, SystemClock
from app.core.errors import NotFound, Unauthorized, install_error_handlers
from app.core.pagination import DEFAULT_LIMIT, encode_cursor
from app.core.settings import ConfigurationError, Settings, get_settings
from app.renewals.picture import next_action, picture
from app.services.methods import MethodFacts, card_valid_until

# All columns, as the ORM loads them.
METHOD = (
    "SELECT p.*, m.reference AS mandate_reference FROM payment_methods p "
    "LEFT JOIN mandates m ON m.payment_method_id = p.id WHERE p.customer_id = $1 AND p.id = $2"
)
SERVICES = "SELECT * FROM services WHERE customer_id = $1 ORDER BY created_at, id LIMIT $2"
METHODS = "SELECT * FROM payment_methods WHERE id = ANY($1)"
CURRENT_RENEWALS = (
    "SELECT * FROM renewals WHERE (service_id, period_start) IN "
    "(SELECT * FROM unnest($1::text[], $2::timestamptz[]))"
)


@dataclass(frozen=True)
class ServiceRow:
    """The service columns the renewal rules read (they take the ORM model's attributes)."""

    id: str
    status: str
    kind: str
    expires_at: datetime
    price_amount: int
    price_currency: str
    auto_renew: bool


@dataclass(frozen=True)
class RenewalRow:
    """The renewal columns the rules and the summary read."""

    id: str
    status: str
    period_start: datetime
    due_at: datetime
    next_attempt_at: datetime | None
    attempt_count: int
    failed_charge_count: int
    amount: int
    currency: str
    failure_code: str | None
    failure_reason: str | None
    action_url: str | None
    notified_at: datetime | None

    @classmethod
    def of(cls, row: asyncpg.Record) -> RenewalRow:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


def _iso(moment: datetime | None) -> str | None:
    # pydantic writes UTC as `Z`; the JSON must be byte-for-byte the real route's.
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _json(status: int, body: Any) -> Response:
    content = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(content, status_code=status, media_type="application/json")


def _caller(request: Request) -> Caller:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("A bearer token is required.", code="missing_token")
    return verify_token(token, request.app.state.settings)


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.bench_pool
    return pool


def _method_json(row: asyncpg.Record) -> dict[str, Any]:
    sepa = card = None
    if row["type"] == "sepa_debit":
        sepa = {
            "iban": row["iban_masked"],
            "last4": row["iban_last4"],
            "country_code": row["iban_country"],
            "bank_code": row["bank_code"],
            "bic": row["bic"],
            "bank_name": row["bank_name"],
            "account_holder_name": row["account_holder_name"] or "",
            "mandate_reference": row["mandate_reference"],
        }
    else:
        card = {
            "brand": row["card_brand"],
            "last4": row["card_last4"],
            "exp_month": row["card_exp_month"],
            "exp_year": row["card_exp_year"],
            "funding": row["card_funding"],
            "country": row["card_country"],
        }
    return {
        "id": row["id"],
        "customer_id": row["customer_id"],
        "type": "card" if row["type"] == "card" else "sepa_debit",
        "status": row["status"],
        "default": row["is_default"],
        "created_at": _iso(row["created_at"]),
        "validated_at": _iso(row["validated_at"]),
        "revoked_at": _iso(row["revoked_at"]),
        "failure_code": row["failure_code"],
        "sepa_debit": sepa,
        "card": card,
        "next_action": None,
    }


async def raw_payment_method(request: Request) -> Response:
    caller = _caller(request)
    method_id = request.path_params["method_id"]
    pool = _pool(request)
    row = await pool.fetchrow(METHOD, caller.customer_id, method_id)
    if row is None:
        raise NotFound("No such payment method.", code="payment_method_not_found")
    return _json(200, _method_json(row))


def _facts(row: asyncpg.Record) -> MethodFacts:
    # The same summary as app.services.methods.facts, from a row instead of a model.
    if row["type"] == "card":
        valid_until = (
            card_valid_until(row["card_exp_month"], row["card_exp_year"])
            if row["card_exp_month"] and row["card_exp_year"]
            else None
        )
        brand = (row["card_brand"] or "card").upper()
        return MethodFacts(
            row["id"], row["type"], row["status"], f"{brand} •••• {row['card_last4'] or '????'}",
            valid_until,
        )  # fmt: skip
    display = row["iban_masked"] or f"IBAN •••• {row['iban_last4'] or '????'}"
    return MethodFacts(row["id"], row["type"], row["status"], display, None)


def _current_json(renewal: RenewalRow | None) -> dict[str, Any] | None:
    if renewal is None:
        return None
    return {
        "id": renewal.id,
        "status": renewal.status,
        "amount": {"amount": renewal.amount, "currency": renewal.currency},
        "attempt_count": renewal.attempt_count,
        "next_attempt_at": _iso(renewal.next_attempt_at),
        "failure_code": renewal.failure_code,
        "failure_reason": renewal.failure_reason,
        "next_action": next_action(renewal),
        "notified_at": _iso(renewal.notified_at),
    }


def _service_json(
    row: asyncpg.Record,
    method: MethodFacts | None,
    renewal: RenewalRow | None,
    settings: Settings,
    now: datetime,
) -> dict[str, Any]:
    service = ServiceRow(
        row["id"], row["status"], row["kind"], row["expires_at"], row["price_amount"],
        row["price_currency"], row["auto_renew"],
    )  # fmt: skip
    price = {"amount": row["price_amount"], "currency": row["price_currency"]}
    seen = picture(service, method, renewal, settings, now)
    charge = seen.next_charge
    next_charge = None
    if charge is not None:
        next_charge = {
            "at": _iso(charge.at),
            "amount": {"amount": charge.amount, "currency": charge.currency},
            "lead_days": charge.lead_days,
            "kind": charge.kind,
        }
    summary = None
    if method is not None:
        summary = {
            "id": method.id,
            "type": method.type,
            "status": method.status,
            "display": method.display,
            "valid_until": _iso(method.valid_until),
        }
    return {
        "id": row["id"],
        "customer_id": row["customer_id"],
        "kind": row["kind"],
        "name": row["name"],
        "status": row["status"],
        "expires_at": _iso(row["expires_at"]),
        "period_months": row["period_months"],
        "price": price,
        "auto_renew": row["auto_renew"],
        "payment_method": summary,
        "next_charge": next_charge,
        "renewal_readiness": seen.readiness,
        "renewal_readiness_message": seen.message,
        "current_renewal": _current_json(renewal),
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "cancelled_at": _iso(row["cancelled_at"]),
    }


async def raw_services(request: Request) -> Response:
    caller = _caller(request)
    settings: Settings = request.app.state.settings
    pool = _pool(request)
    async with pool.acquire() as connection:
        rows = await connection.fetch(SERVICES, caller.customer_id, DEFAULT_LIMIT + 1)
        page = rows[:DEFAULT_LIMIT]
        wanted = list({r["payment_method_id"] for r in page if r["payment_method_id"]})
        methods = (
            {m["id"]: _facts(m) for m in await connection.fetch(METHODS, wanted)} if wanted else {}
        )
        current = {
            r["service_id"]: RenewalRow.of(r)
            for r in await connection.fetch(
                CURRENT_RENEWALS, [r["id"] for r in page], [r["expires_at"] for r in page]
            )
        }
    next_cursor = None
    if len(rows) > DEFAULT_LIMIT:
        next_cursor = encode_cursor(page[-1]["created_at"], page[-1]["id"])
    now = request.app.state.clock.now()
    data = [
        _service_json(
            row, methods.get(row["payment_method_id"]), current.get(row["id"]), settings, now
        )
        for row in page
    ]
    return _json(200, {"data": data, "next_cursor": next_cursor})


async def open_bench_pool(settings: Settings) -> asyncpg.Pool:
    """As many connections as the product's read pool (AUTORENEW_DB_POOL_SIZE): on a busy
    database a side with more connections waits less for one, whatever its code costs."""
    dsn = make_url(settings.database_url).set(drivername="postgresql")
    return await asyncpg.create_pool(
        dsn.render_as_string(hide_password=False), min_size=1, max_size=settings.db_pool_size
    )


def refuse_unsuitable(settings: Settings) -> None:
    """The raw routes read any customer's rows with no more than a token check of their own:
    never next to production data. And they speak asyncpg, so PostgreSQL only."""
    problems = []
    if settings.env == "production":
        problems.append("the benchmark app (bench/raw_routes.py) is not for production")
    if settings.is_sqlite:
        problems.append("the benchmark app needs PostgreSQL (its raw routes use asyncpg)")
    if problems:
        raise ConfigurationError("; ".join(problems))


def create_raw_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """The baseline: FastAPI, the product's error handlers, the two raw routes, a pool."""
    settings = settings or get_settings()
    refuse_unsuitable(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.bench_pool = await open_bench_pool(settings)
        try:
            yield
        finally:
            await app.state.bench_pool.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None)
    app.state.settings = settings
    app.state.clock = clock or SystemClock()
    install_error_handlers(app)
    app.add_api_route("/bench/raw/payment-methods/{method_id}", raw_payment_method)
    app.add_api_route("/bench/raw/services", raw_services)
    return app
