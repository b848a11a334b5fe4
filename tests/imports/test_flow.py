"""After the import: imported mandates are collected and imported cards are charged, by the
same sweeps and files as methods registered here."""

from __future__ import annotations

import importlib.resources
from datetime import UTC, date, datetime, timedelta

import httpx
import xmlschema
from lxml import etree
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import FrozenClock
from app.renewals.models import Renewal
from app.services.models import Service
from tests.imports.helpers import Auth, card_line, ndjson, post_import, provision, stored_card
from tests.imports.helpers import sepa_line as line
from tests.payment_methods.card_flows import SANDBOX_KEY
from tests.payment_methods.factories import IBAN_DE, IBAN_NL
from tests.sepa.flow import collections, create_batch, fresh, submit, sweep

EXPIRES = datetime(2026, 12, 15, 9, 0, tzinfo=UTC)  # T0 + 21 days: the SEPA lead
COLLECTION_DAY = date(2026, 12, 8)
NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.008.001.08"}


async def test_imported_mandates_are_collected_under_their_own_reference_and_date(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    for customer in ("cus_1", "cus_2", "cus_3"):
        await provision(client, auth, f"host-{customer}", customer, EXPIRES)
    body = ndjson(
        line("cus_1", reference="OLD-RCUR-1", signed_at="2024-03-14",
             last_collected_at="2026-10-05", services=["host-cus_1"]),
        line("cus_2", iban=IBAN_DE, reference="OLD-FRST-2", signed_at="2026-09-30",
             last_collected_at=None, services=["host-cus_2"]),
        # Signed over 36 months ago, collected by the old panel since: still alive.
        line("cus_3", iban=IBAN_NL, reference="OLD-RCUR-3", signed_at="2020-01-10",
             last_collected_at="2025-01-02", services=["host-cus_3"]),
    )  # fmt: skip
    response = await post_import(client, auth, body)
    assert response.status_code == 200, response.text

    await sweep(client, auth)
    pending = {c["mandate_reference"]: c for c in await collections(client, auth)}
    assert {ref: c["sequence_type"] for ref, c in pending.items()} == {
        "OLD-RCUR-1": "RCUR",
        "OLD-FRST-2": "FRST",
        "OLD-RCUR-3": "RCUR",
    }
    assert {c["collection_date"] for c in pending.values()} == {COLLECTION_DAY.isoformat()}

    clock.set(datetime(2026, 12, 4, 10, 0, tzinfo=UTC))
    batch = await create_batch(client, auth, COLLECTION_DAY)
    assert batch.status_code == 201, batch.text
    admin = auth("ops", admin=True)
    file = await client.get(f"/v1/admin/sepa/batches/{batch.json()['id']}/file", headers=admin)
    assert file.status_code == 200
    # The official XSD, through a validator that is not the code under test.
    xsd = importlib.resources.files("sepaxml") / "schemas" / "pain.008.001.08.xsd"
    xmlschema.XMLSchema(str(xsd)).validate(file.content)

    root = etree.fromstring(file.content)
    seen = {}
    for block in root.iterfind(".//p:PmtInf", NS):
        sequence = block.findtext("p:PmtTpInf/p:SeqTp", namespaces=NS)
        for debit in block.iterfind("p:DrctDbtTxInf", NS):
            mandate = debit.find("p:DrctDbtTx/p:MndtRltdInf", NS)
            assert mandate is not None
            reference = mandate.findtext("p:MndtId", namespaces=NS)
            seen[reference] = (sequence, mandate.findtext("p:DtOfSgntr", namespaces=NS))
    assert seen == {
        "OLD-RCUR-1": ("RCUR", "2024-03-14"),
        "OLD-FRST-2": ("FRST", "2026-09-30"),
        "OLD-RCUR-3": ("RCUR", "2020-01-10"),
    }

    assert (await submit(client, auth, batch.json()["id"])).status_code == 200
    [service] = await fresh(session, Service, id="host-cus_2")
    assert service.expires_at == EXPIRES.replace(year=2027)


async def test_an_imported_card_is_renewed_by_a_sweep(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    expires = clock.now() + timedelta(days=5)  # inside the cards' 7-day lead
    await provision(client, auth, "host-card", "cus_card", expires)
    gateway_customer, payment_method = await stored_card(client)
    body = ndjson(card_line("cus_card", gateway_customer, payment_method, services=["host-card"]))
    assert (await post_import(client, auth, body)).status_code == 200

    summary = await sweep(client, auth)
    assert summary["succeeded"] == 1, summary
    [renewal] = await fresh(session, Renewal, service_id="host-card")
    assert renewal.status == "succeeded"
    [service] = await fresh(session, Service, id="host-card")
    assert service.expires_at == expires.replace(year=expires.year + 1)
    charges = await client.get("/sandbox/_ledger/charges", headers=SANDBOX_KEY)
    mine = [c for c in charges.json()["data"] if c.get("payment_method") == payment_method]
    assert [c["status"] for c in mine] == ["succeeded"]
