"""Every failure at the HTTP edge is a problem document; request ids; access log; metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field

from app.core.deps import CallerDep

PROBLEM = "application/problem+json"


class Echo(BaseModel):
    name: str = Field(min_length=1)
    count: int


probe = APIRouter(prefix="/v1/test-probe")


@probe.post("/echo")
async def echo(body: Echo, _caller: CallerDep) -> Echo:
    return body


@probe.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret internals: password=hunter2")


@pytest.fixture
async def probe_client(make_app: Callable[..., FastAPI]) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app()
    app.include_router(probe)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(code)
    assert body["title"] and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return dict(body)


async def test_unknown_route(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/nothing-here"), 404, "not_found")


async def test_wrong_method(client: httpx.AsyncClient) -> None:
    response = await client.delete("/healthz")
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"


async def test_a_wrong_method_names_every_method_the_path_serves(
    client: httpx.AsyncClient,
) -> None:
    # One route per method in FastAPI: Allow must not stop at the first one found.
    response = await client.post("/v1/services/svc_1")
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, PATCH"
    response = await client.put("/v1/payment-methods/pm_1")
    assert response.headers["allow"] == "DELETE, GET"


async def test_malformed_json(
    probe_client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    response = await probe_client.post(
        "/v1/test-probe/echo",
        content=b'{"name": "x", ',
        headers={**auth("cus_1"), "content-type": "application/json"},
    )
    assert_problem(response, 400, "malformed_json")


async def test_invalid_fields_say_where(
    probe_client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    response = await probe_client.post(
        "/v1/test-probe/echo", json={"name": "", "count": "many"}, headers=auth("cus_1")
    )
    body = assert_problem(response, 422, "validation_error")
    locations = {tuple(error["loc"]) for error in body["errors"]}  # type: ignore[attr-defined]
    assert locations == {("body", "name"), ("body", "count")}


async def test_wrong_content_type(
    probe_client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    response = await probe_client.post(
        "/v1/test-probe/echo",
        content=b"name=x",
        headers={**auth("cus_1"), "content-type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 415, "unsupported_media_type")


async def test_body_over_the_limit_by_content_length(
    probe_client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    big = json.dumps({"name": "x" * (70 * 1024), "count": 1})
    response = await probe_client.post(
        "/v1/test-probe/echo",
        content=big,
        headers={**auth("cus_1"), "content-type": "application/json"},
    )
    assert_problem(response, 413, "payload_too_large")


async def test_body_over_the_limit_when_streamed(
    probe_client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'", "count": 1}'

    response = await probe_client.post(
        "/v1/test-probe/echo",
        content=chunks(),
        headers={**auth("cus_1"), "content-type": "application/json"},
    )
    assert_problem(response, 413, "payload_too_large")


async def test_unhandled_error_leaks_nothing(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.get("/v1/test-probe/boom", headers={"X-Request-ID": "req-boom-1"})
    body = assert_problem(response, 500, "internal_error")
    assert body["request_id"] == "req-boom-1"
    assert "hunter2" not in response.text and "RuntimeError" not in response.text


async def test_request_id_is_honoured_or_generated(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz", headers={"X-Request-ID": "abc-123"})).headers[
        "x-request-id"
    ] == "abc-123"
    generated = (await client.get("/healthz", headers={"X-Request-ID": "bad id\n"})).headers[
        "x-request-id"
    ]
    assert generated != "bad id\n" and len(generated) == 32


async def test_access_log_line_has_no_token_and_names_the_route(
    client: httpx.AsyncClient,
    auth: Callable[..., dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = auth("cus_7")
    with caplog.at_level(logging.INFO, logger="autorenew.access"):
        await client.get("/v1/me", headers=headers)
    records = [r for r in caplog.records if r.name == "autorenew.access"]
    assert len(records) == 1
    record = records[0]
    assert record.route == "/v1/me"  # type: ignore[attr-defined]
    assert record.status == 200  # type: ignore[attr-defined]
    assert record.caller == "cus_7"  # type: ignore[attr-defined]
    token = headers["Authorization"].split()[1]
    assert token not in caplog.text


async def test_health_ready_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {
        "status": "ready",
        "gateway": {"available": True, "reason": None, "since": None},
    }
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert (
        'autorenew_http_requests_total{method="GET",route="/readyz",status="200"}' in metrics.text
    )


async def test_readyz_answers_503_when_the_database_is_gone(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        assert_problem(await c.get("/readyz"), 503, "database_unavailable")


async def test_cors_preflight_for_the_spa(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(cors_origins=["https://my.example"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.options(
            "/v1/me",
            headers={
                "Origin": "https://my.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "Authorization",
            },
        )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://my.example"
