"""Sequence types and the life of a recurrent SEPA mandate, as pure rules.

- The first collection under a mandate is FRST, the ones after it RCUR. Since the SDD
  rulebook of November 2016 FRST is optional: a creditor may present the first collection
  as RCUR (`first_as_recurring=True`), which some banks prefer because FRST and RCUR then
  share one lead time and one batch.
- A collection that was rejected before settlement never reached the debtor's bank as a
  usage of the mandate, so the next one is FRST again; one that settled (even if later
  returned or refunded) counts as used.
- A mandate under which no collection was presented for 36 months lapses (rulebook
  4.5, "expiry of mandates"): the creditor must not use it again; the customer needs to
  accept a new one. The months run from the latest collection presented, even if it was
  rejected, returned or refunded, and from the signature for a mandate never used.
- A mandate names one debtor account. This service treats a changed IBAN as a new
  mandate (a new acceptance, a new reference, FRST again) rather than amending the old one.
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum

from app.core.errors import Unprocessable

MANDATE_LAPSE_MONTHS = 36


class SequenceType(StrEnum):
    FIRST = "FRST"
    RECURRING = "RCUR"


def sequence_type(*, mandate_used: bool, first_as_recurring: bool = False) -> SequenceType:
    """The sequence type of the next collection under a mandate.

    `mandate_used`: a collection under this mandate was settled (whatever happened to it
    afterwards). A collection rejected before settlement does not count.
    """
    if mandate_used or first_as_recurring:
        return SequenceType.RECURRING
    return SequenceType.FIRST


def add_months(day: date, months: int) -> date:
    """`day` moved by whole months, clamped to the month's last day (29 Feb → 28 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    following = date(year + month // 12, month % 12 + 1, 1)
    return date(year, month, min(day.day, (following - timedelta(days=1)).day))


def mandate_lapses_on(signed_on: date, last_presented_on: date | None) -> date:
    """The first day on which the mandate may no longer be used."""
    anchor = max(signed_on, last_presented_on) if last_presented_on else signed_on
    return add_months(anchor, MANDATE_LAPSE_MONTHS)


def is_mandate_lapsed(signed_on: date, last_presented_on: date | None, on: date) -> bool:
    """Whether a collection requested for `on` would come after the mandate lapsed."""
    return on >= mandate_lapses_on(signed_on, last_presented_on)


def ensure_mandate_usable(
    signed_on: date, last_presented_on: date | None, collection_date: date
) -> None:
    """Refuse a collection under a lapsed mandate (code `mandate_lapsed`)."""
    if collection_date < signed_on:
        raise Unprocessable(
            "The collection date comes before the mandate was signed.",
            code="mandate_not_yet_signed",
        )
    if is_mandate_lapsed(signed_on, last_presented_on, collection_date):
        raise Unprocessable(
            f"The mandate lapsed on {mandate_lapses_on(signed_on, last_presented_on)}: "
            f"no collection for {MANDATE_LAPSE_MONTHS} months. The customer must accept "
            "a new mandate.",
            code="mandate_lapsed",
        )


def _compact_iban(iban: str) -> str:
    return "".join(iban.split()).upper()


def requires_new_mandate(mandate_iban: str, current_iban: str) -> bool:
    """Whether collecting from `current_iban` needs a new mandate (it is another account)."""
    return _compact_iban(mandate_iban) != _compact_iban(current_iban)
