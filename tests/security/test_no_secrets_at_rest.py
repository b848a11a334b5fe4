"""After the API has been used with real IBANs and cards, no table and no log line holds a
card number, a CVC or a full IBAN."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.database import Base
from app.core.settings import Settings
from app.sandbox.models import SandboxBase
from tests.security.conftest import Auth

IBANS = [
    "DE89 3704 0044 0532 0130 00",
    "ES9121000418450200051332",
    "NL91ABNA0417164300",
    "fr1420041010050500013m02606",  # as typed: lower case, no spaces
]
CARDS = ["4242424242424242", "5555555555554444", "4000002760003184", "378282246310005"]
# Four digits that occur in no card, IBAN or amount used here.
CVC = "7391"
# A digit run of card-number length standing alone (ids and digests are letters and digits).
_DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z])[0-9]{13,19}(?![0-9A-Za-z])")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def iban_forms(iban: str) -> set[str]:
    compact = iban.replace(" ", "").upper()
    spaced = " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return {compact, spaced, compact.lower(), spaced.lower()}


async def _exercise(client: httpx.AsyncClient, auth: Auth, settings: Settings) -> None:
    for index, iban in enumerate(IBANS):
        customer = auth(f"cus_scan_{index}")
        checked = await client.post("/v1/iban-checks", json={"iban": iban}, headers=customer)
        assert checked.status_code == 200, checked.text
        body = {"type": "sepa_debit", "sepa_debit": {"iban": iban, "account_holder_name": "X"}}
        created = await client.post("/v1/payment-methods", json=body, headers=customer)
        assert created.status_code == 201, created.text
        accepted = await client.post(
            f"/v1/payment-methods/{created.json()['id']}/validate",
            json={"mandate": {"accepted": True, "signer_name": "X"}},
            headers=customer,
        )
        assert accepted.status_code == 200, accepted.text
        # An IBAN typed into the wrong field must not be stored or echoed either.
        misplaced = {"iban": iban[:-1], "account_holder_name": iban}
        wrong = await client.post(
            "/v1/payment-methods",
            json={"type": "sepa_debit", "sepa_debit": misplaced},
            headers=customer,
        )
        assert wrong.status_code < 500, wrong.text

    gateway = {"Authorization": f"Bearer {settings.gateway_api_key.get_secret_value()}"}
    for index, number in enumerate(CARDS):
        customer = auth(f"cus_card_{index}")
        # What the customer's browser does: the card goes to the gateway, we get a token.
        tokenized = await client.post(
            "/sandbox/v1/payment_methods",
            data={
                "type": "card",
                "card[number]": number,
                "card[exp_month]": "12",
                "card[exp_year]": "2030",
                "card[cvc]": CVC,
            },
            headers=gateway,
        )
        assert tokenized.status_code == 200, tokenized.text
        token = tokenized.json()["id"]
        registered = await client.post(
            "/v1/payment-methods", json={"type": "card", "card": {"token": token}}, headers=customer
        )
        assert registered.status_code < 500, registered.text
        # A client that sends the card itself must be refused without keeping it.
        raw = await client.post(
            "/v1/payment-methods",
            json={"type": "card", "card": {"token": token, "number": number, "cvc": CVC}},
            headers=customer,
        )
        assert 400 <= raw.status_code < 500, raw.text


async def _dump_tables(sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    rows = []
    async with sessionmaker() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                rows.append(json.dumps([str(value) for value in row], ensure_ascii=False))
    return "\n".join(rows)


@pytest.mark.usefixtures("world")
async def test_no_card_number_cvc_or_iban_in_the_database_or_the_logs(
    client: httpx.AsyncClient,
    auth: Auth,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await _exercise(client, auth, settings)

    database = await _dump_tables(sessionmaker)
    assert "sepa_debit" in database and "mandate" in database.lower()
    ledger_file = Path(settings.sandbox_database_url.split("///", 1)[1])
    ledger = b"".join(path.read_bytes() for path in ledger_file.parent.glob(ledger_file.name + "*"))
    assert len(ledger) > 10_000 and SandboxBase.metadata.tables  # the file was found
    logs = caplog.text
    assert "request" in logs  # the access log did write lines
    texts = {"database": database, "logs": logs, "sandbox ledger": ledger.decode("latin-1")}

    for where, text in texts.items():
        for number in CARDS:
            assert number not in text, f"card {number} in the {where}"
        for run in _DIGIT_RUN.findall(text):
            assert not luhn_valid(run), f"a Luhn-valid digit run {run} in the {where}"
        assert not re.search(rf"(?<![0-9A-Za-z]){CVC}(?![0-9A-Za-z])", text), f"CVC in {where}"
        for iban in IBANS:
            for form in iban_forms(iban):
                assert form not in text, f"IBAN {form} in the {where}"
