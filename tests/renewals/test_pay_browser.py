"""A real browser (headless Chromium, driven over its DevTools protocol) authenticates a
renewal's payment: it follows the renewal's `next_action.url`, presses "Complete
authentication" on the sandbox's 3-D Secure page, and lands on the customer area through the
service's return route. The service moved one period; the sandbox ledger holds one charge.

`autorenew serve` runs as an operator starts it (SQLite, the sandbox mounted); everything
else goes through its HTTP API as the SPA and provisioning would. Skipped where Chromium is
not installed."""

from __future__ import annotations

import asyncio
import http.server
import itertools
import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import websockets

from app.core.auth import mint_token
from app.core.settings import Settings
from tests import processes

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECRET_KEY = "sk_test_autorenew_sandbox"
PORTS = range(8350, 8400)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed"),
]


def free_port_in_range(taken: set[int]) -> int:
    for candidate in PORTS:
        if candidate in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        taken.add(candidate)
        return candidate
    raise RuntimeError("no free port in 8350-8399")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def ports() -> set[int]:
    return set()


@pytest.fixture
def customer_area(tmp_path: Path, ports: set[int]) -> Iterator[str]:
    """The SPA's page the browser ends on."""
    folder = tmp_path / "area"
    folder.mkdir()
    (folder / "billing.html").write_text(
        "<!doctype html><title>billing</title><p id=area>customer area</p>", encoding="utf-8"
    )
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", free_port_in_range(ports)), partial(_Quiet, directory=str(folder))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/billing.html"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def chromium(tmp_path: Path, ports: set[int]) -> Iterator[str]:
    """A headless Chromium with its DevTools endpoint; yields that endpoint's URL."""
    assert CHROMIUM is not None
    port = free_port_in_range(ports)
    browser = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--remote-debugging-port={port}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/json/version", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError("Chromium's DevTools endpoint did not come up")
        yield f"http://127.0.0.1:{port}"
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait(timeout=5)


class Page:
    """One browser tab over the DevTools protocol: navigate, read, run a line of script."""

    def __init__(self, socket: Any) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self._ids)
        await self._socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:  # events arrive in between; only our answer counts
            message = json.loads(await self._socket.recv())
            if message.get("id") == number:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        answer = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return answer["result"].get("value")

    async def wait_for(self, expression: str, seconds: float = 30) -> Any:
        """Until `expression` is truthy in the page (pages load on their own time)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.2)  # the browser's time, not business time
        raise AssertionError(f"{expression} never held; at {await self.evaluate('location.href')}")


async def card_needing_authentication(api: httpx.AsyncClient, customer: dict[str, str]) -> str:
    """Register Stripe's 3184 (3-D Secure on every payment) as the SPA would, and pass its
    setup's own 3-D Secure by posting the sandbox page's form."""
    token = await api.post(
        "/sandbox/v1/payment_methods",
        auth=(SECRET_KEY, ""),
        data={
            "type": "card",
            "card[number]": "4000002760003184",
            "card[exp_month]": "12",
            "card[exp_year]": str(datetime.now(UTC).year + 3),
            "card[cvc]": "123",
        },
    )
    registered = await api.post(
        "/v1/payment-methods",
        json={"type": "card", "card": {"token": token.json()["id"]}},
        headers=customer,
    )
    assert registered.status_code == 201, registered.text
    method = registered.json()
    assert method["next_action"]["type"] == "three_d_secure"
    page = await api.get(method["next_action"]["url"])
    action = re.search(r'action="([^"]+)"', page.text)
    form_token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert action is not None and form_token is not None
    await api.post(action.group(1), data={"token": form_token.group(1), "result": "complete"})
    validated = await api.post(f"/v1/payment-methods/{method['id']}/validate", headers=customer)
    assert validated.json()["status"] == "validated", validated.text
    return str(method["id"])


async def test_the_browser_authenticates_a_renewal_and_lands_in_the_customer_area(
    tmp_path: Path, ports: set[int], customer_area: str, chromium: str
) -> None:
    port = free_port_in_range(ports)
    with processes.autorenew_server(
        tmp_path,
        port=port,
        AUTORENEW_PAYMENT_RETURN_URL=customer_area,
        AUTORENEW_RENEWAL_NOTICE_DAYS="0",
    ) as (base_url, _log):
        customer = {"Authorization": f"Bearer {_token('cus_browser')}"}
        admin = {"Authorization": f"Bearer {_token('ops', admin=True)}"}
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as api:
            card = await card_needing_authentication(api, customer)
            expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=5)
            registered = await api.put(
                "/v1/admin/services/host-browser",
                headers=admin,
                json={
                    "customer_id": "cus_browser",
                    "kind": "hosting",
                    "name": "Hosting",
                    "expires_at": expires.isoformat(),
                    "period_months": 12,
                    "price": {"amount": 1299, "currency": "EUR"},
                },
            )
            assert registered.status_code in (200, 201), registered.text
            chosen = await api.put(
                "/v1/services/host-browser/payment-method",
                headers=customer,
                json={"payment_method_id": card},
            )
            assert chosen.status_code == 200, chosen.text
            run = await api.post("/v1/admin/renewals/run", headers=admin)
            assert run.json()["requires_action"] == 1, run.text
            shown = (await api.get("/v1/services/host-browser", headers=customer)).json()
            assert shown["renewal_readiness"] == "requires_authentication"
            action = shown["current_renewal"]["next_action"]
            assert action["type"] == "authenticate_payment"

            # The browser from here on: the link, the page, the button, the way back.
            target = (await api.put(f"{chromium}/json/new?about:blank")).json()
            async with websockets.connect(
                target["webSocketDebuggerUrl"], max_size=None
            ) as devtools:
                page = Page(devtools)
                await page.call("Page.enable")
                await page.call("Page.navigate", url=action["url"])
                await page.wait_for("!!document.querySelector('button[value=complete]')")
                assert "/sandbox/3ds/" in await page.evaluate("location.href")
                assert "12.99 EUR" in await page.evaluate("document.body.innerText")
                await page.evaluate("document.querySelector('button[value=complete]').click()")
                await page.wait_for("!!document.getElementById('area')")
                landed = urlsplit(await page.evaluate("location.href"))
            assert f"{landed.scheme}://{landed.netloc}{landed.path}" == customer_area
            query = parse_qs(landed.query)
            assert query["status"] == ["succeeded"]

            shown = (await api.get("/v1/services/host-browser", headers=customer)).json()
            assert datetime.fromisoformat(shown["expires_at"]) == expires.replace(
                year=expires.year + 1
            )
            [renewal] = (
                await api.get("/v1/services/host-browser/renewals", headers=customer)
            ).json()["data"]
            assert renewal["id"] == query["renewal_id"][0]
            assert renewal["status"] == "succeeded"
            ledger = await api.get(
                "/sandbox/_ledger/charges", auth=(SECRET_KEY, ""), params={"limit": 100}
            )
            paid = [c for c in ledger.json()["data"] if c["status"] == "succeeded"]
            assert [c["metadata"]["renewal_id"] for c in paid] == [renewal["id"]]


def _token(subject: str, *, admin: bool = False) -> str:
    """Signed as `autorenew token` signs, with the secret the server was started with."""
    return mint_token(Settings(), subject=subject, admin=admin, ttl=None, now=datetime.now(UTC))
