"""Importing SEPA mandates: the rulebook's rules, the report, all or nothing, re-runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.payment_methods.models import Mandate, PaymentMethod
from app.services.models import Service, ServiceChange
from tests.imports.helpers import (
    Auth,
    counts,
    events_of,
    ndjson,
    post_import,
    provision,
    sepa_line,
)
from tests.payment_methods.factories import IBAN_DE, IBAN_ES, IBAN_ES_ELECTRONIC, IBAN_NL


async def mandate_of(
    client: httpx.AsyncClient, auth: Auth, customer: str = "cus_1"
) -> tuple[dict[str, Any], dict[str, Any]]:
    [method] = (await client.get("/v1/payment-methods", headers=auth(customer))).json()["data"]
    mandate = await client.get(
        f"/v1/payment-methods/{method['id']}/mandate", headers=auth(customer)
    )
    assert mandate.status_code == 200, mandate.text
    return method, mandate.json()


async def test_a_used_mandate_keeps_its_reference_and_date_and_is_recurrent(
    client: httpx.AsyncClient, auth: Auth, session: AsyncSession
) -> None:
    line = sepa_line(reference="OLD-0001", signed_at="2024-03-14", last_collected_at="2026-10-05")
    response = await post_import(client, auth, ndjson(line))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["committed"] is True and report["dry_run"] is False
    assert (report["lines"], report["imported"], report["already_present"], report["refused"]) == (
        1,
        1,
        0,
        0,
    )
    assert report["imported_by_type"] == {"sepa_debit": 1, "card": 0}

    method, mandate = await mandate_of(client, auth)
    assert method["status"] == "validated"
    assert method["sepa_debit"]["mandate_reference"] == "OLD-0001"
    assert method["sepa_debit"]["iban"] == "ES91 **** **** **** **** 1332"
    assert mandate["reference"] == "OLD-0001"
    assert mandate["signed_at"].startswith("2024-03-14T00:00:00")
    assert mandate["sequence_type"] == "RCUR"
    assert mandate["status"] == "active"
    assert mandate["signer_name"] == "Maria Nunez" or mandate["signer_name"] == "María Núñez"
    assert mandate["text_version"] == "imported-v1"
    assert "previous customer panel" in mandate["texts"]["en"]

    [row] = (await session.execute(select(PaymentMethod))).scalars()
    assert row.imported_at is not None
    assert row.iban_ciphertext is not None
    assert IBAN_ES_ELECTRONIC.encode() not in row.iban_ciphertext
    [stored] = (await session.execute(select(Mandate))).scalars()
    assert str(stored.last_collected_before_import_on) == "2026-10-05"

    for type_ in ("payment_method.created", "mandate.accepted", "payment_method.validated"):
        [event] = await events_of(session, type_)
        assert event.data["imported"] is True, type_
    [accepted] = await events_of(session, "mandate.accepted")
    assert accepted.data["mandate_reference"] == "OLD-0001"
    assert accepted.data["sequence_type"] == "RCUR"


async def test_a_mandate_never_collected_from_is_first(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    line = sepa_line(signed_at="2026-10-02T10:31:00+02:00", last_collected_at=None)
    assert (await post_import(client, auth, ndjson(line))).status_code == 200
    method, mandate = await mandate_of(client, auth)
    assert method["status"] == "validated"
    assert mandate["sequence_type"] == "FRST"
    assert mandate["signed_at"].startswith("2026-10-02T08:31:00")


@pytest.mark.parametrize(
    ("signed_at", "last_collected_at", "lapsed_on"),
    [
        ("2019-05-20", "2021-06-01", "2024-06-01"),
        ("2020-01-10", None, "2023-01-10"),
        # T0 is 2026-11-24: lapsing today counts, tomorrow does not.
        ("2020-01-10", "2023-11-24", "2026-11-24"),
        ("2020-01-10", "2023-11-25", None),
    ],
)
async def test_a_mandate_unused_for_36_months_is_imported_lapsed(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    signed_at: str,
    last_collected_at: str | None,
    lapsed_on: str | None,
) -> None:
    await provision(client, auth, "host-1", "cus_1", clock.now() + timedelta(days=60))
    line = sepa_line(signed_at=signed_at, last_collected_at=last_collected_at, services=["host-1"])
    response = await post_import(client, auth, ndjson(line))
    assert response.status_code == 200, response.text
    report = response.json()
    method, mandate = await mandate_of(client, auth)
    service = (await client.get("/v1/services/host-1", headers=auth("cus_1"))).json()
    if lapsed_on is None:
        assert method["status"] == "validated" and report["lapsed"] == 0
        assert (service["payment_method"] or {}).get("id") == method["id"]
        return
    assert (method["status"], method["failure_code"]) == ("failed", "mandate_lapsed")
    assert mandate["reference"] == "OLD-0001"  # kept, as evidence
    assert report["imported"] == 1 and report["lapsed"] == 1
    [lapsed] = report["lapsed_mandates"]
    assert lapsed["line"] == 1 and lapsed["lapsed_on"] == lapsed_on
    assert lapsed["mandate_reference"] == "OLD-0001"
    assert "36 months" in lapsed["reason"]
    assert lapsed["services_not_assigned"] == ["host-1"]
    assert service["payment_method"] is None


BR_IBAN = "BR1800360305000010009795493C1"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"iban": "ES91 2100 0418 4502 0005 1333"}, "invalid_iban"),
        ({"iban": BR_IBAN}, "iban_not_sepa"),
        ({"account_holder_name": "王小明"}, "invalid_account_holder_name"),
        ({"account_holder_name": " "}, "invalid_account_holder_name"),
        (
            {"mandate": {"reference": "A//B", "signed_at": "2024-01-01"}},
            "invalid_mandate_reference",
        ),
        ({"mandate": {"reference": "x" * 36, "signed_at": "2024-01-01"}}, "invalid_record"),
        ({"mandate": {"reference": "R-1", "signed_at": "2027-01-01"}}, "mandate_signed_in_future"),
        (
            {"mandate": {"reference": "R-1", "signed_at": "2024-01-01T10:00:00"}},
            "invalid_record",  # no offset: which day was it signed?
        ),
        (
            {
                "mandate": {
                    "reference": "R-1",
                    "signed_at": "2024-01-01",
                    "last_collected_at": "2023-12-31",
                }
            },
            "invalid_last_collection",
        ),
        (
            {
                "mandate": {
                    "reference": "R-1",
                    "signed_at": "2024-01-01",
                    "last_collected_at": "2026-12-01",
                }
            },
            "invalid_last_collection",
        ),
        ({"mandate": None}, "invalid_record"),
        ({"surprise": 1}, "invalid_record"),
        ({"customer_id": "cus\u00001"}, "invalid_record"),
        ({"services": ["not a service id"]}, "invalid_record"),
    ],
)
async def test_each_rule_refuses_with_its_code(
    client: httpx.AsyncClient,
    auth: Auth,
    sessionmaker: async_sessionmaker[AsyncSession],
    change: dict[str, Any],
    code: str,
) -> None:
    response = await post_import(client, auth, ndjson({**sepa_line(), **change}))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "import_refused"
    [refusal] = problem["report"]["refusals"]
    assert (refusal["line"], refusal["code"]) == (1, code)
    assert BR_IBAN not in response.text and "1333" not in refusal["detail"]
    assert (await counts(sessionmaker))["payment_methods"] == 0


async def test_lines_that_are_not_records(client: httpx.AsyncClient, auth: Auth) -> None:
    body = b'{"type": "sepa_debit"\n[1, 2]\n\n   \nnot json\r\n\xff\xfe\n'
    response = await post_import(client, auth, body, dry_run="true")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["lines"] == 4  # blank lines are not records, but keep their numbers
    assert [(r["line"], r["code"]) for r in report["refusals"]] == [
        (1, "invalid_json"),
        (2, "invalid_record"),
        (5, "invalid_json"),
        (6, "invalid_json"),
    ]


def good_file() -> bytes:
    return ndjson(
        sepa_line("cus_1", reference="OLD-1"),
        sepa_line("cus_2", iban=IBAN_DE, reference="OLD-2", last_collected_at=None),
        sepa_line("cus_3", iban=IBAN_NL, reference="OLD-3"),
    )


async def test_a_file_with_a_bad_line_imports_nothing(
    client: httpx.AsyncClient, auth: Auth, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    before = await counts(sessionmaker)
    body = good_file() + ndjson(sepa_line("cus_4", iban="ES00 1234", reference="OLD-4"))
    response = await post_import(client, auth, body)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "import_refused"
    report = problem["report"]
    assert report["committed"] is False
    assert (report["imported"], report["refused"]) == (3, 1)
    assert report["refusals"][0]["line"] == 4
    assert report["refusals"][0]["code"] == "invalid_iban"
    assert await counts(sessionmaker) == before


async def test_partial_imports_the_good_lines(
    client: httpx.AsyncClient, auth: Auth, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = good_file() + ndjson(sepa_line("cus_4", iban="ES00 1234", reference="OLD-4"))
    response = await post_import(client, auth, body, partial="true")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["committed"] is True
    assert (report["imported"], report["refused"]) == (3, 1)
    assert (await counts(sessionmaker))["payment_methods"] == 3


async def test_a_dry_run_reports_the_same_and_changes_nothing(
    client: httpx.AsyncClient, auth: Auth, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    before = await counts(sessionmaker)
    dry = await post_import(client, auth, good_file(), dry_run="true")
    assert dry.status_code == 200, dry.text
    assert dry.json()["committed"] is False and dry.json()["imported"] == 3
    assert await counts(sessionmaker) == before
    real = await post_import(client, auth, good_file())
    assert real.json()["imported"] == 3
    drop = {"id", "dry_run", "committed", "lapsed_mandates", "seconds"}
    assert {k: v for k, v in dry.json().items() if k not in drop} == {
        k: v for k, v in real.json().items() if k not in drop
    }


async def test_a_second_run_changes_nothing(
    client: httpx.AsyncClient, auth: Auth, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    first = await post_import(client, auth, good_file())
    assert first.json()["imported"] == 3
    after_first = await counts(sessionmaker)
    second = await post_import(client, auth, good_file())
    assert second.status_code == 200
    report = second.json()
    assert (report["imported"], report["already_present"], report["refused"]) == (0, 3, 0)
    assert await counts(sessionmaker) == after_first


async def test_a_line_repeated_in_the_file_is_imported_once(
    client: httpx.AsyncClient, auth: Auth, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    line = sepa_line(reference="OLD-1")
    body = ndjson(line, line, {**line, "mandate": {**line["mandate"], "reference": "old-1"}})
    report = (await post_import(client, auth, body)).json()
    assert (report["imported"], report["already_present"]) == (1, 2)
    assert (await counts(sessionmaker))["mandates"] == 1


async def test_a_reference_already_used_elsewhere_is_refused(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    assert (await post_import(client, auth, ndjson(sepa_line("cus_1")))).status_code == 200
    other_customer = sepa_line("cus_2", iban=IBAN_DE)
    other_account = sepa_line("cus_1", iban=IBAN_DE)
    response = await post_import(client, auth, ndjson(other_customer, other_account))
    codes = [(r["line"], r["code"]) for r in response.json()["report"]["refusals"]]
    assert codes == [(1, "mandate_reference_in_use"), (2, "mandate_reference_in_use")]


async def test_an_account_registered_here_already_is_refused(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    created = await client.post(
        "/v1/payment-methods",
        json={"type": "sepa_debit", "sepa_debit": {"iban": IBAN_ES, "account_holder_name": "M"}},
        headers=auth("cus_1"),
    )
    assert created.status_code == 201
    twice = ndjson(sepa_line("cus_2", reference="OLD-A"), sepa_line("cus_2", reference="OLD-B"))
    response = await post_import(client, auth, ndjson(sepa_line("cus_1")) + twice)
    refusals = response.json()["report"]["refusals"]
    assert [(r["line"], r["code"]) for r in refusals] == [
        (1, "duplicate_payment_method"),
        (3, "duplicate_payment_method"),
    ]
    assert created.json()["id"] in refusals[0]["detail"]


async def test_services_are_assigned_with_audit_and_events(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    for service_id in ("host-1", "dom-1"):
        await provision(client, auth, service_id, "cus_1", clock.now() + timedelta(days=60))
    line = sepa_line(services=["host-1", "dom-1", "host-1"])
    response = await post_import(client, auth, ndjson(line))
    assert response.status_code == 200, response.text
    assert response.json()["services_assigned"] == 2
    import_id = response.json()["id"]
    method, _ = await mandate_of(client, auth)
    for service_id in ("host-1", "dom-1"):
        service = (await client.get(f"/v1/services/{service_id}", headers=auth("cus_1"))).json()
        assert (service["payment_method"] or {}).get("id") == method["id"]
        assert service["auto_renew"] is True
        assert service["renewal_readiness"] == "ok"
    changes = (
        (await session.execute(select(ServiceChange).where(ServiceChange.service_id == "host-1")))
        .scalars()
        .all()
    )
    mine = [c for c in changes if c.actor_id == f"import:{import_id}"]
    assert {c.field for c in mine} == {"payment_method_id", "auto_renew"}
    assert all(c.actor_kind == "admin" and "ops" in (c.reason or "") for c in mine)
    assert all("line 1" in (c.reason or "") for c in mine)
    changed = await events_of(session, "service.payment_method_changed")
    assert {e.resource_id for e in changed} == {"host-1", "dom-1"}


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ({"currency": "USD"}, "currency_not_supported"),
        ({"customer": "cus_other"}, "service_not_found"),
        ({"status": "cancelled"}, "service_cancelled"),
        ({"missing": True}, "service_not_found"),
    ],
)
async def test_a_service_that_cannot_take_the_method_refuses_the_line(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
    setup: dict[str, Any],
    code: str,
) -> None:
    await provision(client, auth, "ok-1", "cus_1", clock.now() + timedelta(days=60))
    if not setup.get("missing"):
        await provision(
            client,
            auth,
            "host-1",
            setup.get("customer", "cus_1"),
            clock.now() + timedelta(days=60),
            currency=setup.get("currency", "EUR"),
            status=setup.get("status", "active"),
        )
    before = await counts(sessionmaker)
    line = sepa_line(services=["ok-1", "host-1"])
    response = await post_import(
        client, auth, ndjson(line, sepa_line("cus_2", iban=IBAN_DE, reference="R2")), partial="true"
    )
    assert response.status_code == 200, response.text
    report = response.json()
    [refusal] = report["refusals"]
    assert (refusal["line"], refusal["code"]) == (1, code)
    assert "host-1" in refusal["detail"]
    assert report["imported"] == 1
    async with sessionmaker() as session:
        ok = await session.get(Service, "ok-1")
        assert ok is not None and ok.payment_method_id is None and not ok.auto_renew
    after = await counts(sessionmaker)
    assert after["payment_methods"] == before["payment_methods"] + 1
    assert after["service_changes"] == before["service_changes"]


async def test_an_account_registered_during_the_import_refuses_only_its_line(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The customer registers the account between the look-up and the write: the unique
    index refuses the chunk's flush, and each line is written again on its own."""
    created = await client.post(
        "/v1/payment-methods",
        json={"type": "sepa_debit", "sepa_debit": {"iban": IBAN_ES, "account_holder_name": "M"}},
        headers=auth("cus_1"),
    )
    assert created.status_code == 201

    async def missed(*_: object) -> dict[tuple[str, str], str]:
        return {}

    monkeypatch.setattr("app.imports.repository.live_accounts", missed)
    await provision(client, auth, "host-2", "cus_2", clock.now() + timedelta(days=60))
    body = ndjson(
        sepa_line("cus_1", reference="OLD-1"),
        sepa_line("cus_2", iban=IBAN_DE, reference="OLD-2", services=["host-2"]),
        sepa_line("cus_3", iban=IBAN_NL, reference="OLD-3"),
    )
    response = await post_import(client, auth, body, partial="true")
    assert response.status_code == 200, response.text
    report = response.json()
    assert [(r["line"], r["code"]) for r in report["refusals"]] == [(1, "duplicate_payment_method")]
    assert (report["imported"], report["services_assigned"]) == (2, 1)
    async with sessionmaker() as session:
        service = await session.get(Service, "host-2")
        assert service is not None and service.auto_renew and service.payment_method_id
