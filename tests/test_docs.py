"""/docs and /redoc work where only the service is reachable: every asset from the app."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx
import pytest

from app.core.settings import Settings
from app.main import create_app


class _Assets(HTMLParser):
    """The URLs a browser would load for the page: scripts, stylesheets, icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for attribute in ("src", "href"):
            if tag in ("script", "link", "img") and named.get(attribute):
                self.urls.append(str(named[attribute]))
        self._in_script = tag == "script" and not named.get("src")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_scripts.append(data)


@pytest.mark.parametrize(("page", "expected_assets"), [("/docs", 3), ("/redoc", 2)])
async def test_the_docs_load_every_asset_from_the_service(page: str, expected_assets: int) -> None:
    app = create_app(Settings.model_construct())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        html = await client.get(page)
        assert html.status_code == 200
        assets = _Assets()
        assets.feed(html.text)
        assert len(assets.urls) == expected_assets, assets.urls
        # The inline start-up script fetches the API description: from here too.
        assert any("/openapi.json" in script for script in assets.inline_scripts) or (
            'spec-url="/openapi.json"' in html.text
        )
        for url in [*assets.urls, "/openapi.json"]:
            absolute = urljoin(f"http://service{page}", url)
            assert absolute.startswith("http://service/"), f"{page} loads {url} from elsewhere"
            asset = await client.get(absolute)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000, url
        assert "https://" not in "".join(assets.inline_scripts)
        if page == "/docs":  # Swagger UI's default posts the description to swagger.io
            assert '"validatorUrl": null' in html.text
