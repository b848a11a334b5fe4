"""`openapi.yaml` is generated from the app; regenerate it with `autorenew openapi`."""

from __future__ import annotations

from pathlib import Path

import yaml

from app.openapi_export import openapi_document

COMMITTED = Path(__file__).resolve().parents[1] / "openapi.yaml"


def test_openapi_yaml_matches_the_app() -> None:
    committed = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
    assert committed == openapi_document(), (
        "openapi.yaml is out of date: run `autorenew openapi` and commit the result"
    )


def test_every_route_documents_its_errors() -> None:
    document = openapi_document()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path in ("/healthz", "/metrics"):
                continue
            statuses = set(operation["responses"])
            assert statuses - {"200", "201", "204", "422"}, f"{method} {path} lists no errors"
