"""`openapi.yaml` is generated from the app, never written by hand; a test checks it."""

from __future__ import annotations

from typing import Any

import yaml

from app.core.settings import Settings


def openapi_document() -> dict[str, Any]:
    from app.main import create_app

    # Defaults, not the environment: the committed file must not depend on who generated it.
    app = create_app(Settings.model_construct())
    return app.openapi()


def render_openapi() -> str:
    return yaml.safe_dump(openapi_document(), sort_keys=False, allow_unicode=True, width=100)
