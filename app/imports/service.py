"""Moving payment methods in from the previous customer panel: one import, two passes.

    check   stream the lines, a chunk at a time: parse, check the rules, look up what is
            already here (a short read), verify cards at the gateway (no transaction open).
            What passes goes to an ephemeral sealed spool (app/imports/spool.py).
    import  read the spool back and write it (app/imports/writer.py), with no gateway call:
            - all or nothing (the default), and every dry run: one transaction, committed
              only when no line of the file was refused (and never for a dry run). A failed
              file leaves nothing behind, because the database rolls it back.
            - `partial`: a transaction per chunk, so locks are short and a crash keeps
              what was done; a re-run skips it (already present).

Memory stays flat with the file's size: a chunk of lines, the spool on disk, the refused
lines for the report. The gateway is only read (a dry run changes nothing there either).

Like a scheduled job, an import opens its own transactions (`sessionmaker`) rather than
using a request's: it decides per mode where they begin and end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.crypto import FieldCipher
from app.core.database import transaction
from app.core.ids import new_id
from app.core.settings import Settings
from app.gateways.port import PaymentGateway
from app.imports.checks import CheckContext, Checked, Present, check_chunk
from app.imports.lines import RawLine
from app.imports.schemas import ImportReport, LapsedMandate, RefusedLine
from app.imports.spool import Spool
from app.imports.writer import ChunkOutcome, Record, WriteContext, write_chunk
from app.payment_methods.sepa import Creditor
from app.services.audit import Actor

log = logging.getLogger("autorenew.imports")

CHUNK = 500
T = TypeVar("T")


class Progress(Protocol):
    """Told how far an import is (the CLI draws bars; the HTTP route ignores it)."""

    def checked(self, lines: int) -> None: ...

    def importing(self, records: int) -> None: ...

    def imported(self, records: int) -> None: ...


class _Silent:
    def checked(self, lines: int) -> None:
        return None

    def importing(self, records: int) -> None:
        return None

    def imported(self, records: int) -> None:
        return None


@dataclass(frozen=True)
class ImportRun:
    """Everything an import needs besides its lines."""

    sessionmaker: async_sessionmaker[AsyncSession]
    gateway: PaymentGateway
    cipher: FieldCipher
    settings: Settings
    now: datetime
    operator: str  # the admin who runs it (the token's subject, or the CLI user)
    dry_run: bool = False
    partial: bool = False


@dataclass
class _Tally:
    lines: int = 0
    present: int = 0
    services_assigned: int = 0

    def __post_init__(self) -> None:
        self.imported = {"sepa_debit": 0, "card": 0}
        self.refused: list[RefusedLine] = []
        self.lapsed: list[LapsedMandate] = []

    def add(self, outcome: ChunkOutcome) -> None:
        for kind, count in outcome.imported.items():
            self.imported[kind] += count
        self.present += outcome.present
        self.refused.extend(outcome.refused)
        self.lapsed.extend(outcome.lapsed)
        self.services_assigned += outcome.services_assigned


async def _chunks(lines: AsyncIterable[T], size: int) -> AsyncIterator[list[T]]:
    chunk: list[T] = []
    async for line in lines:
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def creditor_of(settings: Settings) -> Creditor:
    return Creditor(identifier=settings.sepa_creditor_id, name=settings.sepa_creditor_name)


async def run_import(
    lines: AsyncIterable[RawLine], run: ImportRun, progress: Progress | None = None
) -> ImportReport:
    """Check and import the lines; the report says what happened to each."""
    progress = progress or _Silent()
    import_id = new_id("imp")
    tally = _Tally()
    check = CheckContext(
        cipher=run.cipher,
        gateway=run.gateway,
        gateway_concurrency=run.settings.import_gateway_concurrency,
        now=run.now,
    )
    started = time.perf_counter()
    with Spool(Checked) as spool:
        async for chunk in _chunks(lines, CHUNK):
            async with run.sessionmaker() as session:
                verdicts = await check_chunk(session, chunk, check)
            for verdict in verdicts:
                if isinstance(verdict, Checked):
                    spool.append(verdict)
                elif isinstance(verdict, Present):
                    tally.present += 1
                else:
                    tally.refused.append(verdict)
            tally.lines += len(chunk)
            progress.checked(len(chunk))

        checked = time.perf_counter()
        progress.importing(spool.count)
        context = WriteContext(
            creditor=creditor_of(run.settings),
            settings=run.settings,
            actor=Actor(f"import:{import_id}", "admin"),
            reason=f"imported from the previous customer panel by {run.operator}"[:200],
            now=run.now,
        )
        records = (checked.record for checked in spool)
        if run.partial and not run.dry_run:
            committed = await _import_per_chunk(records, run, context, tally, progress)
        else:
            committed = await _import_all_or_nothing(records, run, context, tally, progress)

    report = ImportReport(
        id=import_id,
        dry_run=run.dry_run,
        partial=run.partial,
        committed=committed,
        lines=tally.lines,
        imported=sum(tally.imported.values()),
        already_present=tally.present,
        refused=len(tally.refused),
        imported_by_type=tally.imported,
        lapsed=len(tally.lapsed),
        services_assigned=tally.services_assigned,
        refusals=sorted(tally.refused, key=lambda refusal: refusal.line),
        lapsed_mandates=tally.lapsed,
        seconds={
            "checking": round(checked - started, 3),
            "importing": round(time.perf_counter() - checked, 3),
        },
    )
    log.info(
        "payment-method import",
        extra={
            "import_id": import_id,
            "operator": run.operator,
            "dry_run": run.dry_run,
            "partial": run.partial,
            "committed": committed,
            "lines": report.lines,
            "imported": report.imported,
            "already_present": report.already_present,
            "refused": report.refused,
        },
    )
    return report


async def _import_all_or_nothing(
    records: Iterable[Record],
    run: ImportRun,
    context: WriteContext,
    tally: _Tally,
    progress: Progress,
) -> bool:
    async with run.sessionmaker() as session:
        await session.begin()
        try:
            for batch in _batches(records, CHUNK):
                tally.add(await write_chunk(session, batch, context))
                progress.imported(len(batch))
        except BaseException:
            await session.rollback()
            raise
        if run.dry_run or tally.refused:
            await session.rollback()
            return False
        await session.commit()
        return True


async def _import_per_chunk(
    records: Iterable[Record],
    run: ImportRun,
    context: WriteContext,
    tally: _Tally,
    progress: Progress,
) -> bool:
    for batch in _batches(records, CHUNK):
        async with transaction(run.sessionmaker) as session:
            outcome = await write_chunk(session, batch, context)
        tally.add(outcome)
        progress.imported(len(batch))
    return True
