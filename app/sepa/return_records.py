"""What a bank's return report says, whatever its format: the records, and what each reason
code means for the renewal (`classify`, see `ReturnAction`).

Below both parsers: `returns.py` (which tells the formats apart and reads CSV) calls
`returns_xml.py` (pain.002, camt.054), and both build their records and refusals from here,
so the imports go one way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Literal

from app.core.clock import FIRST_DAY, LAST_DAY, RANGE
from app.core.errors import Unprocessable

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

    def __post_init__(self) -> None:
        # The one gate every parser's records pass: what the database columns and the
        # calendar can hold, so a hostile or broken file is a 422, never a 500.
        if problem := _record_problem(self):
            shown = self.end_to_end_id[:MAX_TEXT].encode("unicode_escape").decode()
            raise invalid(f"The return of end-to-end id {shown!r}: {problem}.")

    @property
    def action(self) -> ReturnAction:
        return classify(self.reason_code)


# SEPA's Max35Text, the length of every identifier in the scheme's messages.
MAX_TEXT = 35
# 999,999,999.99: the largest amount the SEPA Direct Debit schemes carry.
MAX_AMOUNT_CENTS = 99_999_999_999
_CURRENCY = re.compile(r"[A-Z]{3}")


def _text_problem(value: str, name: str, longest: int) -> str | None:
    if not 1 <= len(value) <= longest or not value.isprintable():
        return f"the {name} must be 1 to {longest} printable characters"
    return None


def _record_problem(record: ReturnRecord) -> str | None:
    if problem := _text_problem(record.end_to_end_id, "end-to-end id", MAX_TEXT):
        return problem
    if problem := _text_problem(record.reason_code, "reason code", MAX_TEXT):
        return problem
    if record.original_message_id is not None and (
        problem := _text_problem(record.original_message_id, "original message id", MAX_TEXT)
    ):
        return problem
    if record.amount_cents is not None and not 0 < record.amount_cents <= MAX_AMOUNT_CENTS:
        return "the amount must be positive and at most 999999999.99"
    if record.currency is not None and not _CURRENCY.fullmatch(record.currency):
        return "the currency must be three capital letters"
    if not FIRST_DAY <= record.date <= LAST_DAY:
        return f"the date must be {RANGE}"
    return None


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


# What both parsers refuse a file with, and how both check a reason code.
def invalid(detail: str) -> Unprocessable:
    return Unprocessable(detail, code=INVALID)


REASON_CODE = re.compile(r"[A-Z0-9]{4}")
