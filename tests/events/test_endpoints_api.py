"""`/v1/admin/webhook-endpoints`: secrets shown once, URL rules, filters, rotation, removal."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.errors import Unprocessable
from app.core.settings import Settings
from app.events.endpoints import check_url
from app.events.models import WebhookDelivery, WebhookEndpoint

from .helpers import Auth, emit_committed, register_endpoint

BASE = "/v1/admin/webhook-endpoints"


async def _count(session: AsyncSession, model: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_the_secret_is_shown_once_and_stored_encrypted(
    client: httpx.AsyncClient, auth: Auth, session: AsyncSession
) -> None:
    created = await register_endpoint(
        client,
        auth,
        "https://provisioning.example.com/hooks",
        description="provisioning",
        event_types=["service.renewed", "renewal.succeeded", "service.renewed"],
    )
    assert created["secret"].startswith("whsec_")
    assert created["event_types"] == ["renewal.succeeded", "service.renewed"]
    admin = auth("ops", admin=True)
    fetched = (await client.get(f"{BASE}/{created['id']}", headers=admin)).json()
    listed = (await client.get(BASE, headers=admin)).json()["data"]
    assert "secret" not in fetched and all("secret" not in item for item in listed)
    assert [item["id"] for item in listed] == [created["id"]]
    stored = await session.get(WebhookEndpoint, created["id"])
    assert stored is not None
    assert created["secret"] not in stored.secret_ciphertext
    assert created["secret"].removeprefix("whsec_") not in stored.secret_ciphertext


async def test_customers_cannot_manage_endpoints(client: httpx.AsyncClient, auth: Auth) -> None:
    body = {"url": "https://example.com/hooks"}
    assert (await client.post(BASE, json=body, headers=auth("cus_1"))).status_code == 403
    assert (await client.get(BASE)).status_code == 401


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "ftp://example.com/hooks"}, "invalid_webhook_url"),
        ({"url": "not a url"}, "invalid_webhook_url"),
        ({"url": "https://user:pw@example.com/hooks"}, "invalid_webhook_url"),
        ({"url": "https://example.com:99999/"}, "invalid_webhook_url"),
        ({"url": "https://example.com/", "event_types": ["renewal.nope"]}, "unknown_event_type"),
        ({"url": "https://example.com/", "secret": "mine"}, "validation_error"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_written(
    client: httpx.AsyncClient, auth: Auth, session: AsyncSession, body: Any, code: str
) -> None:
    response = await client.post(BASE, json=body, headers=auth("ops", admin=True))
    assert response.status_code == 422
    assert response.json()["code"] == code
    assert await _count(session, WebhookEndpoint) == 0


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://hooks.example.com/", "webhook_url_not_https"),
        ("https://127.0.0.1/hooks", "webhook_url_not_allowed"),
        ("https://10.1.2.3/hooks", "webhook_url_not_allowed"),
        ("https://192.168.0.10/hooks", "webhook_url_not_allowed"),
        ("https://169.254.169.254/latest/meta-data", "webhook_url_not_allowed"),
        ("https://[::1]/hooks", "webhook_url_not_allowed"),
        ("https://[::ffff:10.0.0.1]/hooks", "webhook_url_not_allowed"),
        ("https://localhost/hooks", "webhook_url_not_allowed"),
        ("https://api.localhost/hooks", "webhook_url_not_allowed"),
    ],
)
def test_production_refuses_plain_http_and_inner_addresses(url: str, code: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        check_url(url, Settings(env="production"))
    assert caught.value.code == code


def test_production_accepts_public_https_and_development_allows_loopback() -> None:
    assert check_url("https://hooks.example.com/x", Settings(env="production"))
    assert check_url("https://93.184.216.34/x", Settings(env="production"))
    assert check_url("http://127.0.0.1:8080/x", Settings(env="development"))


async def test_update_filters_and_disables_but_bad_input_changes_nothing(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    admin = auth("ops", admin=True)
    created = await register_endpoint(client, auth, "https://example.com/hooks")
    url = f"{BASE}/{created['id']}"
    bad = await client.patch(url, json={"enabled": False, "event_types": ["nope"]}, headers=admin)
    assert bad.status_code == 422
    assert (await client.get(url, headers=admin)).json()["enabled"] is True
    response = await client.patch(
        url, json={"enabled": False, "event_types": ["renewal.failed"]}, headers=admin
    )
    assert response.status_code == 200
    assert response.json()["enabled"] is False
    assert response.json()["event_types"] == ["renewal.failed"]
    missing = await client.patch(f"{BASE}/we_missing", json={"enabled": True}, headers=admin)
    assert missing.status_code == 404
    assert missing.json()["code"] == "webhook_endpoint_not_found"


async def test_delete_removes_the_endpoint_and_what_it_was_owed(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
) -> None:
    admin = auth("ops", admin=True)
    created = await register_endpoint(client, auth, "https://example.com/hooks")
    await emit_committed(sessionmaker, clock.now())
    assert await _count(session, WebhookDelivery) == 1
    assert (await client.delete(f"{BASE}/{created['id']}", headers=admin)).status_code == 204
    assert (await client.get(f"{BASE}/{created['id']}", headers=admin)).status_code == 404
    assert (await client.delete(f"{BASE}/{created['id']}", headers=admin)).status_code == 404
    assert await _count(session, WebhookDelivery) == 0


async def test_rotation_reports_the_overlap_and_unknown_endpoints_404(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock
) -> None:
    admin = auth("ops", admin=True)
    created = await register_endpoint(client, auth, "https://example.com/hooks")
    rotated = await client.post(f"{BASE}/{created['id']}/rotate-secret", headers=admin)
    assert rotated.status_code == 200
    assert rotated.json()["secret_rotation_overlap_until"] == "2026-11-25T09:00:00Z"
    missing = await client.post(f"{BASE}/we_missing/rotate-secret", headers=admin)
    assert missing.status_code == 404
