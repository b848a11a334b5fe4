"""The auth matrix: who gets in, who gets 401, who gets 403."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from app.core.settings import Settings


async def test_a_minted_token_reaches_an_authenticated_route(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    response = await client.get("/v1/me", headers=auth("cus_42"))
    assert response.status_code == 200
    assert response.json() == {"customer_id": "cus_42", "scopes": [], "admin": False}


def _claims(**overrides: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": "cus_1",
        "exp": int((now + timedelta(minutes=5)).timestamp()),
    }
    claims.update(overrides)
    return claims


def _bad_tokens(settings: Settings) -> dict[str, str]:
    secret = settings.jwt_secret.get_secret_value()
    good = jwt.encode(_claims(), secret, algorithm="HS256")
    header, _payload, signature = good.split(".")
    other_payload = jwt.encode(_claims(sub="cus_2"), secret, algorithm="HS256").split(".")[1]
    return {
        "garbage": "not-a-jwt",
        "tampered": f"{header}.{other_payload}.{signature}",
        "wrong_key": jwt.encode(
            _claims(), "another-secret-of-enough-length-000000", algorithm="HS256"
        ),
        "expired": jwt.encode(
            _claims(exp=int((datetime.now(UTC) - timedelta(minutes=5)).timestamp())),
            secret,
            algorithm="HS256",
        ),
        "alg_none": jwt.encode(_claims(), None, algorithm="none"),
        "no_exp": jwt.encode({"sub": "cus_1"}, secret, algorithm="HS256"),
        "no_sub": jwt.encode(_claims(sub=None), secret, algorithm="HS256"),
        "empty_sub": jwt.encode(_claims(sub=" "), secret, algorithm="HS256"),
    }


@pytest.mark.parametrize(
    "kind",
    ["garbage", "tampered", "wrong_key", "expired", "alg_none", "no_exp", "no_sub", "empty_sub"],
)
async def test_bad_tokens_get_a_401_problem(
    client: httpx.AsyncClient, settings: Settings, kind: str
) -> None:
    token = _bad_tokens(settings)[kind]
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["code"] == ("token_expired" if kind == "expired" else "invalid_token")
    assert token not in response.text


@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Bearer"])
async def test_missing_token_is_a_401(client: httpx.AsyncClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = await client.get("/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] in ("missing_token", "invalid_token")


async def test_customer_token_on_admin_route_is_403(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    response = await client.get("/v1/admin/info", headers=auth("cus_1"))
    assert response.status_code == 403
    assert response.json()["code"] == "admin_scope_required"


async def test_admin_token_opens_admin_routes(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    response = await client.get("/v1/admin/info", headers=auth("ops", admin=True))
    assert response.status_code == 200
    assert response.json()["environment"] == "development"


async def test_scope_claim_is_space_separated(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = jwt.encode(
        _claims(scope="profile billing:admin email"),
        settings.jwt_secret.get_secret_value(),
        algorithm="HS256",
    )
    response = await client.get("/v1/admin/info", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


async def _get_me(app: FastAPI, token: str) -> httpx.Response:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        return await c.get("/v1/me", headers={"Authorization": f"Bearer {token}"})


async def test_rs256_public_key_and_issuer_audience(make_app: Callable[..., FastAPI]) -> None:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    app = make_app(
        jwt_public_key=public_pem, jwt_issuer="https://id.example", jwt_audience="billing"
    )
    good = jwt.encode(
        _claims(iss="https://id.example", aud="billing"), private_key, algorithm="RS256"
    )
    assert (await _get_me(app, good)).status_code == 200

    wrong_audience = jwt.encode(
        _claims(iss="https://id.example", aud="other"), private_key, algorithm="RS256"
    )
    assert (await _get_me(app, wrong_audience)).status_code == 401
    # An HS256 token signed with the public key as secret: the classic algorithm confusion.
    confused = jwt.encode(
        _claims(iss="https://id.example", aud="billing"), "x" * 40, algorithm="HS256"
    )
    assert (await _get_me(app, confused)).status_code == 401
