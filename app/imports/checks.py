"""The checking pass: each line against the rules, before anything is written.

    parse      JSON, then the record's shape (invalid_json, invalid_record, line_too_long)
    SEPA       the mandate reference as banks key on it; the signature and last collection
               dates; the IBAN and holder name exactly as at registration (the IBAN is
               sealed here and never kept in clear); 36 months unused → lapsed
    card       at the gateway (a read, nothing changes there): it exists, is a card, is
               attached to that gateway customer (only an attached card can be charged
               off-session again), is not expired; brand, last 4, expiry from the gateway
    present    the same mandate reference or gateway payment method is already here

A line that passes becomes a `Checked` record for the importing pass (app/imports/writer.py),
which checks again, inside its transaction, what the database may have changed since.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.crypto import FieldCipher
from app.core.errors import AppError
from app.core.ids import new_id
from app.gateways.port import GatewayError, PaymentGateway, PaymentMethodNotFound
from app.imports import repository
from app.imports.lines import RawLine
from app.imports.schemas import (
    IMPORT_LINE,
    CardLine,
    RefusedLine,
    SepaDebitLine,
    services_of,
    signed_at_utc,
)
from app.payment_methods import sepa
from app.payment_methods.cards import card_expired
from app.sepa.charset import reference_problem
from app.sepa.sequence import MANDATE_LAPSE_MONTHS, is_mandate_lapsed, mandate_lapses_on


class CheckedSepa(BaseModel):
    # The sealed IBAN travels as base64 through the spool's JSON.
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    kind: Literal["sepa_debit"] = "sepa_debit"
    line: int
    customer_id: str
    services: list[str]
    account: sepa.SealedAccount  # checked and sealed exactly as at registration
    reference: str
    signed_at: datetime
    signer_name: str
    last_collected_on: date | None
    lapsed_on: date | None  # set when unused for 36 months as of the import

    @property
    def method_id(self) -> str:
        return self.account.method_id


class CheckedCard(BaseModel):
    kind: Literal["card"] = "card"
    line: int
    customer_id: str
    services: list[str]
    method_id: str
    gateway_customer_id: str
    gateway_payment_method_id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    funding: str | None
    country: str | None
    fingerprint: str | None


class Checked(BaseModel):
    """One spooled record."""

    record: Annotated[CheckedSepa | CheckedCard, Field(discriminator="kind")]


@dataclass(frozen=True)
class Present:
    line: int


Verdict = Checked | RefusedLine | Present


def refused(line: int, error: AppError, customer_id: str | None = None) -> RefusedLine:
    return RefusedLine(line=line, code=error.code, detail=error.detail, customer_id=customer_id)


def _refusal(line: int, code: str, detail: str, customer_id: str | None) -> RefusedLine:
    return RefusedLine(line=line, code=code, detail=detail, customer_id=customer_id)


def parse(raw: RawLine) -> SepaDebitLine | CardLine | RefusedLine:
    if raw.content is None:
        return _refusal(raw.number, "line_too_long", "The line is longer than allowed.", None)
    try:
        document = json.loads(raw.content)
    except (ValueError, UnicodeDecodeError):
        return _refusal(raw.number, "invalid_json", "The line is not a JSON object.", None)
    try:
        return IMPORT_LINE.validate_python(document)
    except ValidationError as exc:
        errors = [
            {
                "loc": [str(part) for part in error["loc"]],
                "message": error["msg"],
                "type": error["type"],
            }
            for error in exc.errors(include_url=False, include_input=False)
        ]
        customer = document.get("customer_id") if isinstance(document, dict) else None
        refusal = _refusal(
            raw.number,
            "invalid_record",
            "The line is not a valid sepa_debit or card record.",
            customer if isinstance(customer, str) else None,
        )
        refusal.errors = errors
        return refusal


def check_sepa(
    number: int, line: SepaDebitLine, cipher: FieldCipher, now: datetime
) -> CheckedSepa | RefusedLine:
    """The rules that need neither the database nor the gateway."""
    mandate = line.mandate
    customer = line.customer_id
    problem = reference_problem(mandate.reference)
    if problem is not None:
        return _refusal(
            number, "invalid_mandate_reference", f"The mandate reference {problem}.", customer
        )
    signed_at = signed_at_utc(mandate.signed_at)
    if signed_at > now:
        return _refusal(
            number, "mandate_signed_in_future", "The signature date is in the future.", customer
        )
    last = mandate.last_collected_at
    if last is not None and not signed_at.date() <= last <= now.date():
        return _refusal(
            number,
            "invalid_last_collection",
            "The last collection must fall between the signature date and today.",
            customer,
        )
    try:
        account = sepa.seal_account(
            line.iban, line.account_holder_name, cipher, method_id=new_id("pm")
        )
    except AppError as error:
        return refused(number, error, customer)
    # The rulebook's mandate is signed by the debtor: the account holder, unless the panel
    # recorded someone else (a company's signatory).
    signer = " ".join((mandate.signer_name or "").split()) or account.holder_name
    lapsed = is_mandate_lapsed(signed_at.date(), last, now.date())
    return CheckedSepa(
        line=number,
        customer_id=customer,
        services=services_of(line),
        account=account,
        reference=mandate.reference,
        signed_at=signed_at,
        signer_name=signer,
        last_collected_on=last,
        lapsed_on=mandate_lapses_on(signed_at.date(), last) if lapsed else None,
    )


def lapse_reason(record: CheckedSepa) -> str:
    assert record.lapsed_on is not None
    since = record.last_collected_on or record.signed_at.date()
    return (
        f"The mandate lapsed on {record.lapsed_on}: no collection for {MANDATE_LAPSE_MONTHS} "
        f"months (since {since}). The customer must accept a new mandate."
    )


async def check_card(
    number: int, line: CardLine, gateway: PaymentGateway, now: datetime
) -> CheckedCard | RefusedLine:
    """The card as the gateway has it; nothing in the file is taken for its details."""
    customer = line.customer_id
    try:
        stored = await gateway.get_payment_method(line.gateway_payment_method_id)
    except PaymentMethodNotFound:
        return _refusal(
            number, "card_not_found", "The gateway has no such payment method.", customer
        )
    except GatewayError as error:
        # Nothing is known about this card: refused now, imported by a later run.
        return _refusal(
            number,
            "gateway_unavailable",
            f"The gateway could not be asked about this card ({error.code}); run the import again.",
            customer,
        )
    card = stored.card
    if stored.type != "card" or card is None:
        return _refusal(
            number, "not_a_card", f"The payment method is a {stored.type}, not a card.", customer
        )
    if stored.gateway_customer_id is None:
        return _refusal(
            number,
            "card_not_attached",
            "The card is attached to no gateway customer, so it cannot be charged off-session.",
            customer,
        )
    if stored.gateway_customer_id != line.gateway_customer_id:
        return _refusal(
            number,
            "card_customer_mismatch",
            "The card belongs to another gateway customer.",
            customer,
        )
    if not card.exp_month or not card.exp_year or card_expired(card.exp_month, card.exp_year, now):
        return _refusal(
            number,
            "card_expired",
            f"The card expired at the end of {card.exp_month:02d}/{card.exp_year}.",
            customer,
        )
    return CheckedCard(
        line=number,
        customer_id=customer,
        services=services_of(line),
        method_id=new_id("pm"),
        gateway_customer_id=stored.gateway_customer_id,
        gateway_payment_method_id=stored.gateway_payment_method_id,
        brand=card.brand,
        last4=card.last4[-4:],
        exp_month=card.exp_month,
        exp_year=card.exp_year,
        funding=card.funding,
        country=card.country,
        fingerprint=card.fingerprint,
    )


def existing_verdict(
    record: CheckedSepa | CheckedCard | SepaDebitLine | CardLine,
    number: int,
    existing: repository.Existing | None,
    fingerprints: Sequence[str] = (),
) -> Present | RefusedLine | None:
    """A line naming a mandate reference or gateway payment method already here: skipped
    when it is the same customer's (and, for a mandate, the same account), else refused."""
    if existing is None:
        return None
    customer = record.customer_id
    if existing.customer_id != customer:
        if record_kind(record) == "sepa_debit":
            code, what = "mandate_reference_in_use", "mandate reference"
        else:
            code, what = "card_in_use", "card"
        return _refusal(
            number, code, f"This {what} is already registered for another customer.", customer
        )
    if fingerprints and existing.iban_fingerprint not in fingerprints:
        return _refusal(
            number,
            "mandate_reference_in_use",
            "This mandate reference is already registered for another account.",
            customer,
        )
    return Present(number)


def record_kind(record: CheckedSepa | CheckedCard | SepaDebitLine | CardLine) -> str:
    return "sepa_debit" if isinstance(record, CheckedSepa | SepaDebitLine) else "card"


@dataclass(frozen=True)
class CheckContext:
    cipher: FieldCipher
    gateway: PaymentGateway
    gateway_concurrency: int
    now: datetime


async def check_chunk(
    session: AsyncSession, lines: Sequence[RawLine], context: CheckContext
) -> list[Verdict]:
    """Every line of a chunk, in order. The session only reads (what is already here);
    the gateway is asked afterwards, with no query in flight."""
    verdicts: dict[int, Verdict] = {}
    sepa_lines: list[CheckedSepa] = []
    card_lines: list[tuple[int, CardLine]] = []
    for raw in lines:
        parsed = parse(raw)
        if isinstance(parsed, RefusedLine):
            verdicts[raw.number] = parsed
        elif isinstance(parsed, SepaDebitLine):
            checked = check_sepa(raw.number, parsed, context.cipher, context.now)
            if isinstance(checked, RefusedLine):
                verdicts[raw.number] = checked
            else:
                sepa_lines.append(checked)
        else:
            card_lines.append((raw.number, parsed))

    mandates = await repository.mandates_by_reference(session, [r.reference for r in sepa_lines])
    cards = await repository.methods_by_gateway_id(
        session, [line.gateway_payment_method_id for _, line in card_lines]
    )
    await session.rollback()  # ends the read: no transaction stays open during gateway calls
    for record in sepa_lines:
        found = mandates.get(record.reference.upper())
        verdict = existing_verdict(record, record.line, found, record.account.fingerprints)
        verdicts[record.line] = verdict or Checked(record=record)
    to_verify = []
    for number, line in card_lines:
        verdict = existing_verdict(line, number, cards.get(line.gateway_payment_method_id))
        if verdict is None:
            to_verify.append((number, line))
        else:
            verdicts[number] = verdict

    limit = asyncio.Semaphore(context.gateway_concurrency)

    async def verify(number: int, line: CardLine) -> None:
        async with limit:
            outcome = await check_card(number, line, context.gateway, context.now)
        verdicts[number] = outcome if isinstance(outcome, RefusedLine) else Checked(record=outcome)

    await asyncio.gather(*(verify(number, line) for number, line in to_verify))
    return [verdicts[raw.number] for raw in lines]
