"""The bank's reports of collections that did not stay collected (R-transactions).

`parse_return_file` reads what the creditor's bank sends back and turns it into
`ReturnRecord`s, one per collection, keyed by its end-to-end id (the renewal's
reference):

- pain.002 customer payment status reports (pain.002.001.03 and .10): rejects before
  settlement, `TxInfAndSts` with `TxSts` RJCT and `StsRsnInf/Rsn/Cd`;
- camt.054 debit/credit notifications (camt.054.001.02 and .08): booked returns, refunds
  and reversals on the creditor's account, `TxDtls` with `RtrInf/Rsn/Cd`;
- CSV with a header `end_to_end_id,reason_code,amount,date` (amount in euros with two
  decimals, date as YYYY-MM-DD; optional `currency` and `original_message_id` columns).

A file is read whole or not at all: any problem raises `Unprocessable(code=
"invalid_return_file")` naming the CSV line or the XML element, and nothing is returned.
A file over `max_bytes` raises `PayloadTooLarge(code="file_too_large")`.

`classify` says what a reason code means for the renewal (see `ReturnAction`).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Literal

from app.core.errors import Unprocessable
from app.sepa.xmlsafe import check_size

INVALID = "invalid_return_file"
MAX_RETURN_FILE_BYTES = 10 * 1024 * 1024

Source = Literal["pain.002", "camt.054", "csv"]


class ReturnAction(StrEnum):
    RETRY = "retry"  # a soft failure: present again per dunning
    METHOD_UNUSABLE = "method_unusable"  # the account or mandate cannot be used: customer acts
    REFUND = "refund"  # the debtor took the money back (SDD Core 8-week refund right)
    OTHER = "other"  # our side or the banks' to look at; no automatic retry


# Meanings from the EPC's "Guidance on reason codes for SDD R-transactions" (EPC173-14)
# and the ISO 20022 external status reason code list.
_ACTIONS: dict[str, ReturnAction] = {
    # AM04 InsufficientFunds: the debtor's account cannot cover the amount now; it may later.
    "AM04": ReturnAction.RETRY,
    # MS03 NotSpecifiedReasonAgentGenerated: the debtor's bank gives no reason. The EPC
    # guidance lets banks use it where national data-protection law forbids naming the
    # real one (often AM04), so it is treated as soft; dunning bounds the retries.
    "MS03": ReturnAction.RETRY,
    # TM01 InvalidCutOffTime / ED05 SettlementFailed: the collection never got through
    # clearing for a timing or settlement reason; nothing is wrong with the account.
    "TM01": ReturnAction.RETRY,
    "ED05": ReturnAction.RETRY,
    # AC01 IncorrectAccountNumber: the IBAN is wrong or does not exist.
    "AC01": ReturnAction.METHOD_UNUSABLE,
    # AC04 ClosedAccountNumber: the account is closed.
    "AC04": ReturnAction.METHOD_UNUSABLE,
    # AC06 BlockedAccount: the account is blocked, or blocked for direct debits.
    "AC06": ReturnAction.METHOD_UNUSABLE,
    # AC13 InvalidDebtorAccountType: the account type does not allow this scheme.
    "AC13": ReturnAction.METHOD_UNUSABLE,
    # AG01 TransactionForbidden: direct debits are not allowed on this account (savings).
    "AG01": ReturnAction.METHOD_UNUSABLE,
    # MD01 NoMandate: no valid mandate at the debtor's bank, or an unauthorised
    # transaction claimed within 13 months.
    "MD01": ReturnAction.METHOD_UNUSABLE,
    # MD07 EndCustomerDeceased.
    "MD07": ReturnAction.METHOD_UNUSABLE,
    # MS02 NotSpecifiedReasonCustomerGenerated: the debtor refused the collection.
    "MS02": ReturnAction.METHOD_UNUSABLE,
    # SL01 SpecificServiceOfferedByDebtorAgent: the debtor told the bank to block this
    # creditor or cap its amounts.
    "SL01": ReturnAction.METHOD_UNUSABLE,
    # RC01 BankIdentifierIncorrect: the debtor's BIC is wrong.
    "RC01": ReturnAction.METHOD_UNUSABLE,
    # DNOR DebtorBankIsNotRegistered: the debtor's bank does not take part in SDD.
    "DNOR": ReturnAction.METHOD_UNUSABLE,
    # MD06 RefundRequestByEndCustomer: a refund within 8 weeks of the debit, no reason needed.
    "MD06": ReturnAction.REFUND,
    # Everything else (AM05 Duplication, MD02 mandate data missing, FF01 file format, BE05
    # unknown initiating party, RR01-RR04 regulatory, CNOR creditor bank not registered,
    # proprietary codes, …) is a problem on the creditor's or the banks' side: retrying
    # or blaming the customer would both be wrong.
}


def classify(reason_code: str) -> ReturnAction:
    """What a return with `reason_code` means for the renewal and its payment method."""
    return _ACTIONS.get(reason_code.strip().upper(), ReturnAction.OTHER)


@dataclass(frozen=True)
class ReturnRecord:
    """One collection that was rejected, returned, refunded or reversed.

    `amount_cents`/`currency` are None only for a pain.002 reject that leaves out the
    optional original amount (`OrgnlTxRef/Amt`). `original_message_id` is the MsgId of our
    pain.008 when the report names it (pain.002 and CSV; camt.054 does not).
    """

    end_to_end_id: str
    reason_code: str
    amount_cents: int | None
    currency: str | None
    date: date
    source: Source
    original_message_id: str | None = None

    @property
    def action(self) -> ReturnAction:
        return classify(self.reason_code)


@dataclass(frozen=True)
class BatchRejection:
    """A pain.002 rejection of a whole file or payment-information block, without
    transaction detail: every collection in it was rejected."""

    original_message_id: str
    original_payment_info_id: str | None
    reason_code: str | None
    date: date


@dataclass(frozen=True)
class ReturnReport:
    format: str  # the message version (e.g. "camt.054.001.08") or "csv"
    records: tuple[ReturnRecord, ...]
    rejections: tuple[BatchRejection, ...] = field(default=())


def invalid(detail: str) -> Unprocessable:
    return Unprocessable(detail, code=INVALID)


REASON_CODE = re.compile(r"[A-Z0-9]{4}")
_CSV_AMOUNT = re.compile(r"\d{1,9}\.\d{2}")


def parse_return_file(data: bytes, *, max_bytes: int = MAX_RETURN_FILE_BYTES) -> ReturnReport:
    """Read a pain.002, camt.054 or CSV return report, told apart by its content."""
    from app.sepa.returns_xml import parse_return_xml

    # CSV must be UTF-8; a UTF-16 or UTF-32 byte-order mark can only start XML.
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or data.lstrip(
        b"\xef\xbb\xbf \t\r\n"
    ).startswith(b"<"):
        return parse_return_xml(data, max_bytes=max_bytes)
    return parse_return_csv(data, max_bytes=max_bytes)


_CSV_REQUIRED = ("end_to_end_id", "reason_code", "amount", "date")
_CSV_OPTIONAL = ("currency", "original_message_id")


def parse_return_csv(data: bytes, *, max_bytes: int = MAX_RETURN_FILE_BYTES) -> ReturnReport:
    check_size(data, max_bytes)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise invalid(f"Line {line}: the file is not UTF-8 text.") from None
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise invalid("The file is empty; expected a header line.") from None
    except csv.Error as error:
        raise invalid(f"Line 1: {error}.") from None
    missing = [name for name in _CSV_REQUIRED if name not in header]
    unknown = [name for name in header if name not in _CSV_REQUIRED + _CSV_OPTIONAL]
    if missing or unknown or len(set(header)) != len(header):
        raise invalid(
            "Line 1: the header must name the columns "
            f"{', '.join(_CSV_REQUIRED)} (optionally {', '.join(_CSV_OPTIONAL)}), each once"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(unknown)}" if unknown else "")
            + "."
        )
    records: list[ReturnRecord] = []
    seen: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise invalid(f"Line {line}: expected {len(header)} fields, found {len(row)}.")
            cells = (cell.strip() for cell in row)
            record = _csv_record(dict(zip(header, cells, strict=True)), line)
            if record.end_to_end_id in seen:
                raise invalid(
                    f"Line {line}: end-to-end id {record.end_to_end_id!r} already appeared "
                    f"on line {seen[record.end_to_end_id]}."
                )
            seen[record.end_to_end_id] = line
            records.append(record)
    except csv.Error as error:
        raise invalid(f"Line {reader.line_num}: {error}.") from None
    return ReturnReport(format="csv", records=tuple(records))


def _csv_record(row: dict[str, str], line: int) -> ReturnRecord:
    end_to_end_id = row["end_to_end_id"]
    if not 1 <= len(end_to_end_id) <= 35:
        raise invalid(f"Line {line}: end_to_end_id must be 1 to 35 characters.")
    reason_code = row["reason_code"].upper()
    if not REASON_CODE.fullmatch(reason_code):
        raise invalid(f"Line {line}: reason_code must be a 4-character ISO code, e.g. AM04.")
    if not _CSV_AMOUNT.fullmatch(row["amount"]) or row["amount"] == "0.00":
        raise invalid(f"Line {line}: amount must be in euros with two decimals, e.g. 12.99.")
    currency = row.get("currency") or "EUR"
    if currency != "EUR":
        raise invalid(f"Line {line}: SEPA direct debits are in EUR, not {currency!r}.")
    try:
        day = date.fromisoformat(row["date"]) if len(row["date"]) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise invalid(f"Line {line}: date must be a calendar date as YYYY-MM-DD.")
    euros, cents = row["amount"].split(".")
    return ReturnRecord(
        end_to_end_id=end_to_end_id,
        reason_code=reason_code,
        amount_cents=int(euros) * 100 + int(cents),
        currency=currency,
        date=day,
        source="csv",
        original_message_id=row.get("original_message_id") or None,
    )
