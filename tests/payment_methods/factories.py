"""Test data for payment methods."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx

IBAN_ES = "ES91 2100 0418 4502 0005 1332"
IBAN_ES_ELECTRONIC = "ES9121000418450200051332"
IBAN_DE = "DE89 3704 0044 0532 0130 00"
IBAN_NL = "NL91ABNA0417164300"

Register = Callable[..., Awaitable[httpx.Response]]


def sepa_body(iban: str = IBAN_ES, name: str = "María Núñez") -> dict[str, Any]:
    return {"type": "sepa_debit", "sepa_debit": {"iban": iban, "account_holder_name": name}}


ClientWith = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
