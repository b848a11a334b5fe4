"""The part of Stripe's search query language the sandbox understands.

`metadata['key']:'value'`, `status:'succeeded'`, `customer:'cus_…'`, `currency:'eur'` and
`amount:1299`, joined with AND: enough for reconciliation by metadata. Anything else is
refused with a 400 rather than silently matching everything.
"""

from __future__ import annotations

import re

from app.sandbox.errors import invalid_request

_STRING = r"'((?:[^'\\]|\\.)*)'"
_CLAUSE = re.compile(
    rf"^\s*(?:metadata\[{_STRING}\]|(status|customer|currency|amount))\s*:\s*(?:{_STRING}|(\d+))\s*$"
)

Clause = tuple[str, str | None, str]


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_query(query: str) -> list[Clause]:
    if not query.strip():
        raise invalid_request(
            "Missing required param: query.", param="query", code="parameter_missing"
        )
    clauses: list[Clause] = []
    for part in re.split(r"\s+AND\s+", query):
        match = _CLAUSE.match(part)
        if match is None:
            raise invalid_request(f"The sandbox cannot search for {part.strip()!r}.", param="query")
        meta_key, field, string_value, number = match.groups()
        value = _unescape(string_value) if string_value is not None else number
        if meta_key is not None:
            clauses.append(("metadata", _unescape(meta_key), value))
        elif field == "amount" and number is None:
            raise invalid_request("amount takes a number.", param="query")
        else:
            clauses.append((field, None, value))
    return clauses
