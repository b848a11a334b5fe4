"""Reading Stripe form parameters, refusing bad ones the way Stripe does (400, `param`)."""

from __future__ import annotations

from typing import Any

from app.sandbox.errors import invalid_request, missing

# Stripe takes `true`/`false`; the official SDKs send those, and some clients send Python's
# spelling (`True`), which Stripe accepts as well.
_TRUE = frozenset({"true", "True"})
_FALSE = frozenset({"false", "False"})


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
    if not value.lstrip("-").isdigit() or len(value) > 18:
        raise invalid_request(
            f"Invalid integer: {value}", param=param or name, code="parameter_invalid_integer"
        )
    return int(value)


def flag(params: dict[str, Any], name: str, *, param: str | None = None) -> bool | None:
    """A boolean parameter; None when absent."""
    value = text(params, name, param=param)
    if value is None:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise invalid_request(f"Invalid boolean: {value}", param=param or name)


def off_session(params: dict[str, Any]) -> bool:
    """PaymentIntents' `off_session`: a boolean, or `one_off` / `recurring` (both mean the
    customer is not there to authenticate)."""
    value = text(params, "off_session")
    if value in ("one_off", "recurring"):
        return True
    return bool(flag(params, "off_session"))


def listed(params: dict[str, Any], name: str) -> list[Any]:
    """A list parameter written `name[]=a` or `name[0]=a` (the SDKs' form)."""
    value = params.get(name)
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and all(key.isdigit() for key in value):
        indexes = sorted(int(key) for key in value)
        if indexes == list(range(len(indexes))):
            return [value[str(index)] for index in indexes]
    raise invalid_request(f"Invalid array: {name}", param=name)


def expands(params: dict[str, Any], field: str) -> bool:
    return field in listed(params, "expand")


def metadata(params: dict[str, Any]) -> dict[str, str]:
    value = params.get("metadata") or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise invalid_request("Invalid metadata: give metadata[key]=value pairs.", param="metadata")
    if len(value) > 50 or any(len(k) > 40 or len(v) > 500 for k, v in value.items()):
        raise invalid_request(
            "Metadata allows 50 keys of 40 characters, values of 500.", param="metadata"
        )
    # Stripe: an empty value removes the key.
    return {key: item for key, item in value.items() if item != ""}
