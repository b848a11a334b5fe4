"""Names in the OpenAPI document that client generators can use as they are.

Generators (openapi-python-client, openapi-generator, …) turn every operation id into a
function and every component schema into a class. FastAPI's defaults serve them badly:
operation ids like `list_my_renewals_v1_renewals_get`, and generic models named by pydantic
as `Page_RenewalOut_`. So:

- an operation's id is its route function's name (`list_my_renewals`); FastAPI warns on a
  duplicate, and the tests turn that warning into a failure;
- a parametrized generic model is named after its argument: `Page[RenewalOut]` is
  `RenewalPage`.

Two different models with one class name are not renamed here: pydantic would call them
`app__module__Name`, which some generators cannot resolve, and a test refuses such names.
Give the second model a name of its own instead.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

# What pydantic calls `Generic[Arg]` in a schema name: `Page_RenewalOut_`.
_PARAMETRIZED = re.compile(r"^(?P<generic>[A-Z][A-Za-z0-9]*)_(?P<arg>[A-Z][A-Za-z0-9]*)_$")
_REF_PREFIX = "#/components/schemas/"


def operation_id(route: APIRoute) -> str:
    """FastAPI's `generate_unique_id_function`: the route function's name."""
    return route.name


def _readable(name: str) -> str:
    match = _PARAMETRIZED.match(name)
    if match is None:
        return name
    return match["arg"].removesuffix("Out") + match["generic"]


def _rewrite_refs(node: Any, renamed: dict[str, str]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
            name = ref.removeprefix(_REF_PREFIX)
            node["$ref"] = _REF_PREFIX + renamed.get(name, name)
        for value in node.values():
            _rewrite_refs(value, renamed)
    elif isinstance(node, list):
        for value in node:
            _rewrite_refs(value, renamed)
    return node


def name_generic_schemas(document: dict[str, Any]) -> None:
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    renamed = {name: _readable(name) for name in schemas if _readable(name) != name}
    clashes = sorted(set(renamed.values()) & (set(schemas) - set(renamed)))
    if clashes:
        raise RuntimeError(f"schema names used twice: {clashes}")
    for old, new in renamed.items():
        schema = schemas.pop(old)
        schema["title"] = new
        schemas[new] = schema
    document["components"]["schemas"] = dict(sorted(schemas.items()))
    _rewrite_refs(document, renamed)


def install_readable_names(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            name_generic_schemas(build())
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point
