"""Money as it travels through the API: integer minor units and an ISO 4217 currency."""

from __future__ import annotations

import functools
from typing import Annotated

import pycountry
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr


@functools.lru_cache(maxsize=512)
def _known_currency(code: str) -> bool:
    # pycountry ships the ISO 4217 list (it comes with schwifty); testing codes like XTS
    # and the precious metals are in it too, and are refused as prices. Remembered: every
    # amount in every response is checked here, and the list never changes.
    return pycountry.currencies.get(alpha_3=code) is not None and not code.startswith("X")


def _iso_currency(code: str) -> str:
    if not _known_currency(code):
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code


# Exactly three upper-case letters, as ISO 4217 writes them: "eur" is refused, not fixed up
# (a client sending it has a bug worth hearing about).
CurrencyCode = Annotated[
    StrictStr,
    Field(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$", examples=["EUR"]),
    AfterValidator(_iso_currency),
]


class Money(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Amounts are stored in 32-bit INTEGER columns: the bound keeps them below 2**31 (a
    # larger one reached PostgreSQL and failed there as a 500), ten million in major units.
    # A JSON integer only: `true` would be 1 and "1299" a string (strict, as every number and
    # boolean the API reads).
    amount: StrictInt = Field(gt=0, le=1_000_000_000, description="Minor units (cents).")
    currency: CurrencyCode


# ISO 4217 currencies without minor units that prices may use (pycountry does not carry
# the exponent); every other accepted currency has two decimals.
_ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV"}
)


def format_money(amount: int, currency: str) -> str:
    """`1299, "EUR"` → `12.99 EUR`: for sentences written to customers."""
    if currency in _ZERO_DECIMAL:
        return f"{amount} {currency}"
    return f"{amount // 100}.{amount % 100:02d} {currency}"
