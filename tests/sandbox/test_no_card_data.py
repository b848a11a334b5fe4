"""The sandbox ledger never keeps a card number or a CVC: not in a row, not in the file."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.gateways.port import GatewayError
from app.sandbox.app import Sandbox
from app.sandbox.cards import CARDS
from app.sandbox.config import SandboxConfig
from app.sandbox.models import SandboxBase

# Four digits that appear in no test number.
CVC = "7391"


async def test_no_number_or_cvc_in_the_ledger_or_the_logs(
    flows: Any,
    sandbox: Sandbox,
    sandbox_config: SandboxConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for index, number in enumerate(CARDS):
        try:
            setup = await flows.register(number, f"reg-scan-{index}", cvc=CVC)
        except GatewayError:
            continue  # declined cards are tokenized (and scanned) all the same
        with contextlib.suppress(GatewayError):
            await flows.charge(setup, f"ren-scan-{index}")

    rows: list[str] = []
    async with sandbox.sessionmaker() as session:
        for table in SandboxBase.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                rows.append(json.dumps([str(value) for value in row]))
    dump = "\n".join(rows) + "\n" + caplog.text
    assert "sandbox_payment_methods" in SandboxBase.metadata.tables
    assert len(rows) > len(CARDS)
    assert "gateway request" in caplog.text  # the adapter did log, without bodies
    await sandbox.stop()  # flush the WAL into the file before reading its bytes

    files = b"".join(
        path.read_bytes()
        for path in Path(sandbox_config.database_url.split("///", 1)[1]).parent.glob("ledger.db*")
    )
    for number in CARDS:
        assert number not in dump, number
        assert number.encode() not in files, number
        assert number[:-4] not in dump  # not even the first digits next to the last 4
    # As a value of its own: four digits do turn up inside random hex ids and digests.
    alone = re.compile(rf"(?<![0-9a-z]){CVC}(?![0-9a-z])".encode())
    assert not alone.search(dump.encode()) and not alone.search(files)


@pytest.mark.parametrize("cvc", ["12", "12345", "abc"])
async def test_a_malformed_cvc_is_refused(flows: Any, cvc: str) -> None:
    with pytest.raises(GatewayError) as caught:
        await flows.gateway.tokenize_card(
            number="4242424242424242", exp_month=1, exp_year=2031, cvc=cvc
        )
    assert caught.value.code == "invalid_cvc"
