"""Input that gave 500s (issue 15): far-away dates, absurd amounts and ids in bank files,
token subjects no database column can hold. Each is now a 4xx that changes nothing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.settings import Settings
from app.sepa.models import SepaReturn, SepaReturnFile
from tests.imports.helpers import ndjson, post_import, sepa_line
from tests.security.conftest import Auth
from tests.sepa.flow import post_returns
from tests.sepa.test_returns import pain002


def _service(expires_at: str) -> dict[str, object]:
    return {
        "customer_id": "cus_far",
        "kind": "domain",
        "name": "far.example",
        "expires_at": expires_at,
        "period_months": 12,
        "price": {"amount": 1299, "currency": "EUR"},
    }


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1999-12-31", "2200-01-01"])
async def test_a_batch_for_a_day_out_of_range_is_a_422(
    client: httpx.AsyncClient, auth: Auth, day: str
) -> None:
    response = await client.post(
        "/v1/admin/sepa/batches", json={"collection_date": day}, headers=auth("ops", admin=True)
    )
    assert response.status_code == 422, response.text
    assert "2000-01-01" in response.text


@pytest.mark.parametrize(
    "expires_at",
    ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"],
)
async def test_a_service_cannot_expire_out_of_range(
    client: httpx.AsyncClient, auth: Auth, expires_at: str
) -> None:
    admin = auth("ops", admin=True)
    created = await client.put("/v1/admin/services/far-1", json=_service(expires_at), headers=admin)
    assert created.status_code == 422, created.text
    assert (await client.get("/v1/admin/services/far-1", headers=admin)).status_code == 404
    listed = await client.get(
        "/v1/services", params={"expiring_before": expires_at}, headers=auth("cus_far")
    )
    assert listed.status_code == 422


async def test_a_service_at_the_edges_of_the_range_can_be_paid(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    # The assignment and auto-renew paths run the calendar on the expiry (they gave 500s
    # on year 1): at the last accepted instant they answer like any other day.
    admin = auth("ops", admin=True)
    body = _service("2199-12-31T00:00:00Z")
    assert (await client.put("/v1/admin/services/far-2", json=body, headers=admin)).is_success
    patched = await client.patch(
        "/v1/services/far-2", json={"auto_renew": True}, headers=auth("cus_far")
    )
    assert patched.status_code == 409  # no method yet: a 4xx, never a 500


def _pain002_reject(e2e: str, amount: str) -> bytes:
    transaction = (
        "<OrgnlPmtInfAndSts><OrgnlPmtInfId>P</OrgnlPmtInfId>"
        f"<TxInfAndSts><OrgnlEndToEndId>{e2e}</OrgnlEndToEndId><TxSts>RJCT</TxSts>"
        "<StsRsnInf><Rsn><Cd>AM04</Cd></Rsn></StsRsnInf>"
        f'<OrgnlTxRef><Amt><InstdAmt Ccy="EUR">{amount}</InstdAmt></Amt></OrgnlTxRef>'
        "</TxInfAndSts></OrgnlPmtInfAndSts>"
    )
    return pain002(transaction).encode()


async def _nothing_stored(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session:
        for model in (SepaReturnFile, SepaReturn):
            assert await session.scalar(select(func.count()).select_from(model)) == 0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (_pain002_reject("ren-1", "1e9999"), "application/xml"),
        (_pain002_reject("ren-1", "99999999999999999999.99"), "application/xml"),
        (_pain002_reject("r" * 5000, "12.99"), "application/xml"),
        (b"end_to_end_id,reason_code,amount,date\nren\x00-1,AM04,12.99,2026-12-08\n", "text/csv"),
        (b"end_to_end_id,reason_code,amount,date\nren-1,AM04,12.99,0001-01-01\n", "text/csv"),
    ],
)
async def test_a_hostile_return_file_is_refused_whole(
    client: httpx.AsyncClient,
    auth: Auth,
    sessionmaker: async_sessionmaker[AsyncSession],
    body: bytes,
    content_type: str,
) -> None:
    response = await post_returns(client, auth, body, content_type)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_return_file"
    await _nothing_stored(sessionmaker)


def _token(settings: Settings, subject: object, **claims: object) -> dict[str, str]:
    now = datetime.now(UTC)
    payload = {"sub": subject, "exp": int((now + timedelta(hours=1)).timestamp()), **claims}
    token = jwt.encode(payload, settings.jwt_secret.get_secret_value(), algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "subject", ["cus\x00evil", "cus\ud800", "x" * 129, " ", "cus\u202eevil", "cus\nx"]
)
async def test_an_unusable_token_subject_is_a_401(
    client: httpx.AsyncClient, settings: Settings, subject: str
) -> None:
    for path in ("/v1/me", "/v1/services", "/v1/payment-methods"):
        response = await client.get(path, headers=_token(settings, subject))
        assert response.status_code == 401, (path, response.text)
        assert response.json()["code"] == "invalid_token"


async def test_an_oversized_token_is_a_401_unread(
    client: httpx.AsyncClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    huge = _token(settings, "cus_1", padding="x" * 9000)
    with caplog.at_level(logging.ERROR):
        response = await client.get("/v1/me", headers=huge)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
    usual = await client.get("/v1/me", headers=_token(settings, "cus_1", scope="a b"))
    assert usual.status_code == 200


@pytest.mark.parametrize(
    "mandate",
    [
        {"signed_at": "0001-01-01"},
        {"signed_at": "9999-12-31T23:59:59-05:00"},
        {"last_collected_at": "9999-12-31"},
    ],
)
async def test_an_imported_mandate_out_of_range_is_a_refused_line(
    client: httpx.AsyncClient, auth: Auth, mandate: dict[str, str]
) -> None:
    line = sepa_line(reference="OLD-FAR")
    line["mandate"] |= mandate
    response = await post_import(client, auth, ndjson(line), partial="true")
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["imported"], report["refused"]) == (0, 1)
    assert report["refusals"][0]["code"] == "invalid_record"
