"""pain.002 and camt.054 return reports, read with namespaces and hardened lxml.

The versions tested here are pain.002.001.03 / .10 and camt.054.001.02 / .08; the elements
read have the same names and places in the versions between, which are accepted too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from lxml import etree

from app.core.errors import Unprocessable
from app.sepa.return_records import (
    MAX_RETURN_FILE_BYTES,
    REASON_CODE,
    BatchRejection,
    ReturnRecord,
    ReturnReport,
    invalid,
)
from app.sepa.xmlsafe import element_path, local_name, parse_xml

_ISO = "urn:iso:std:iso:20022:tech:xsd:"
PAIN002_VERSIONS = tuple(f"pain.002.001.{n:02d}" for n in range(3, 11))
CAMT054_VERSIONS = tuple(f"camt.054.001.{n:02d}" for n in range(2, 9))


class _Reader:
    """Finds elements in one message's namespace and names the missing ones by path."""

    def __init__(self, namespace: str) -> None:
        self.ns = {"m": namespace}

    def _path(self, path: str) -> str:
        return "/".join(f"m:{step}" for step in path.split("/"))

    def find(self, parent: etree._Element, path: str) -> etree._Element | None:
        return parent.find(self._path(path), self.ns)

    def all(self, parent: etree._Element, path: str) -> list[etree._Element]:
        return parent.findall(self._path(path), self.ns)

    def text(self, parent: etree._Element, path: str) -> str | None:
        found = self.find(parent, path)
        if found is None or found.text is None or not found.text.strip():
            return None
        return found.text.strip()

    def required(self, parent: etree._Element, path: str) -> str:
        value = self.text(parent, path)
        if value is None:
            raise invalid(
                f"{element_path(parent)}/{path} is missing or empty (line {parent.sourceline})."
            )
        return value


def parse_return_xml(data: bytes, *, max_bytes: int = MAX_RETURN_FILE_BYTES) -> ReturnReport:
    root = parse_xml(data, code="invalid_return_file", max_bytes=max_bytes)
    namespace = etree.QName(root).namespace or ""
    version = namespace.removeprefix(_ISO) if namespace.startswith(_ISO) else ""
    if local_name(root) != "Document" or not version:
        raise invalid("Not an ISO 20022 message: the root must be an ISO 20022 <Document>.")
    reader = _Reader(namespace)
    if version in PAIN002_VERSIONS:
        return _pain002(root, reader, version)
    if version in CAMT054_VERSIONS:
        return _camt054(root, reader, version)
    raise invalid(
        f"{version} is not a return report this service reads; send a pain.002 status "
        f"report ({PAIN002_VERSIONS[0]} to {PAIN002_VERSIONS[-1]}), a camt.054 notification "
        f"({CAMT054_VERSIONS[0]} to {CAMT054_VERSIONS[-1]}) or a CSV file."
    )


def _date(reader: _Reader, parent: etree._Element, path: str) -> date:
    text = reader.required(parent, path)
    try:
        if "T" in text:  # an ISODateTime: the day as the bank wrote it
            return datetime.fromisoformat(text).date()
        return date.fromisoformat(text)
    except ValueError:
        raise invalid(f"{element_path(parent)}/{path}: {text!r} is not an ISO date.") from None


def _amount(element: etree._Element) -> tuple[int, str]:
    """An ISO amount element (`<InstdAmt Ccy="EUR">12.99</InstdAmt>`) in cents."""

    def refuse(problem: str) -> Unprocessable:
        return invalid(f"{element_path(element)} (line {element.sourceline}): {problem}")

    currency = element.get("Ccy")
    try:
        value = Decimal((element.text or "").strip())
    except InvalidOperation:
        raise refuse(f"{element.text!r} is not an amount.") from None
    cents = value * 100
    if not value.is_finite() or value <= 0 or cents != cents.to_integral_value():
        raise refuse(f"{element.text!r} is not a positive amount in cents.")
    if not currency or len(currency) != 3:
        raise refuse("the Ccy attribute must name a currency.")
    return int(cents), currency


def _reason(reader: _Reader, parent: etree._Element, path: str) -> str | None:
    """The ISO code (`Rsn/Cd`), or the bank's own (`Rsn/Prtry`) when it sends no ISO code."""
    code = reader.text(parent, f"{path}/Rsn/Cd")
    if code is not None:
        if not REASON_CODE.fullmatch(code):
            raise invalid(f"{element_path(parent)}/{path}/Rsn/Cd: {code!r} is not an ISO code.")
        return code
    return reader.text(parent, f"{path}/Rsn/Prtry")


def _unique(records: list[ReturnRecord], where: Callable[[int], str]) -> None:
    seen: set[str] = set()
    for index, record in enumerate(records):
        if record.end_to_end_id in seen:
            raise invalid(f"{where(index)}: end-to-end id {record.end_to_end_id!r} appears twice.")
        seen.add(record.end_to_end_id)


def _pain002(root: etree._Element, reader: _Reader, version: str) -> ReturnReport:
    report = reader.find(root, "CstmrPmtStsRpt")
    if report is None:
        raise invalid(f"/Document/CstmrPmtStsRpt is missing from this {version} message.")
    day = _date(reader, report, "GrpHdr/CreDtTm")
    group = reader.find(report, "OrgnlGrpInfAndSts")
    if group is None:
        raise invalid(f"{element_path(report)}/OrgnlGrpInfAndSts is missing.")
    message_id = reader.required(group, "OrgnlMsgId")
    message_type = reader.required(group, "OrgnlMsgNmId")
    if not message_type.lower().startswith("pain.008"):
        raise invalid(
            f"{element_path(group)}/OrgnlMsgNmId: the report is about {message_type}, "
            "not about a direct-debit (pain.008) file."
        )
    group_status = reader.text(group, "GrpSts")
    group_reason = _reason(reader, group, "StsRsnInf")
    blocks = reader.all(report, "OrgnlPmtInfAndSts")
    records: list[ReturnRecord] = []
    elements: list[etree._Element] = []
    rejections: list[BatchRejection] = []
    if group_status == "RJCT" and not blocks:
        rejections.append(BatchRejection(message_id, None, group_reason, day))
    for block in blocks:
        block_status = reader.text(block, "PmtInfSts") or group_status
        block_reason = _reason(reader, block, "StsRsnInf") or group_reason
        transactions = reader.all(block, "TxInfAndSts")
        if block_status == "RJCT" and not transactions:
            block_id = reader.required(block, "OrgnlPmtInfId")
            rejections.append(BatchRejection(message_id, block_id, block_reason, day))
        for transaction in transactions:
            if (reader.text(transaction, "TxSts") or block_status) != "RJCT":
                continue  # accepted or pending: not a return
            reason = _reason(reader, transaction, "StsRsnInf") or block_reason
            if reason is None:
                raise invalid(
                    f"{element_path(transaction)}/StsRsnInf/Rsn/Cd is missing: a reject "
                    f"needs a reason (line {transaction.sourceline})."
                )
            amount = reader.find(transaction, "OrgnlTxRef/Amt/InstdAmt")
            cents, currency = _amount(amount) if amount is not None else (None, None)
            records.append(
                ReturnRecord(
                    end_to_end_id=reader.required(transaction, "OrgnlEndToEndId"),
                    reason_code=reason,
                    amount_cents=cents,
                    currency=currency,
                    date=day,
                    source="pain.002",
                    original_message_id=message_id,
                )
            )
            elements.append(transaction)
    _unique(records, lambda index: element_path(elements[index]))
    return ReturnReport(format=version, records=tuple(records), rejections=tuple(rejections))


def _camt054(root: etree._Element, reader: _Reader, version: str) -> ReturnReport:
    message = reader.find(root, "BkToCstmrDbtCdtNtfctn")
    if message is None:
        raise invalid(f"/Document/BkToCstmrDbtCdtNtfctn is missing from this {version} message.")
    notifications = reader.all(message, "Ntfctn")
    if not notifications:
        raise invalid(f"{element_path(message)}/Ntfctn is missing.")
    records: list[ReturnRecord] = []
    elements: list[etree._Element] = []
    for notification in notifications:
        for entry in reader.all(notification, "Ntry"):
            details = reader.all(entry, "NtryDtls/TxDtls")
            for transaction in details:
                record = _camt_record(reader, entry, transaction, len(details))
                if record is not None:
                    records.append(record)
                    elements.append(transaction)
    _unique(records, lambda index: element_path(elements[index]))
    return ReturnReport(format=version, records=tuple(records))


def _camt_record(
    reader: _Reader, entry: etree._Element, transaction: etree._Element, siblings: int
) -> ReturnRecord | None:
    if reader.find(transaction, "RtrInf") is None:
        return None  # an ordinary booking, e.g. the collection's own credit
    # Only booked entries: a pending one may still be cancelled. In .02 `Sts` holds the
    # code itself, from .04 on it is `Sts/Cd`.
    if (reader.text(entry, "Sts/Cd") or reader.text(entry, "Sts")) != "BOOK":
        return None
    # A returned or refunded collection is taken back from the creditor's account: a
    # debit (or the reversal of a credit). A credit with return details is something
    # else, such as one of our own transfers coming back.
    indicator = reader.text(transaction, "CdtDbtInd") or reader.required(entry, "CdtDbtInd")
    reversal = reader.text(entry, "RvslInd") == "true"
    if (indicator == "DBIT") == reversal:
        return None
    reason = _reason(reader, transaction, "RtrInf")
    if reason is None:
        raise invalid(
            f"{element_path(transaction)}/RtrInf/Rsn/Cd is missing: a return needs a reason "
            f"(line {transaction.sourceline})."
        )
    cents, currency = _amount(_camt_amount(reader, entry, transaction, siblings))
    booked = reader.find(entry, "BookgDt")
    if booked is None:
        booked = reader.find(entry, "ValDt")
    if booked is None:
        raise invalid(f"{element_path(entry)}/BookgDt is missing (line {entry.sourceline}).")
    day = _date(reader, booked, "Dt" if reader.find(booked, "Dt") is not None else "DtTm")
    return ReturnRecord(
        end_to_end_id=reader.required(transaction, "Refs/EndToEndId"),
        reason_code=reason,
        amount_cents=cents,
        currency=currency,
        date=day,
        source="camt.054",
    )


def _camt_amount(
    reader: _Reader, entry: etree._Element, transaction: etree._Element, siblings: int
) -> etree._Element:
    # The original instructed amount matches our collection best; the transaction's own
    # amount (from .04 on) and the entry's amount (when it books this one transaction)
    # come next.
    for path in ("AmtDtls/InstdAmt/Amt", "Amt", "AmtDtls/TxAmt/Amt"):
        found = reader.find(transaction, path)
        if found is not None:
            return found
    if siblings == 1:
        found = reader.find(entry, "Amt")
        if found is not None:
            return found
    raise invalid(
        f"{element_path(transaction)}: no amount for this return "
        f"(AmtDtls/InstdAmt/Amt or Amt; line {transaction.sourceline})."
    )
