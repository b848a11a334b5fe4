"""Inputs schemathesis found answered with a 500 or accepted against the schema, pinned."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

Auth = Callable[..., dict[str, str]]

SERVICE = {
    "customer_id": "cus_1",
    "kind": "domain",
    "name": "example.org",
    "expires_at": "2027-01-01T00:00:00Z",
    "period_months": 12,
    "price": {"amount": 1299, "currency": "EUR"},
}


@pytest.mark.parametrize(
    "change",
    [
        {"name": "a\u0000b"},  # PostgreSQL text cannot hold NUL: was a 500 there
        {"customer_id": "cus\u0000"},
        {"price": {"amount": 9_999_999_999, "currency": "EUR"}},  # over INTEGER: was a 500
        {"expires_at": 0.5},  # a number read as a Unix time
        {"expires_at": "1700000000"},
        {"auto_renew": 0},  # an integer read as a boolean
    ],
)
async def test_the_service_registry_refuses_it_and_writes_nothing(
    client: httpx.AsyncClient, auth: Auth, change: dict[str, Any]
) -> None:
    admin = auth("ops", admin=True)
    response = await client.put("/v1/admin/services/svc_1", json=SERVICE | change, headers=admin)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/admin/services/svc_1", headers=admin)).status_code == 404


async def test_a_nul_split_across_body_chunks_is_still_found(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    body = b'{"url": "https://example.org/\\u0000"}'
    cut = body.index(b"\\u00") + 3

    async def chunks() -> Any:
        yield body[:cut]
        yield body[cut:]

    response = await client.post(
        "/v1/admin/webhook-endpoints",
        content=chunks(),
        headers=auth("ops", admin=True) | {"content-type": "application/json"},
    )
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "url",
    ["/v1/events?type=a%00b", "/v1/services?expiring_before=0.5", "/v1/services/svc%00"],
)
async def test_such_urls_are_a_422(client: httpx.AsyncClient, auth: Auth, url: str) -> None:
    response = await client.get(url, headers=auth("cus_1"))
    assert response.status_code == 422, response.text


async def test_an_endpoint_cannot_be_enabled_with_a_number(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    response = await client.post(
        "/v1/admin/webhook-endpoints",
        json={"url": "https://example.org/hooks", "enabled": 0},
        headers=auth("ops", admin=True),
    )
    assert response.status_code == 422, response.text
