"""Helpers for payment method tests: register and validate SEPA methods over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.idempotency import IdempotencyRecord
from app.payment_methods.models import Mandate, PaymentMethod
from tests.payment_methods.factories import IBAN_ES, Register, sepa_body


@pytest.fixture
def register(client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]) -> Register:
    async def post(
        customer: str = "cus_1", iban: str = IBAN_ES, name: str = "María Núñez", **headers: str
    ) -> httpx.Response:
        return await client.post(
            "/v1/payment-methods",
            json=sepa_body(iban, name),
            headers={**auth(customer), **headers},
        )

    return post


@pytest.fixture
def accept(client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]) -> Register:
    async def post(method_id: str, customer: str = "cus_1", **extra: Any) -> httpx.Response:
        mandate = {"accepted": True, "signer_name": "María Núñez", **extra}
        return await client.post(
            f"/v1/payment-methods/{method_id}/validate",
            json={"mandate": mandate},
            headers={**auth(customer), "User-Agent": "pytest-browser/1.0"},
        )

    return post


@pytest.fixture
def count_rows(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> Callable[[], Awaitable[dict[str, int]]]:
    async def count() -> dict[str, int]:
        async with sessionmaker() as session:
            return {
                model.__tablename__: int(
                    await session.scalar(select(func.count()).select_from(model)) or 0
                )
                for model in (PaymentMethod, Mandate, IdempotencyRecord)
            }

    return count


@pytest.fixture
def client_with(
    make_app: Callable[..., FastAPI],
) -> Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]:
    """`async with client_with(setting=value) as client:` — the app with changed settings."""

    @asynccontextmanager
    async def open_client(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = make_app(**overrides)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client

    return open_client
