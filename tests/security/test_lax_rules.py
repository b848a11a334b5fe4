"""Rules that were too lax (issue 15): a stale expiry undoing a paid renewal, a return of
another amount undoing a collection, numbers and booleans read loosely, admin granted by a
Unicode space, decline reasons that help card testers, limits counted per replica."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.ids import new_id
from app.core.settings import Settings
from app.events.models import Event
from app.renewals.models import Renewal
from app.services.models import Service
from tests import factories
from tests.payment_methods.card_flows import add_card, new_customer
from tests.security.conftest import Auth, client_for
from tests.sepa.flow import collected, fresh, post_returns, returns_csv

SERVICE = "host-paid"


def _body(expires_at: datetime, amount: int = 1299, **extra: object) -> dict[str, object]:
    return {
        "customer_id": "cus_paid",
        "kind": "hosting",
        "name": "Hosting Pro",
        "expires_at": expires_at.isoformat(),
        "period_months": 12,
        "price": {"amount": amount, "currency": "EUR"},
        **extra,
    }


async def _renewed_by_the_engine(
    sessionmaker: async_sessionmaker[AsyncSession], start: datetime, end: datetime
) -> str:
    """What a successful renewal leaves: a succeeded renewal, the service a period on."""
    renewal_id = new_id("ren")
    async with sessionmaker() as session, session.begin():
        session.add(
            Renewal(
                id=renewal_id,
                service_id=SERVICE,
                customer_id="cus_paid",
                period_start=start,
                period_end=end,
                amount=1299,
                currency="EUR",
                status="succeeded",
                due_at=start - timedelta(days=7),
                created_at=start - timedelta(days=7),
                updated_at=start - timedelta(days=7),
            )
        )
        await session.execute(
            update(Service).where(Service.id == SERVICE).values(expires_at=end, updated_at=start)
        )
    return renewal_id


async def test_a_stale_expiry_never_undoes_a_paid_renewal(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
) -> None:
    admin = auth("provisioning", admin=True)
    old = clock.now() + timedelta(days=5)
    created = await client.put(f"/v1/admin/services/{SERVICE}", json=_body(old), headers=admin)
    assert created.status_code == 201
    read_before = created.headers["ETag"]
    new = old + timedelta(days=365)
    renewal_id = await _renewed_by_the_engine(sessionmaker, old, new)

    # Provisioning's price update, built from what it read before the renewal.
    stale = _body(old, amount=1499)
    refused = await client.put(
        f"/v1/admin/services/{SERVICE}", json=stale, headers={**admin, "If-Match": read_before}
    )
    assert refused.status_code == 412, refused.text
    assert refused.json()["code"] == "precondition_failed"
    # Without If-Match the paid period still stands.
    refused = await client.put(f"/v1/admin/services/{SERVICE}", json=stale, headers=admin)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "expiry_before_paid_period"
    assert refused.json()["renewal_id"] == renewal_id
    [service] = await fresh(session, Service, id=SERVICE)
    assert (service.expires_at, service.price_amount) == (new, 1299)

    # Read again, then update: the current ETag is honoured.
    current = await client.get(f"/v1/admin/services/{SERVICE}", headers=admin)
    assert current.headers["ETag"] != read_before
    updated = await client.put(
        f"/v1/admin/services/{SERVICE}",
        json=_body(new, amount=1499),
        headers={**admin, "If-Match": current.headers["ETag"]},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["expires_at"].startswith(new.date().isoformat())

    # Taking the period back is possible, said explicitly, and announced.
    reversed_ = await client.put(
        f"/v1/admin/services/{SERVICE}",
        json=_body(old, amount=1499, reverse_paid_period=True),
        headers=admin,
    )
    assert reversed_.status_code == 200, reversed_.text
    [event] = await fresh(session, Event, type="service.renewal_reversed")
    assert event.data["renewal_id"] == renewal_id and event.data["reason"] == "provisioning"


async def test_every_service_answer_has_an_etag(client: httpx.AsyncClient, auth: Auth) -> None:
    admin = auth("provisioning", admin=True)
    when = datetime(2027, 6, 1, tzinfo=UTC)
    put = await client.put(f"/v1/admin/services/{SERVICE}", json=_body(when), headers=admin)
    for response in (
        put,
        await client.get(f"/v1/admin/services/{SERVICE}", headers=admin),
        await client.get(f"/v1/services/{SERVICE}", headers=auth("cus_paid")),
        await client.patch(
            f"/v1/services/{SERVICE}", json={"auto_renew": False}, headers=auth("cus_paid")
        ),
    ):
        assert response.is_success and response.headers["ETag"].startswith('"')
    missing = await client.put(
        "/v1/admin/services/nope", json=_body(when), headers={**admin, "If-Match": '"x"'}
    )
    assert missing.status_code == 412


async def test_a_return_of_another_amount_undoes_nothing(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    await collected(client, auth, clock)
    [before] = await fresh(session, Service, id="host-1")
    listed = await client.get("/v1/admin/sepa/collections", headers=auth("ops", admin=True))
    e2e = listed.json()["data"][0]["end_to_end_id"]
    day = datetime(2026, 12, 8, tzinfo=UTC).date()
    imported = await post_returns(client, auth, returns_csv((e2e, "MD06", 1, day)))
    assert imported.status_code == 201, imported.text
    assert imported.json()["applied"] == 0
    [row] = imported.json()["returns"]
    assert row["outcome"] == "amount_mismatch"
    [after] = await fresh(session, Service, id="host-1")
    assert after.expires_at == before.expires_at
    renewals = await fresh(session, Renewal, service_id="host-1")
    assert all(renewal.status != "refunded" for renewal in renewals)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("price", {"amount": True, "currency": "EUR"}),
        ("price", {"amount": "1299", "currency": "EUR"}),
        ("price", {"amount": 1299.0, "currency": "EUR"}),
        ("price", {"amount": 1299, "currency": "eur"}),
        ("price", {"amount": 1299, "currency": "XTS"}),
        ("period_months", True),
        ("period_months", "12"),
        ("auto_renew", "true"),
    ],
)
async def test_numbers_booleans_and_currencies_are_strict(
    client: httpx.AsyncClient, auth: Auth, path: str, body: object
) -> None:
    admin = auth("provisioning", admin=True)
    sent = {**_body(datetime(2027, 6, 1, tzinfo=UTC)), path: body}
    response = await client.put(f"/v1/admin/services/{SERVICE}", json=sent, headers=admin)
    assert response.status_code == 422, response.text
    assert (await client.get(f"/v1/admin/services/{SERVICE}", headers=admin)).status_code == 404


async def test_a_webhook_secret_overlap_is_a_number(client: httpx.AsyncClient, auth: Auth) -> None:
    admin = auth("ops", admin=True)
    created = await client.post(
        "/v1/admin/webhook-endpoints", json={"url": "http://127.0.0.1:9/h"}, headers=admin
    )
    endpoint = created.json()["id"]
    for overlap in (True, "60", 1.5):
        rotated = await client.post(
            f"/v1/admin/webhook-endpoints/{endpoint}/rotate-secret",
            json={"overlap_seconds": overlap},
            headers=admin,
        )
        assert rotated.status_code == 422, (overlap, rotated.text)


@pytest.mark.parametrize(
    ("scope", "admin"),
    [
        ("billing:admin", True),
        ("openid billing:admin", True),
        ("x\u00a0billing:admin", False),
        ("x\u2003billing:admin", False),
        ("x\tbilling:admin", False),
        ("x\nbilling:admin", False),
    ],
)
async def test_the_admin_scope_is_split_on_ascii_spaces_only(
    client: httpx.AsyncClient, settings: Settings, scope: str, admin: bool
) -> None:
    now = datetime.now(UTC)
    claims = {"sub": "ops", "scope": scope, "exp": int((now + timedelta(hours=1)).timestamp())}
    token = jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
    response = await client.get("/v1/admin/info", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == (200 if admin else 403), response.text


@pytest.mark.parametrize(
    ("number", "precise"),
    [
        ("4000000000009987", "lost_card"),
        ("4000000000009979", "stolen_card"),
        ("4000000000000127", "incorrect_cvc"),
        ("4000000000000002", "generic_decline"),
    ],
)
async def test_customers_learn_only_that_the_card_was_declined(
    client: httpx.AsyncClient,
    auth: Auth,
    caplog: pytest.LogCaptureFixture,
    number: str,
    precise: str,
) -> None:
    with caplog.at_level(logging.WARNING, logger="autorenew.cards"):
        response = await add_card(client, auth, new_customer(), number)
    assert response.status_code == 402, response.text
    answer = response.json()
    assert (answer["code"], answer["decline_code"]) == ("card_declined", "generic_decline")
    assert precise not in response.text or precise == "generic_decline"
    # The precise reason stays on record for the operators.
    assert any(getattr(r, "decline_code", None) == precise for r in caplog.records)


async def test_the_limits_hold_across_replicas(
    make_app: Callable[..., FastAPI], auth: Auth, backend: str
) -> None:
    limits = {"iban_check_rate_limit": 4, "payment_method_create_rate_limit": 3}
    async with client_for(make_app, **limits) as one, client_for(make_app, **limits) as two:
        me = auth("cus_limited")
        check = {"iban": "DE89370400440532013000"}
        answers = [
            await replica.post("/v1/iban-checks", json=check, headers=me)
            for replica in (one, two, one, two, one, two)
        ]
        assert [a.status_code for a in answers] == [200, 200, 200, 200, 429, 429]
        assert int(answers[-1].headers["Retry-After"]) >= 1

        # Concurrent registrations (refused IBANs count too) across both replicas: on
        # PostgreSQL they race on separate connections, and still only 3 get through.
        body = {"type": "sepa_debit", "sepa_debit": {"iban": "XX00", "account_holder_name": "A"}}
        other = auth("cus_racing")
        raced = await asyncio.gather(
            *(
                replica.post("/v1/payment-methods", json=body, headers=other)
                for replica in (one, two) * 5
            )
        )
        statuses = sorted(response.status_code for response in raced)
        assert statuses == [422] * 3 + [429] * 7, (backend, statuses)


async def test_old_hits_are_forgotten(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: FrozenClock
) -> None:
    from app.core import ratelimit
    from app.core.scheduler import JobContext
    from app.jobs import JOBS
    from app.payment_methods.limits import iban_checks
    from app.renewals.limits import pay_now

    [forget_old_hits_job] = [job.run for job in JOBS if job.id == "forget-rate-limit-hits"]
    for rule in (iban_checks(settings), pay_now(settings)):
        for _ in range(3):
            await ratelimit.hit(sessionmaker, rule, "cus_old", clock.now())
    clock.advance(max(iban_checks(settings).window, pay_now(settings).window))
    clock.advance(timedelta(seconds=1))
    forgotten = await forget_old_hits_job(JobContext(sessionmaker, clock, settings))
    assert forgotten == 6
    async with sessionmaker() as session:
        assert (await session.scalars(select(ratelimit.RateLimitHit))).all() == []


async def test_a_card_failed_for_a_telling_reason_shows_the_customer_a_generic_one(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        method = await factories.card_method(session, "cus_tested", now=clock.now())
        method.status, method.failure_code = "failed", "stolen_card"
    mine = await client.get(f"/v1/payment-methods/{method.id}", headers=auth("cus_tested"))
    assert mine.json()["failure_code"] == "generic_decline"
    listed = await client.get(
        "/v1/admin/customers/cus_tested/payment-methods", headers=auth("ops", admin=True)
    )
    assert listed.json()["data"][0]["failure_code"] == "stolen_card"
