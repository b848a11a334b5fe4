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

The records, and what their reason codes mean, are in `return_records.py`.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date

from app.sepa.return_records import (
    MAX_RETURN_FILE_BYTES,
    REASON_CODE,
    ReturnRecord,
    ReturnReport,
    invalid,
)
from app.sepa.returns_xml import parse_return_xml
from app.sepa.xmlsafe import check_size

_CSV_AMOUNT = re.compile(r"\d{1,9}\.\d{2}")


def parse_return_file(data: bytes, *, max_bytes: int = MAX_RETURN_FILE_BYTES) -> ReturnReport:
    """Read a pain.002, camt.054 or CSV return report, told apart by its content."""
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
