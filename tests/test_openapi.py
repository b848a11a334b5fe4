"""`openapi.yaml` is generated from the app; regenerate it with `autorenew openapi`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI
from pydantic import create_model

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


PLAIN_SCHEMA_NAME = re.compile(r"[A-Z][A-Za-z0-9]*")
PLAIN_OPERATION_ID = re.compile(r"[a-z][a-z0-9_]*")


def unclear_names(document: dict[str, Any]) -> list[str]:
    """Schema names a client generator cannot use as class names, and repeated operation ids.

    Pydantic names two different models of one class name by their module paths
    (`app__core__money__Money`) and generics by their arguments (`Page_RenewalOut_`);
    generators then drop every operation that refers to them.
    """
    problems = [
        f"schema {name}" for name in document["components"]["schemas"]
        if not PLAIN_SCHEMA_NAME.fullmatch(name)
    ]  # fmt: skip
    seen: set[str] = set()
    for section in ("paths", "webhooks"):
        for operations in document.get(section, {}).values():
            for operation in operations.values():
                operation_id = operation["operationId"]
                if operation_id in seen or not PLAIN_OPERATION_ID.fullmatch(operation_id):
                    problems.append(f"operation {operation_id}")
                seen.add(operation_id)
    return problems


def test_every_schema_and_operation_has_one_plain_name() -> None:
    assert unclear_names(openapi_document()) == []


def test_two_models_sharing_a_class_name_are_caught() -> None:
    # The check above must see the collision a future model could bring.
    first = create_model("Coupon", code=(str, ...))
    second = create_model("Coupon", code=(str, ...), percent=(int, ...))
    app = FastAPI()

    @app.get("/first", response_model=first)
    async def first_route() -> None: ...

    @app.get("/second", response_model=second)
    async def second_route() -> None: ...

    problems = unclear_names(app.openapi())
    assert sorted(problems) == [
        "schema tests__test_openapi__Coupon__1",
        "schema tests__test_openapi__Coupon__2",
    ]


def test_generic_pages_are_named_after_their_items() -> None:
    schemas = openapi_document()["components"]["schemas"]
    assert {"RenewalPage", "PaymentMethodPage", "ServicePage"} <= set(schemas)
    assert schemas["RenewalPage"]["properties"]["data"]["items"] == {
        "$ref": "#/components/schemas/RenewalOut"
    }
