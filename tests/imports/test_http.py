"""The import route's edges: media type, limits, streaming."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from tests.imports.helpers import NDJSON, Auth, ndjson, post_import, sepa_line
from tests.payment_methods.factories import IBAN_DE


@pytest.fixture
async def small_limits(make_app: Callable[..., FastAPI]) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(import_max_bytes=4096, import_max_lines=3, import_max_line_bytes=1024)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def test_the_body_must_be_ndjson(client: httpx.AsyncClient, auth: Auth) -> None:
    response = await client.post(
        "/v1/admin/imports/payment-methods",
        json=sepa_line(),
        headers=auth("ops", admin=True),
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


async def test_only_admins_import(client: httpx.AsyncClient, auth: Auth) -> None:
    response = await client.post(
        "/v1/admin/imports/payment-methods",
        content=ndjson(sepa_line()),
        headers={**auth("cus_1"), **NDJSON},
    )
    assert response.status_code == 403


async def test_an_empty_file_imports_nothing(client: httpx.AsyncClient, auth: Auth) -> None:
    response = await post_import(client, auth, b"")
    assert response.status_code == 200
    assert response.json()["lines"] == 0 and response.json()["committed"] is True


async def test_limits(small_limits: httpx.AsyncClient, auth: Auth) -> None:
    four = ndjson(*(sepa_line(f"cus_{n}", reference=f"R-{n}") for n in range(4)))
    too_many = await post_import(small_limits, auth, four)
    assert too_many.status_code == 413
    assert too_many.json()["code"] == "import_too_many_lines"

    big = b"\n" * 5000
    declared = await post_import(small_limits, auth, big)
    assert declared.status_code == 413
    assert declared.json()["code"] == "payload_too_large"

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: counted as read
        for _ in range(5):
            yield b"\n" * 1000

    counted = await small_limits.post(
        "/v1/admin/imports/payment-methods",
        content=streamed(),
        headers={**auth("ops", admin=True), **NDJSON},
    )
    assert counted.status_code == 413

    long_line = {**sepa_line(), "account_holder_name": "x" * 2000}
    mixed = ndjson(long_line, sepa_line("cus_2", iban=IBAN_DE, reference="R-2"))
    response = await post_import(small_limits, auth, mixed, partial="true")
    assert response.status_code == 200, response.text
    assert [(r["line"], r["code"]) for r in response.json()["refusals"]] == [(1, "line_too_long")]
    assert response.json()["imported"] == 1
