"""pain.008 direct-debit initiation files, built with sepaxml and checked before use.

sepaxml writes the XML and groups the transactions into one payment-information block
(`PmtInf`) per sequence type and requested collection date, as the scheme requires. Around
it this module:

- checks every input first and names the collection at fault (by end-to-end id, never by
  IBAN): references in the SEPA character set, IBAN/BIC valid, euros only, amounts within
  the scheme's limits, the date a TARGET2 business day on or after the mandate signature;
- transliterates names and remittance text to the SEPA character set;
- sets the message id, creation time (from the caller's clock) and payment-information ids
  itself, so that a file is reproducible and every id is one the bank can report back;
- counts and sums from the integer cents it was given, and refuses a file whose header or
  block totals disagree with them;
- validates the bytes against the official ISO 20022 XSD (shipped in the sepaxml wheel)
  with lxml, independently of sepaxml, before returning them.

`pain.008.001.08` is the default (the EPC's SDD Core implementation guidelines use it since
November 2023); `pain.008.001.02` is for banks that still want the 2009 version.
"""

from __future__ import annotations

import importlib.resources
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from itertools import groupby
from secrets import token_hex
from typing import Any

from lxml import etree
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException
from sepaxml import SepaDD

from app.core.errors import Unprocessable
from app.core.target2 import is_business_day
from app.sepa.charset import creditor_identifier_problem, reference_problem, to_sepa_text
from app.sepa.sequence import SequenceType
from app.sepa.xmlsafe import parse_xml

# SDD amounts run from 0.01 to 999,999,999.99 EUR (EPC implementation guidelines, AT-06).
MAX_AMOUNT_CENTS = 99_999_999_999
NAME_LENGTH = 70
REMITTANCE_LENGTH = 140

# The BIC may be left out only for accounts in the EEA (Regulation (EU) 260/2012, art. 5(7));
# SEPA members outside it (CH, GB, MC, SM, VA, AD, …) still need it.
EEA_COUNTRIES = frozenset(
    {
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
        "IS", "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
    }
)  # fmt: skip


class Pain008Schema(StrEnum):
    V08 = "pain.008.001.08"
    V02 = "pain.008.001.02"


DEFAULT_SCHEMA = Pain008Schema.V08


@dataclass(frozen=True)
class Creditor:
    name: str
    iban: str
    bic: str | None
    creditor_id: str


@dataclass(frozen=True)
class Collection:
    end_to_end_id: str  # the renewal's reference: the bank reports returns by it
    amount_cents: int
    currency: str
    debtor_name: str
    debtor_iban: str
    debtor_bic: str | None
    mandate_reference: str
    mandate_signed_on: date
    sequence_type: SequenceType
    collection_date: date
    remittance_text: str


@dataclass(frozen=True)
class PaymentGroup:
    """One `PmtInf` block: the collections of one date and sequence type."""

    payment_info_id: str
    collection_date: date
    sequence_type: SequenceType
    number_of_transactions: int
    control_sum_cents: int
    end_to_end_ids: tuple[str, ...]


@dataclass(frozen=True)
class Pain008File:
    content: bytes
    schema: Pain008Schema
    message_id: str
    created_at: datetime
    number_of_transactions: int
    control_sum_cents: int
    groups: tuple[PaymentGroup, ...]


def _invalid(detail: str) -> Unprocessable:
    return Unprocessable(detail, code="pain008_invalid")


def _iban(value: str, what: str) -> IBAN:
    try:
        return IBAN(value)
    except SchwiftyException:
        raise _invalid(f"{what}: the IBAN is not valid.") from None


def _bic(value: str, what: str) -> BIC:
    try:
        return BIC(value)
    except SchwiftyException:
        raise _invalid(f"{what}: the BIC is not valid.") from None


def _reference(value: str, what: str) -> None:
    problem = reference_problem(value)
    if problem:
        raise _invalid(f"{what} {value!r} {problem}.")


def _check_creditor(creditor: Creditor, schema: Pain008Schema) -> dict[str, Any]:
    problem = creditor_identifier_problem(creditor.creditor_id)
    if problem:
        raise _invalid(f"The creditor identifier {problem}.")
    name = to_sepa_text(creditor.name, NAME_LENGTH)
    if not name:
        raise _invalid("The creditor needs a name.")
    config: dict[str, Any] = {
        "name": name,
        "IBAN": _iban(creditor.iban, "The creditor").compact,
        "creditor_id": creditor.creditor_id,
        "currency": "EUR",
        "batch": True,
    }
    if creditor.bic:
        config["BIC"] = _bic(creditor.bic, "The creditor").compact
    elif schema is Pain008Schema.V02:
        raise _invalid("pain.008.001.02 needs the creditor's BIC.")
    return config


def _check_collection(item: Collection) -> dict[str, Any]:
    _reference(item.end_to_end_id, "The end-to-end id")
    what = f"Collection {item.end_to_end_id}"
    _reference(item.mandate_reference, f"{what}: the mandate reference")
    if item.currency != "EUR":
        raise _invalid(f"{what}: SEPA direct debits are in EUR only, not {item.currency}.")
    if not 1 <= item.amount_cents <= MAX_AMOUNT_CENTS:
        raise _invalid(f"{what}: the amount must be 0.01 to 999999999.99 EUR.")
    if not is_business_day(item.collection_date):
        raise _invalid(f"{what}: {item.collection_date} is not a TARGET2 business day.")
    if item.mandate_signed_on > item.collection_date:
        raise _invalid(f"{what}: the mandate is signed after the collection date.")
    iban = _iban(item.debtor_iban, what)
    name = to_sepa_text(item.debtor_name, NAME_LENGTH)
    if not name:
        raise _invalid(f"{what}: the debtor needs a name.")
    payment: dict[str, Any] = {
        "name": name,
        "IBAN": iban.compact,
        "amount": item.amount_cents,
        "currency": "EUR",
        "type": item.sequence_type.value,
        "collection_date": item.collection_date,
        "mandate_id": item.mandate_reference,
        "mandate_date": item.mandate_signed_on,
        "description": to_sepa_text(item.remittance_text, REMITTANCE_LENGTH) or "-",
        "endtoend_id": item.end_to_end_id,
    }
    if item.debtor_bic:
        payment["BIC"] = _bic(item.debtor_bic, what).compact
    elif iban.country_code not in EEA_COUNTRIES:
        raise _invalid(f"{what}: a debtor account outside the EEA needs its BIC.")
    return payment


def _group_key(item: Collection) -> tuple[date, str]:
    # FRST sorts before RCUR: the same order whichever order the caller passed.
    return item.collection_date, item.sequence_type.value


def new_message_id(created_at: datetime) -> str:
    """A message id unique per creditor (the EPC asks for uniqueness for 15 days at least)."""
    return f"AR{created_at.astimezone(UTC):%Y%m%d%H%M%S}{token_hex(6).upper()}"


def build_pain008(
    creditor: Creditor,
    collections: Sequence[Collection],
    *,
    created_at: datetime,
    message_id: str | None = None,
    schema: Pain008Schema = DEFAULT_SCHEMA,
) -> Pain008File:
    """One pain.008 file for `collections` from `creditor`'s account, validated.

    Raises `Unprocessable(code="pain008_invalid")` naming the first problem found.
    """
    if created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    if not collections:
        raise _invalid("A pain.008 file needs at least one collection.")
    message_id = message_id or new_message_id(created_at)
    # 30 characters leave room for the "-NNNN" of the payment-information ids.
    if len(message_id) > 30:
        raise _invalid("The message id must be at most 30 characters.")
    _reference(message_id, "The message id")
    repeated = [e2e for e2e, n in Counter(c.end_to_end_id for c in collections).items() if n > 1]
    if repeated:
        raise _invalid(f"The end-to-end id {repeated[0]!r} appears more than once.")

    ordered = sorted(collections, key=lambda c: (*_group_key(c), c.end_to_end_id))
    document = SepaDD(_check_creditor(creditor, schema), schema=schema.value, clean=False)
    for item in ordered:
        document.add_payment(_check_collection(item))

    groups = tuple(
        _group(f"{message_id}-{index}", key, list(members))
        for index, (key, members) in enumerate(groupby(ordered, key=_group_key), start=1)
    )
    content = _finish(document.export(validate=False), message_id, created_at, groups, schema)
    return Pain008File(
        content=content,
        schema=schema,
        message_id=message_id,
        created_at=created_at,
        number_of_transactions=len(ordered),
        control_sum_cents=sum(c.amount_cents for c in ordered),
        groups=groups,
    )


def _group(payment_info_id: str, key: tuple[date, str], members: list[Collection]) -> PaymentGroup:
    return PaymentGroup(
        payment_info_id=payment_info_id,
        collection_date=key[0],
        sequence_type=SequenceType(key[1]),
        number_of_transactions=len(members),
        control_sum_cents=sum(c.amount_cents for c in members),
        end_to_end_ids=tuple(c.end_to_end_id for c in members),
    )


def _cents(text: str | None) -> int:
    # Exactly two decimals, as the EPC guidelines ask; anything else is a wrong file.
    if text is None or "." not in text or len(text.rsplit(".", 1)[1]) != 2:
        raise _invalid(f"An amount is not written with two decimals: {text!r}.")
    return int(Decimal(text) * 100)


def _finish(
    raw: bytes,
    message_id: str,
    created_at: datetime,
    groups: tuple[PaymentGroup, ...],
    schema: Pain008Schema,
) -> bytes:
    """Put our ids and time into sepaxml's output, check its totals, validate it."""
    root = parse_xml(raw, code="pain008_invalid", max_bytes=len(raw))
    ns = {"p": f"urn:iso:std:iso:20022:tech:xsd:{schema.value}"}

    def one(parent: etree._Element, path: str) -> etree._Element:
        found = parent.find(path, ns)
        if found is None:
            raise _invalid(f"The generated file lacks {path}.")
        return found

    header = one(root, "p:CstmrDrctDbtInitn/p:GrpHdr")
    one(header, "p:MsgId").text = message_id
    # UTC without a zone suffix: the form sepaxml and most bank examples use.
    one(header, "p:CreDtTm").text = created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    blocks = root.findall("p:CstmrDrctDbtInitn/p:PmtInf", ns)
    if len(blocks) != len(groups):
        raise _invalid("The generated file does not group the collections as expected.")
    for block, group in zip(blocks, groups, strict=True):
        one(block, "p:PmtInfId").text = group.payment_info_id
        amounts = [_cents(a.text) for a in block.findall("p:DrctDbtTxInf/p:InstdAmt", ns)]
        ids = tuple(e.text for e in block.findall("p:DrctDbtTxInf/p:PmtId/p:EndToEndId", ns))
        if (
            ids != group.end_to_end_ids
            or one(block, "p:PmtTpInf/p:SeqTp").text != group.sequence_type.value
            or one(block, "p:ReqdColltnDt").text != group.collection_date.isoformat()
            or sum(amounts) != group.control_sum_cents
            or _cents(one(block, "p:CtrlSum").text) != group.control_sum_cents
            or one(block, "p:NbOfTxs").text != str(group.number_of_transactions)
        ):
            raise _invalid(f"The totals of block {group.payment_info_id} do not add up.")
    if _cents(one(header, "p:CtrlSum").text) != sum(g.control_sum_cents for g in groups) or one(
        header, "p:NbOfTxs"
    ).text != str(sum(g.number_of_transactions for g in groups)):
        raise _invalid("The totals of the file do not add up.")

    # The declaration written the way bank examples write it (lxml would use single quotes).
    content = b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(root, encoding="UTF-8")
    errors = validate_pain008(content, schema)
    if errors:
        raise _invalid(f"The file does not validate against {schema.value}.xsd: {errors[0]}")
    return content


@lru_cache(maxsize=4)
def _xsd_source(schema: Pain008Schema) -> bytes:
    return (importlib.resources.files("sepaxml") / "schemas" / f"{schema.value}.xsd").read_bytes()


def validate_pain008(content: bytes, schema: Pain008Schema = DEFAULT_SCHEMA) -> list[str]:
    """The XSD errors of a pain.008 document (empty when it is valid)."""
    # A validator per call (about 2 ms): lxml keeps each validation's errors on the
    # validator object, so a shared one would mix up concurrent calls.
    validator = etree.XMLSchema(etree.XML(_xsd_source(schema)))
    document = parse_xml(content, code="pain008_invalid", max_bytes=len(content))
    if validator.validate(document.getroottree()):
        return []
    return [f"line {e.line}: {e.message}" for e in validator.error_log]
