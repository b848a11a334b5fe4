"""A real browser (headless Chromium) tokenizes a card at the sandbox from a page of another
origin, with the publishable key, through CORS (a preflight: the Authorization header is not
a simple one), as the customer-area SPA does. A page from an origin not in the list is
refused by the browser itself. Skipped where Chromium is not installed."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests import processes

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PUBLISHABLE_KEY = "pk_test_browser"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed"),
]

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>card</title></head><body>
<p id="token">pending</p><p id="server-route">pending</p>
<script>
const sandbox = "{sandbox}";
const headers = {{"Authorization": "Bearer {key}",
                  "Content-Type": "application/x-www-form-urlencoded"}};
async function run() {{
  try {{
    const made = await fetch(sandbox + "/v1/payment_methods", {{
      method: "POST", headers,
      body: new URLSearchParams({{"type": "card", "card[number]": "4242424242424242",
        "card[exp_month]": "12", "card[exp_year]": "2030", "card[cvc]": "123"}})}});
    const body = await made.json();
    document.getElementById("token").textContent = made.status + " " + body.id;
  }} catch (error) {{
    document.getElementById("token").textContent = "blocked " + error.name;
  }}
  try {{
    const refused = await fetch(sandbox + "/v1/customers", {{method: "POST", headers}});
    const body = await refused.json();
    document.getElementById("server-route").textContent = refused.status + " " + body.error.code;
  }} catch (error) {{
    document.getElementById("server-route").textContent = "blocked " + error.name;
  }}
}}
run();
</script></body></html>
"""


@pytest.fixture
def pages(tmp_path: Path) -> Iterator[list[str]]:
    """Two origins serving the same page: the first is allowed by the sandbox, the second
    is not."""
    servers = []
    for name in ("allowed", "other"):
        folder = tmp_path / name
        folder.mkdir()
        handler = partial(_Quiet, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    try:
        yield [f"http://127.0.0.1:{server.server_port}" for server in servers]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_args: object) -> None:
        pass


def render(url: str, profile: Path) -> str:
    """The page's DOM once its scripts have run (network waits pause the virtual clock)."""
    assert CHROMIUM is not None
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_a_page_of_another_origin_tokenizes_with_the_publishable_key(
    tmp_path: Path, pages: list[str]
) -> None:
    allowed, other = pages
    with processes.sandbox_gateway(
        tmp_path,
        name="sandbox-browser",
        ledger=tmp_path / "ledger.db",
        AUTORENEW_SANDBOX_CORS_ORIGINS=f'["{allowed}"]',
    ) as sandbox:
        page = PAGE.format(sandbox=sandbox, key=PUBLISHABLE_KEY)
        for name in ("allowed", "other"):
            (tmp_path / name / "index.html").write_text(page, encoding="utf-8")

        dom = render(f"{allowed}/index.html", tmp_path / "profile-a")
        assert '<p id="token">200 pm_' in dom, dom
        # Readable (CORS allows the origin), and refused by the sandbox: Stripe's 403.
        assert '<p id="server-route">403 secret_key_required</p>' in dom, dom

        dom = render(f"{other}/index.html", tmp_path / "profile-b")
        assert '<p id="token">blocked TypeError</p>' in dom, dom
