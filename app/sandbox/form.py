"""Stripe's form encoding, as the sandbox reads it (bodies and query strings alike).

The sandbox has its own reader: a stand-in for Stripe depends on nothing of the clients that
talk to it. Keys carry nesting in brackets, and clients write the same thing several ways,
all of which Stripe accepts:

    metadata[renewal_id]=ren_1            a dict
    card[networks][preferred]=visa        dicts nest
    expand[]=payment_method               a list, item by item (curl, hand-written clients)
    expand[0]=payment_method              a list by index (the official SDKs)
    items[0][price]=price_1               a list of dicts

The reader keeps what it cannot tell apart without knowing the parameter: `expand[0]=x`
comes out as `{"0": "x"}`, exactly as `metadata[0]=x` would. `params.py` reads each
parameter as what it is (`listed()` turns index-keyed dicts into lists, `metadata()` keeps
them). Values stay strings; `params.flag` reads booleans.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

# A request with more fields than this is not one any client of the sandbox sends.
MAX_FIELDS = 500
# Brackets after the name: Stripe's deepest parameters have three.
MAX_DEPTH = 4


class FormError(ValueError):
    """The body is not a well-formed Stripe form (conflicting, repeated or malformed keys)."""


def _path(key: str) -> list[str]:
    if "[" not in key:
        if "]" in key or not key:
            raise FormError(f"malformed key {key!r}")
        return [key]
    head, _, rest = key.partition("[")
    if not head or not rest.endswith("]"):
        raise FormError(f"malformed key {key!r}")
    parts = rest[:-1].split("][")
    if len(parts) > MAX_DEPTH or any("[" in part or "]" in part for part in parts):
        raise FormError(f"malformed key {key!r}")
    return [head, *parts]


def _assign(root: dict[str, Any], path: list[str], value: str, key: str) -> None:
    node: Any = root
    for position, part in enumerate(path):
        last = position == len(path) - 1
        if part == "":
            # `name[]`: append to a list; only a list of scalars can be written this way.
            if not isinstance(node, list) or not last:
                raise FormError(f"conflicting key {key!r}")
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
        wanted: type = list if path[position + 1] == "" else dict
        if child is None:
            child = wanted()
            node[part] = child
        elif not isinstance(child, wanted):
            raise FormError(f"conflicting key {key!r}")
        node = child


def decode_form(text: str) -> dict[str, Any]:
    """A form body or query string → nested dicts and lists of strings."""
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError as exc:
        raise FormError(str(exc)) from exc
    result: dict[str, Any] = {}
    for key, value in pairs:
        _assign(result, _path(key), value, key)
    return result
