"""The importing pass: checked records become payment methods, a chunk at a time.

Runs inside the caller's transaction and never calls the gateway (the checking pass did),
so whatever locks it takes are held only for database work. For each chunk:

    again      what the checking pass looked up may have changed (an earlier line of the same
               file, another import, a customer registering the same account): looked up
               again here, with this transaction's own writes visible
    services   the services the chunk's lines name, locked in one query, and each line's
               method checked against its services with the API's own rules
               (`check_many_can_pay`): a line that fails is refused before anything is
               written for it
    write      the chunk's methods in one flush (in a savepoint: if someone else wrote the
               same account meanwhile, each line again in a savepoint of its own, through
               `assign_payment_method_to_many` and `set_auto_renew`), then assigned and set
               to renew (`renew_with`: the audit rows and events of the customer's choice)
    events     as for methods registered here, marked `imported`

The session's identity map is emptied after every chunk: one transaction may write a
hundred thousand rows without holding them in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import AppError
from app.core.settings import Settings
from app.events.service import NewEvent, emit_all
from app.gateways.port import CardDetails
from app.imports import repository
from app.imports.checks import CheckedCard, CheckedSepa, Present, existing_verdict, lapse_reason
from app.imports.schemas import LapsedMandate, RefusedLine
from app.payment_methods import cards, events, sepa
from app.payment_methods.mandate_texts import IMPORTED_VERSION
from app.payment_methods.models import PaymentMethod, PaymentMethodStatus, PaymentMethodType
from app.sepa.sequence import sequence_type
from app.services import repository as services_repository
from app.services import service as services
from app.services.audit import Actor
from app.services.methods import facts
from app.services.models import Service

Record = CheckedSepa | CheckedCard


@dataclass(frozen=True)
class WriteContext:
    creditor: sepa.Creditor
    settings: Settings
    actor: Actor
    # Written to each audit row: who ran which import, and the line.
    reason: str
    now: datetime


@dataclass
class ChunkOutcome:
    imported: dict[str, int] = field(default_factory=lambda: {"sepa_debit": 0, "card": 0})
    present: int = 0
    refused: list[RefusedLine] = field(default_factory=list)
    lapsed: list[LapsedMandate] = field(default_factory=list)
    services_assigned: int = 0


def _duplicate(record: Record, existing_id: str) -> RefusedLine:
    what = "bank account" if isinstance(record, CheckedSepa) else "card"
    return RefusedLine(
        line=record.line,
        code="duplicate_payment_method",
        detail=f"This {what} is already registered for the customer ({existing_id}).",
        customer_id=record.customer_id,
    )


def build_sepa(record: CheckedSepa, context: WriteContext) -> PaymentMethod:
    """The method and its mandate as registration would make them, then accepted on the
    original date; the mandate keeps its reference and its place in the FRST/RCUR cycle."""
    now = context.now
    account = record.account
    method = sepa.new_method(record.customer_id, account, now)
    method.imported_at = now
    method.mandate = sepa.new_mandate(
        record.customer_id,
        account,
        reference=record.reference,
        creditor=context.creditor,
        now=now,
        text_version=IMPORTED_VERSION,
    )
    acceptance = sepa.Acceptance(True, record.signer_name, None, None, None)
    sepa.accept_mandate(method, acceptance, now, signed_at=record.signed_at)
    # Collected from before → the next collection is RCUR; never used → FRST.
    used = record.last_collected_on is not None
    method.mandate.sequence_type = sequence_type(mandate_used=used).value
    method.mandate.last_collected_before_import_on = record.last_collected_on
    if record.lapsed_on is not None:
        # As a lapse found at collection time leaves it (app/sepa/collections.py).
        method.status = PaymentMethodStatus.FAILED
        method.failure_code = "mandate_lapsed"
        method.validated_at = None
    return method


def build_card(record: CheckedCard, context: WriteContext) -> PaymentMethod:
    now = context.now
    method = PaymentMethod(
        id=record.method_id,
        customer_id=record.customer_id,
        type=PaymentMethodType.CARD,
        status=PaymentMethodStatus.VALIDATED,
        is_default=False,
        created_at=now,
        updated_at=now,
        validated_at=now,
        imported_at=now,
        gateway_customer_id=record.gateway_customer_id,
        gateway_payment_method_id=record.gateway_payment_method_id,
    )
    details = CardDetails(
        brand=record.brand,
        last4=record.last4,
        exp_month=record.exp_month,
        exp_year=record.exp_year,
        funding=record.funding,
        country=record.country,
        fingerprint=record.fingerprint,
    )
    cards.keep_card_details(method, details)
    return method


def method_events(method: PaymentMethod) -> list[NewEvent]:
    """What registering and validating it here would have announced."""
    if method.status == PaymentMethodStatus.FAILED:
        return [events.method_event("created", method), events.method_event("failed", method)]
    announced = [events.method_event("created", method)]
    if method.type == PaymentMethodType.SEPA_DEBIT:
        announced.append(events.mandate_accepted_event(method))
    return [*announced, events.method_event("validated", method)]


class _Seen:
    """What this chunk's earlier lines claim, so two lines of one chunk cannot both insert."""

    def __init__(self) -> None:
        self.names: dict[str, repository.Existing] = {}
        self.accounts: dict[tuple[str, str], str] = {}


def _name(record: Record) -> str:
    if isinstance(record, CheckedSepa):
        return record.reference.upper()
    return record.gateway_payment_method_id


def _fingerprint_pairs(record: Record) -> list[tuple[str, str]]:
    if isinstance(record, CheckedSepa):
        return [(record.customer_id, fp) for fp in record.account.fingerprints]
    return [(record.customer_id, record.fingerprint)] if record.fingerprint else []


async def _sort(
    session: AsyncSession, records: Sequence[Record], outcome: ChunkOutcome
) -> list[Record]:
    """The records still to write; the others counted as present or refused."""
    sepa_records = [r for r in records if isinstance(r, CheckedSepa)]
    card_records = [r for r in records if isinstance(r, CheckedCard)]
    names = await repository.mandates_by_reference(session, [r.reference for r in sepa_records])
    names.update(
        await repository.methods_by_gateway_id(
            session, [r.gateway_payment_method_id for r in card_records]
        )
    )
    accounts = await repository.live_accounts(
        session, [pair for r in sepa_records for pair in _fingerprint_pairs(r)]
    )
    accounts.update(
        await repository.live_cards(
            session, [pair for r in card_records for pair in _fingerprint_pairs(r)]
        )
    )
    seen = _Seen()
    to_write = []
    for record in records:
        fingerprints = record.account.fingerprints if isinstance(record, CheckedSepa) else ()
        found = names.get(_name(record)) or seen.names.get(_name(record))
        verdict = existing_verdict(record, record.line, found, fingerprints)
        if verdict is None:
            pairs = _fingerprint_pairs(record)
            found_ids = (accounts.get(pair) or seen.accounts.get(pair) for pair in pairs)
            taken = next((method_id for method_id in found_ids if method_id), None)
            verdict = _duplicate(record, taken) if taken else None
        if isinstance(verdict, Present):
            outcome.present += 1
        elif isinstance(verdict, RefusedLine):
            outcome.refused.append(verdict)
        else:
            seen.names[_name(record)] = repository.Existing(
                record.method_id,
                record.customer_id,
                record.account.fingerprints[0] if isinstance(record, CheckedSepa) else None,
            )
            for pair in _fingerprint_pairs(record):
                seen.accounts[pair] = record.method_id
            to_write.append(record)
    return to_write


def _build(record: Record, context: WriteContext) -> PaymentMethod:
    if isinstance(record, CheckedSepa):
        return build_sepa(record, context)
    return build_card(record, context)


def _imported(outcome: ChunkOutcome, record: Record, method: PaymentMethod) -> None:
    outcome.imported[record.kind] += 1
    if isinstance(record, CheckedSepa) and record.lapsed_on is not None:
        outcome.lapsed.append(
            LapsedMandate(
                line=record.line,
                payment_method_id=method.id,
                mandate_reference=record.reference,
                lapsed_on=record.lapsed_on,
                reason=lapse_reason(record),
                services_not_assigned=record.services,
            )
        )


async def _write_one_by_one(
    session: AsyncSession, records: Sequence[Record], context: WriteContext, outcome: ChunkOutcome
) -> None:
    """After a chunk's flush failed (someone else wrote the same account or reference
    after our look-up): each line in a savepoint of its own, through the API's functions."""
    for record in records:
        if record.services and not _lapsed(record):
            await _write_with_services(session, record, context, outcome)
            continue
        method = _build(record, context)
        try:
            async with session.begin_nested():
                session.add(method)
                await session.flush()
        except IntegrityError:
            outcome.refused.append(_duplicate(record, "registered meanwhile"))
            continue
        await emit_all(session, method_events(method), now=context.now)
        _imported(outcome, record, method)


async def _services_checked(
    session: AsyncSession,
    pairs: Sequence[tuple[Record, PaymentMethod]],
    context: WriteContext,
    outcome: ChunkOutcome,
) -> dict[str, list[Service]]:
    """The services each line names, locked, once the method is known to be able to renew
    them all (the API's own check); a line that fails is refused and left out."""
    wanted = sorted({service_id for record, _ in pairs for service_id in record.services})
    loaded = await services_repository.get_many(session, wanted, customer_id=None, for_update=True)
    by_id = {service.id: service for service in loaded}
    checked: dict[str, list[Service]] = {}
    for record, method in pairs:
        # Another customer's service is not found, exactly as through the API.
        mine = [
            by_id[service_id]
            for service_id in record.services
            if service_id in by_id and by_id[service_id].customer_id == record.customer_id
        ]
        try:
            services.check_many_can_pay(
                record.services, mine, facts(method), context.settings, to_renew=True
            )
        except AppError as error:
            outcome.refused.append(_assignment_refusal(record, error, None))
            continue
        checked[method.id] = mine
    return checked


def _assignment_refusal(record: Record, error: AppError, service_id: str | None) -> RefusedLine:
    refusals = error.extra.get("refusals")
    if error.code == "bulk_assignment_refused" and isinstance(refusals, list) and refusals:
        first = refusals[0]
        return RefusedLine(
            line=record.line,
            code=str(first["code"]),
            detail=f"Service {first['service_id']}: {first['detail']}",
            customer_id=record.customer_id,
        )
    detail = error.detail
    if error.extra.get("service_ids"):
        detail += f" ({', '.join(map(str, error.extra['service_ids']))})"
    elif service_id is not None:
        detail = f"Service {service_id}: {detail}"
    return RefusedLine(
        line=record.line, code=error.code, detail=detail, customer_id=record.customer_id
    )


async def _write_with_services(
    session: AsyncSession, record: Record, context: WriteContext, outcome: ChunkOutcome
) -> None:
    """One method and its services, all or nothing for this line."""
    method = _build(record, context)
    reason = f"{context.reason}, line {record.line}"
    service_id: str | None = None
    try:
        async with session.begin_nested():
            session.add(method)
            await session.flush()
            await emit_all(session, method_events(method), now=context.now)
            await services.assign_payment_method_to_many(
                session,
                record.customer_id,
                method.id,
                record.services,
                settings=context.settings,
                actor=context.actor,
                now=context.now,
                reason=reason,
            )
            for service_id in record.services:
                await services.set_auto_renew(
                    session,
                    record.customer_id,
                    service_id,
                    True,
                    settings=context.settings,
                    actor=context.actor,
                    now=context.now,
                    reason=reason,
                )
            await session.flush()
    except AppError as error:
        outcome.refused.append(_assignment_refusal(record, error, service_id))
        return
    except IntegrityError:
        outcome.refused.append(_duplicate(record, "registered meanwhile"))
        return
    _imported(outcome, record, method)
    outcome.services_assigned += len(record.services)


async def write_chunk(
    session: AsyncSession, records: Sequence[Record], context: WriteContext
) -> ChunkOutcome:
    outcome = ChunkOutcome()
    to_write = await _sort(session, records, outcome)
    built = [(record, _build(record, context)) for record in to_write]
    # A lapsed mandate is imported as such, but cannot renew anything.
    renewing = [(r, m) for r, m in built if r.services and not _lapsed(r)]
    assignments = await _services_checked(session, renewing, context, outcome)
    kept = [(r, m) for r, m in built if not (r.services and not _lapsed(r)) or m.id in assignments]
    try:
        async with session.begin_nested():
            session.add_all([method for _, method in kept])
            await session.flush()
    except IntegrityError:
        await _write_one_by_one(session, [record for record, _ in kept], context, outcome)
    else:
        await emit_all(
            session,
            [event for _, method in kept for event in method_events(method)],
            now=context.now,
        )
        for record, method in kept:
            line_services = assignments.get(method.id, [])
            if line_services:
                await services.renew_with(
                    session,
                    line_services,
                    method.id,
                    actor=context.actor,
                    now=context.now,
                    reason=f"{context.reason}, line {record.line}",
                )
                outcome.services_assigned += len(line_services)
            _imported(outcome, record, method)
    await session.flush()
    session.expunge_all()
    return outcome


def _lapsed(record: Record) -> bool:
    return isinstance(record, CheckedSepa) and record.lapsed_on is not None
