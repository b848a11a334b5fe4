"""Admin routes refuse customer tokens; every authenticated route refuses forged, unsigned
and expired tokens; every body is capped. The routes come from the app, so new ones are
swept without editing this file."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from fastapi import FastAPI

from app.core.auth import ADMIN_SCOPE, mint_token
from app.core.http import body_limit
from app.core.settings import Settings
from tests.security.conftest import CUSTOMER_B, Auth, Operation, operations

PLACEHOLDER = "x_1"


async def call_with_placeholders(
    client: httpx.AsyncClient, operation: Operation, headers: dict[str, str]
) -> httpx.Response:
    """The operation with made-up ids and an empty body: auth is decided before either."""
    return await client.request(
        operation.method,
        operation.url(dict.fromkeys(operation.parameters, PLACEHOLDER)),
        json={} if operation.has_body else None,
        headers=headers,
    )


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def bad_tokens(settings: Settings) -> dict[str, str]:
    """Tokens for an admin that must all be refused, so a 403 or 2xx would be a hole."""
    now = datetime.now(UTC)
    claims = {
        "sub": "ops",
        "scope": ADMIN_SCOPE,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(hours=1)).timestamp()),
    }
    return {
        "alg_none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "wrong_key": jwt.encode(claims, "another-secret-of-32-bytes-or-more!!", algorithm="HS256"),
        "expired": mint_token(
            settings,
            subject="ops",
            admin=True,
            ttl=timedelta(minutes=5),
            now=now - timedelta(days=1),
        ),
    }


async def test_admin_routes_refuse_a_customer_token(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth
) -> None:
    admin_operations = [op for op in operations(app) if op.path.startswith("/v1/admin/")]
    assert len(admin_operations) >= 15
    for operation in admin_operations:
        response = await call_with_placeholders(client, operation, auth(CUSTOMER_B))
        assert response.status_code == 403, f"{operation}: {response.text}"
        assert response.json()["code"] == "admin_scope_required"


@pytest.mark.parametrize("kind", ["alg_none", "wrong_key", "expired"])
async def test_every_authenticated_route_refuses_a_bad_token(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, kind: str
) -> None:
    token = bad_tokens(settings)[kind]
    authenticated = [op for op in operations(app) if op.authenticated]
    assert len(authenticated) >= 30
    for operation in authenticated:
        bearer = {"Authorization": f"Bearer {token}"}
        response = await call_with_placeholders(client, operation, bearer)
        assert response.status_code == 401, f"{operation}: {response.text}"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_every_body_is_capped(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, settings: Settings
) -> None:
    with_body = [op for op in operations(app) if op.has_body]
    assert len(with_body) >= 8
    for operation in with_body:
        # Each route's own limit (imports stream large files), in its own media type.
        limit = body_limit(operation.path, settings)
        oversized = b'{"pad": "' + b"a" * limit + b'"}'

        async def streamed(body: bytes = oversized) -> AsyncIterator[bytes]:
            # No Content-Length: the edge has to count what it reads.
            for start in range(0, len(body), 8192):
                yield body[start : start + 8192]

        headers = auth("ops", admin=True) | {"content-type": operation.media_type}
        url = operation.url(dict.fromkeys(operation.parameters, PLACEHOLDER))
        for content in (oversized, streamed()):
            response = await client.request(operation.method, url, content=content, headers=headers)
            assert response.status_code == 413, f"{operation}: {response.text}"
