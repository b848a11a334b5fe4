"""Reading Stripe form parameters, refusing bad ones the way Stripe does (400, `param`)."""

from __future__ import annotations

from typing import Any

from app.sandbox.objects import invalid_request, missing


def text(
    params: dict[str, Any], name: str, *, required: bool = False, param: str | None = None
) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise missing(param or name)
        return None
    if not isinstance(value, str):
        raise invalid_request(f"Invalid string: {param or name}", param=param or name)
    return value


def integer(
    params: dict[str, Any], name: str, *, required: bool = False, param: str | None = None
) -> int | None:
    value = text(params, name, required=required, param=param)
    if value is None:
        return None
    if not value.lstrip("-").isdigit():
        raise invalid_request(
            f"Invalid integer: {value}", param=param or name, code="parameter_invalid_integer"
        )
    return int(value)


def flag(params: dict[str, Any], name: str) -> bool:
    value = text(params, name)
    if value is None:
        return False
    if value not in ("true", "false"):
        raise invalid_request(f"Invalid boolean: {value}", param=name)
    return value == "true"


def metadata(params: dict[str, Any]) -> dict[str, str]:
    value = params.get("metadata") or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise invalid_request("Invalid metadata: give metadata[key]=value pairs.", param="metadata")
    if len(value) > 50 or any(len(k) > 40 or len(v) > 500 for k, v in value.items()):
        raise invalid_request(
            "Metadata allows 50 keys of 40 characters, values of 500.", param="metadata"
        )
    return dict(value)
