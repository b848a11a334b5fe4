"""Stripe's form encoding, both ways: `metadata[key]=v`, `card[number]=…`, `expand[]=x`.

Stripe's v1 API takes `application/x-www-form-urlencoded` bodies whose keys carry nesting in
brackets. The sandbox decodes with `decode_form`, which reads lists written either way
Stripe accepts them: `expand[]=x` and the official SDK's indexed `expand[0]=x`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

# A request with more fields than this is not one the service would send.
MAX_FIELDS = 200


class FormError(ValueError):
    """The body is not a well-formed Stripe form (conflicting or malformed keys)."""


def _flatten(prefix: str, value: Any, pairs: list[tuple[str, str]]) -> None:
    if value is None:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}[{key}]" if prefix else str(key), item, pairs)
    elif isinstance(value, list | tuple):
        for item in value:
            _flatten(f"{prefix}[]", item, pairs)
    elif isinstance(value, bool):
        pairs.append((prefix, "true" if value else "false"))
    else:
        pairs.append((prefix, str(value)))


def form_pairs(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Nested params → Stripe's bracketed key/value pairs (None values are left out)."""
    pairs: list[tuple[str, str]] = []
    _flatten("", params, pairs)
    return pairs


def encode_form(params: Mapping[str, Any]) -> str:
    return urlencode(form_pairs(params))


def _path(key: str) -> list[str]:
    if "[" not in key:
        return [key]
    head, _, rest = key.partition("[")
    if not head or not rest.endswith("]"):
        raise FormError(f"malformed key {key!r}")
    return [head, *rest[:-1].split("][")]


def _is_index(part: str) -> bool:
    return part == "" or part.isdigit()


def _assign(target: dict[str, Any], path: list[str], value: str, key: str) -> None:
    node: Any = target
    for position, part in enumerate(path):
        last = position == len(path) - 1
        if isinstance(node, list) or (position > 0 and _is_index(part)):
            # `k[]=v` appends; `k[3]=v` must come in order (k[0], k[1], …), as encoders write.
            if not isinstance(node, list) or not last or not _is_index(part):
                raise FormError(f"conflicting key {key!r}")
            if part != "" and int(part) != len(node):
                raise FormError(f"list index out of order in {key!r}")
            node.append(value)
            return
        if not isinstance(node, dict):
            raise FormError(f"conflicting key {key!r}")
        if last:
            if part in node:
                raise FormError(f"repeated key {key!r}")
            node[part] = value
            return
        child = node.get(part)
        if child is None:
            child = [] if _is_index(path[position + 1]) else {}
            node[part] = child
        node = child


def decode_form(body: str) -> dict[str, Any]:
    """Stripe's form body → nested dicts and lists of strings."""
    try:
        pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError as exc:
        raise FormError(str(exc)) from exc
    result: dict[str, Any] = {}
    for key, value in pairs:
        _assign(result, _path(key), value, key)
    return result
