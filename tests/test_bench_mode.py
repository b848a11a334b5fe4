"""The benchmark's raw baseline app (bench/raw_routes.py): never in the product's app,
never built for production, and it answers exactly what the real routes answer (or the
benchmark would compare unlike work)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.settings import ConfigurationError, Settings
from bench.raw_routes import create_raw_app
from tests import factories
from tests.test_settings import SAFE


async def test_the_product_app_has_no_raw_routes(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    for path in ("/bench/raw/services", "/bench/raw/payment-methods/pm_1"):
        response = await client.get(path, headers=auth("cus_1"))
        assert response.status_code == 404


def test_production_refuses_the_bench_app() -> None:
    with pytest.raises(ConfigurationError, match="not for production"):
        create_raw_app(Settings(env="production", **SAFE))


def test_the_bench_app_needs_postgresql() -> None:
    with pytest.raises(ConfigurationError, match="needs PostgreSQL"):
        create_raw_app(Settings(database_url="sqlite+aiosqlite:///x.db"))


async def test_raw_routes_answer_what_the_real_routes_answer(
    backend: str,
    settings: Settings,
    make_app: Callable[..., FastAPI],
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    auth: Callable[..., dict[str, str]],
) -> None:
    if backend != "postgresql":
        pytest.skip("the raw routes use asyncpg")
    now = clock.now()
    async with sessionmaker() as session, session.begin():
        card = await factories.card_method(session, "cus_1", now=now, exp=(1, 2026))
        sepa = await factories.sepa_method(session, "cus_1", now=now)
        for index in range(25):  # more than a page, so both give a cursor
            await factories.service(
                session, "cus_1", now=now + timedelta(seconds=index),
                method=(card, sepa, None)[index % 3], kind=("domain", "hosting")[index % 2],
            )  # fmt: skip
        await factories.service(session, "cus_2", now=now, method=None)
    product, baseline = make_app(), create_raw_app(settings, clock=clock)
    async with (
        product.router.lifespan_context(product),
        baseline.router.lifespan_context(baseline),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=product), base_url="http://t") as real,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=baseline), base_url="http://t") as raw,
    ):
        pairs = [
            ("/v1/services", "/bench/raw/services"),
            (f"/v1/payment-methods/{card.id}", f"/bench/raw/payment-methods/{card.id}"),
            (f"/v1/payment-methods/{sepa.id}", f"/bench/raw/payment-methods/{sepa.id}"),
        ]
        for real_path, raw_path in pairs:
            expected = await real.get(real_path, headers=auth("cus_1"))
            answered = await raw.get(raw_path, headers=auth("cus_1"))
            assert expected.status_code == answered.status_code == 200
            assert answered.content == expected.content  # byte for byte
        # Another customer's method is not found; no token is refused.
        other = await raw.get(raw_path, headers=auth("cus_2"))
        assert other.status_code == 404
        assert other.json()["code"] == "payment_method_not_found"
        anonymous = await raw.get("/bench/raw/services")
        assert anonymous.status_code == 401
