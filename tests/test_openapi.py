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


def test_every_error_is_documented_as_a_problem_document() -> None:
    # What clients validate against: the media type we send, with the schema under it.
    document = openapi_document()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert response["content"] == {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/ProblemDocument"}
                        }
                    }, f"{method} {path} {status}"
            if "requestBody" in operation:
                assert {"400", "413", "415", "422"} <= set(operation["responses"]), path
