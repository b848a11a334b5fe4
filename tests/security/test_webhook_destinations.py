"""Webhook destinations (issue 15, SSRF): every spelling of an inner address is refused at
registration and at send time, and a delivery connects to the address that was checked."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.errors import Unprocessable
from app.core.settings import Settings
from app.events import destinations
from app.events.dispatcher import Dispatcher
from app.events.endpoints import checked_url, create_endpoint
from tests.events.helpers import emit_committed
from tests.events.receiver import Receiver
from tests.security.conftest import Auth, client_for

PRODUCTION = Settings(env="production")

# Every form the issue found accepted in production, and a few more of the same families.
LOOPBACK_SPELLINGS = [
    "https://2130706433/",
    "https://0x7f000001/",
    "https://0177.0.0.1/",
    "https://127.1/",
    "https://0x7f.1/",
    "https://\uff11\uff12\uff17.0.0.1/",  # full-width digits
    "https://127\u30020\u30020\u30021/",  # ideographic full stops
    "https://[64:ff9b::7f00:1]/",
    "https://[2002:7f00:1::]/",
    "https://[::127.0.0.1]/",
    "https://[::ffff:127.0.0.1]/",
    "https://[64:ff9b:1::a00:1]/",
    "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
    "https://localhost./",
    "https://a.localhost/",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.1.2.3/",
    "https://0/",
    # Found by the outside QA after the first fix: malformed URLs and special-purpose ranges.
    "https://192.0.0.8/",
    "https://192.88.99.1/",
    "https://127.0.0.1 /",
    "https://127.0.0.1\t.8.8.8.8/",
    "https://8.8.8.8/\r\nHost: x",
    "https://127.0.0.1%2e/",
    "https://127.0.0.1%2523x/",
]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[list[str]]]:
    """DNS as the test says: name -> the answers of successive look-ups."""
    answers: dict[str, list[list[str]]] = {}

    async def resolve(host: str, port: int) -> list[destinations.IPAddress]:
        given = answers[host]
        current = given.pop(0) if len(given) > 1 else given[0]
        return [ipaddress.ip_address(address) for address in current]

    monkeypatch.setattr(destinations, "_resolve", resolve)
    return answers


@pytest.mark.parametrize("url", LOOPBACK_SPELLINGS)
async def test_production_refuses_every_spelling_of_an_inner_address(url: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        await checked_url(url, PRODUCTION)
    assert caught.value.code in ("webhook_url_not_allowed", "invalid_webhook_url")


async def test_a_name_that_resolves_inward_is_refused_at_registration(
    resolver: dict[str, list[list[str]]],
) -> None:
    # As a name from /etc/hosts or an internal DNS zone would.
    resolver["hooks.partner.example"] = [["93.184.216.34", "127.0.0.1"]]
    with pytest.raises(Unprocessable) as caught:
        await checked_url("https://hooks.partner.example/x", PRODUCTION)
    assert caught.value.code == "webhook_url_not_allowed"
    resolver["ok.partner.example"] = [["93.184.216.34"]]
    assert await checked_url("https://ok.partner.example/x", PRODUCTION)


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("http://127.0.0.1:9/hooks", 201),
        ("http://[::1]:9/hooks", 201),
        ("http://169.254.169.254/latest/meta-data/", 422),
        ("http://10.0.0.8/hooks", 422),
        ("http://192.168.1.1/hooks", 422),
        ("http://[fd00::1]/hooks", 422),
    ],
)
async def test_development_allows_loopback_only(
    client: httpx.AsyncClient, auth: Auth, url: str, status: int
) -> None:
    response = await client.post(
        "/v1/admin/webhook-endpoints", json={"url": url}, headers=auth("ops", admin=True)
    )
    assert response.status_code == status, response.text


async def test_a_setting_opens_an_internal_network(
    make_app: Callable[..., FastAPI], auth: Auth
) -> None:
    async with client_for(make_app, webhook_allowed_networks=["10.20.0.0/16"]) as client:
        headers = auth("ops", admin=True)
        inside = await client.post(
            "/v1/admin/webhook-endpoints", json={"url": "http://10.20.3.4/h"}, headers=headers
        )
        assert inside.status_code == 201, inside.text
        outside = await client.post(
            "/v1/admin/webhook-endpoints", json={"url": "http://10.21.3.4/h"}, headers=headers
        )
        assert outside.status_code == 422
        # Loopback is development's default only; a list replaces it.
        loopback = await client.post(
            "/v1/admin/webhook-endpoints", json={"url": "http://127.0.0.1/h"}, headers=headers
        )
        assert loopback.status_code == 422


async def _register(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, url: str, clock: FrozenClock
) -> None:
    async with sessionmaker() as session, session.begin():
        await create_endpoint(
            session,
            settings,
            url=url,
            description=None,
            event_types=[],
            enabled=True,
            now=clock.now(),
        )


async def test_a_delivery_connects_to_the_address_it_checked(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FrozenClock,
    resolver: dict[str, list[list[str]]],
) -> None:
    # The name exists only in the test's resolver: the send reaches the receiver only if
    # it connects to the address checked, not to a second look-up of its own.
    with Receiver() as receiver:
        port = receiver.server.server_address[1]
        resolver["receiver.test"] = [["127.0.0.1"]]
        await _register(sessionmaker, settings, f"http://receiver.test:{port}/hooks", clock)
        await emit_committed(sessionmaker, clock.now())
        summary = await Dispatcher(sessionmaker, settings, clock).run_once()
    assert summary.succeeded == 1
    assert receiver.received[0].headers["host"] == f"receiver.test:{port}"


async def test_dns_rebinding_between_registration_and_send_is_refused(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FrozenClock,
    resolver: dict[str, list[list[str]]],
) -> None:
    allowed = settings.model_copy(update={"webhook_allowed_networks": []})
    with Receiver() as receiver:
        port = receiver.server.server_address[1]
        # Public when registered, loopback when sent.
        resolver["rebind.test"] = [["93.184.216.34"], ["127.0.0.1"]]
        await _register(sessionmaker, allowed, f"http://rebind.test:{port}/hooks", clock)
        await emit_committed(sessionmaker, clock.now())
        summary = await Dispatcher(sessionmaker, allowed, clock).run_once()
    assert summary.retrying == 1
    assert receiver.received == []


@pytest.mark.parametrize(
    "address", ["64:ff9b::7f00:1", "2002:7f00:1::", "::127.0.0.1", "::ffff:10.0.0.1"]
)
async def test_the_send_time_check_reads_embedded_ipv4_too(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FrozenClock,
    resolver: dict[str, list[list[str]]],
    address: str,
) -> None:
    allowed = settings.model_copy(update={"webhook_allowed_networks": []})
    resolver["six.test"] = [["93.184.216.34"], [address]]
    await _register(sessionmaker, allowed, "http://six.test/hooks", clock)
    await emit_committed(sessionmaker, clock.now())
    refused = httpx.MockTransport(lambda request: pytest.fail(f"sent to {request.url}"))
    summary = await Dispatcher(sessionmaker, allowed, clock, transport=refused).run_once()
    assert summary.retrying == 1
