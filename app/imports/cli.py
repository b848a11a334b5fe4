"""`autorenew import payment-methods FILE [--dry-run] [--partial]`.

The command runs the import itself, against the configured database and gateway, rather
than sending the file to the HTTP route: it is for the files too large for one request
(the route's limits bound what a request may ask of a replica), it needs no token and no
running server, and it goes through exactly the same service (app/imports/service.py).
The file is read in blocks, never whole, and not copied anywhere.

Progress goes to stderr with tqdm (a small, well-kept library; bars only on a terminal):
bytes read while checking, records written while importing. The report (the same JSON as
the HTTP answer) goes to stdout. Exit status: 0 when no line was refused, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, Never

from tqdm import tqdm

from app.core.clock import SystemClock
from app.core.crypto import cipher_from_settings
from app.core.database import create_engine, create_sessionmaker
from app.core.errors import AppError
from app.core.settings import get_settings
from app.gateways.factory import build_gateway, build_sandbox
from app.imports.lines import LineLimits, read_lines
from app.imports.schemas import ImportReport
from app.imports.service import ImportRun, run_import

BLOCK = 256 * 1024


class Bars:
    """Progress as tqdm bars on stderr; silent when stderr is not a terminal."""

    def __init__(self, size: int) -> None:
        self._check = tqdm(
            total=size, unit="B", unit_scale=True, desc="checking", disable=None, leave=True
        )
        # No iterable: tqdm's stubs type such a bar as tqdm[Never].
        self._import: tqdm[Never] | None = None
        self._lines = 0

    def read(self, count: int) -> None:
        self._check.update(count)

    def checked(self, lines: int) -> None:
        self._lines += lines
        self._check.set_postfix(lines=self._lines, refresh=False)

    def importing(self, records: int) -> None:
        self._check.close()
        self._import = tqdm(total=records, unit="rec", desc="importing", disable=None)

    def imported(self, records: int) -> None:
        if self._import is not None:
            self._import.update(records)

    def close(self) -> None:
        self._check.close()
        if self._import is not None:
            self._import.close()


async def _blocks(file: BinaryIO, bars: Bars) -> AsyncIterator[bytes]:
    while block := file.read(BLOCK):
        bars.read(len(block))
        yield block


async def import_file(path: Path, *, dry_run: bool, partial: bool, operator: str) -> ImportReport:
    settings = get_settings()
    clock = SystemClock()
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    sandbox = build_sandbox(settings, clock=clock)
    if sandbox is not None:
        await sandbox.start()
    gateway = build_gateway(settings, sandbox=sandbox)
    run = ImportRun(
        sessionmaker=create_sessionmaker(engine),
        gateway=gateway,
        cipher=cipher_from_settings(settings),
        settings=settings,
        now=clock.now(),
        operator=operator,
        dry_run=dry_run,
        partial=partial,
    )
    # No record count or byte limit here: that is what the command is for. Lines are still
    # bounded, so a file without newlines cannot fill the memory.
    limits = LineLimits(max_line_bytes=settings.import_max_line_bytes)
    try:
        with path.open("rb") as file:
            bars = Bars(os.fstat(file.fileno()).st_size)
            try:
                return await run_import(read_lines(_blocks(file, bars), limits), run, bars)
            finally:
                bars.close()
    finally:
        await gateway.aclose()
        if sandbox is not None:
            await sandbox.stop()
        await engine.dispose()


def import_payment_methods(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"autorenew: no such file: {path}", file=sys.stderr)
        return 2
    operator = args.operator or f"cli:{getpass.getuser()}"
    try:
        report = asyncio.run(
            import_file(path, dry_run=args.dry_run, partial=args.partial, operator=operator)
        )
    except AppError as exc:
        print(f"autorenew: {exc.code}: {exc.detail}", file=sys.stderr)
        return 1
    print(json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False))
    return 1 if report.refused else 0
