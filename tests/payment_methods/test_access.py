"""Who sees what, idempotent creation, pagination, and the client IP on record."""

from __future__ import annotations

import asyncio
import random
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
import pytest
from schwifty import IBAN
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.idempotency import purge_expired_keys
from tests.payment_methods.factories import IBAN_DE, IBAN_ES, ClientWith, Register, sepa_body

Auth = Callable[..., dict[str, str]]
Counter = Callable[[], Awaitable[dict[str, int]]]


def _spanish_ibans(count: int) -> list[str]:
    rng = random.Random(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [str(IBAN.random("ES", random=rng)) for _ in range(count)]


async def test_another_customers_method_is_not_found(
    client: httpx.AsyncClient, auth: Auth, register: Register, accept: Register
) -> None:
    method_id = (await register(customer="cus_1")).json()["id"]
    other = auth("cus_2")
    for method, path, body in (
        ("GET", f"/v1/payment-methods/{method_id}", None),
        ("GET", f"/v1/payment-methods/{method_id}/mandate", None),
        ("POST", f"/v1/payment-methods/{method_id}/default", None),
        ("DELETE", f"/v1/payment-methods/{method_id}", None),
        (
            "POST",
            f"/v1/payment-methods/{method_id}/validate",
            {"mandate": {"accepted": True, "signer_name": "Mallory"}},
        ),
    ):
        response = await client.request(method, path, json=body, headers=other)
        assert response.status_code == 404, (method, path)
        assert response.json()["code"] == "payment_method_not_found"
    missing = await client.get("/v1/payment-methods/pm_nope", headers=auth("cus_1"))
    assert missing.status_code == 404 and missing.json()["code"] == "payment_method_not_found"
    listed = await client.get("/v1/payment-methods", headers=other)
    assert listed.json() == {"data": [], "next_cursor": None}
    # Still untouched for its owner.
    own = await client.get(f"/v1/payment-methods/{method_id}", headers=auth("cus_1"))
    assert own.json()["status"] == "requires_action"


async def test_admins_list_a_customers_methods(
    client: httpx.AsyncClient, auth: Auth, register: Register
) -> None:
    method_id = (await register(customer="cus_1")).json()["id"]
    await register(customer="cus_2")
    url = "/v1/admin/customers/cus_1/payment-methods"
    assert (await client.get(url, headers=auth("cus_1"))).status_code == 403
    listed = await client.get(url, headers=auth("ops", admin=True))
    assert listed.status_code == 200
    assert [m["id"] for m in listed.json()["data"]] == [method_id]
    filtered = await client.get(url + "?status=validated", headers=auth("ops", admin=True))
    assert filtered.json()["data"] == []


async def test_lists_page_with_a_cursor(
    client: httpx.AsyncClient, auth: Auth, register: Register, clock: FrozenClock
) -> None:
    created = []
    for n, iban in enumerate(_spanish_ibans(5)):
        if n != 2:  # two rows share a creation time: the id breaks the tie
            clock.advance(timedelta(minutes=1))
        response = await register(iban=iban)
        assert response.status_code == 201, response.text
        created.append(response.json()["id"])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (
            await client.get("/v1/payment-methods", params=params, headers=auth("cus_1"))
        ).json()
        seen += [m["id"] for m in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(created) and len(set(seen)) == 5
    assert seen[0] == created[0] and seen[-1] == created[-1]

    bad = await client.get("/v1/payment-methods?cursor=nonsense", headers=auth("cus_1"))
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"
    too_many = await client.get("/v1/payment-methods?limit=1000", headers=auth("cus_1"))
    assert too_many.status_code == 422


async def test_idempotency_key_replays_the_first_answer(
    client: httpx.AsyncClient, auth: Auth, register: Register, count_rows: Counter
) -> None:
    first = await register(**{"Idempotency-Key": "create-1"})
    assert first.status_code == 201
    # Same body with other spacing and key order is the same request.
    body = (
        '{"sepa_debit": {"account_holder_name": "María Núñez", "iban": "%s"},'
        '  "type": "sepa_debit"}'
    )
    repeat = await client.post(
        "/v1/payment-methods",
        content=(body % IBAN_ES).encode(),
        headers={
            **auth("cus_1"),
            "Idempotency-Key": "create-1",
            "Content-Type": "application/json",
        },
    )
    assert repeat.status_code == 201
    assert repeat.content == first.content
    assert repeat.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert (await count_rows())["payment_methods"] == 1

    reused = await register(iban=IBAN_DE, **{"Idempotency-Key": "create-1"})
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
    # Keys belong to their caller.
    theirs = await register(customer="cus_2", **{"Idempotency-Key": "create-1"})
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
    # Without a key, a repeat is a new attempt (and here a duplicate).
    assert (await register()).status_code == 409


async def test_idempotency_keys_expire_and_failures_are_not_kept(
    auth: Auth, register: Register, clock: FrozenClock, count_rows: Counter
) -> None:
    failed = await register(iban="ES00", **{"Idempotency-Key": "k"})
    assert failed.status_code == 422
    # The corrected request may use the same key: a failure stored nothing.
    first = await register(**{"Idempotency-Key": "k"})
    assert first.status_code == 201
    clock.advance(timedelta(hours=23))
    assert (await register(**{"Idempotency-Key": "k"})).content == first.content
    clock.advance(timedelta(hours=2))
    # Past 24 hours the key is forgotten: the request runs again (and is a duplicate).
    expired = await register(**{"Idempotency-Key": "k"})
    assert expired.status_code == 409 and expired.json()["code"] == "duplicate_payment_method"
    assert (await count_rows())["idempotency_keys"] == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "with space"])
async def test_malformed_idempotency_keys(
    client: httpx.AsyncClient, auth: Auth, key: str, count_rows: Counter
) -> None:
    response = await client.post(
        "/v1/payment-methods",
        json=sepa_body(),
        headers={**auth("cus_1"), "Idempotency-Key": key.encode()},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"
    assert (await count_rows())["payment_methods"] == 0


@pytest.mark.parametrize(
    ("trusted", "forwarded", "recorded"),
    [
        ([], "203.0.113.9", "127.0.0.1"),
        (["127.0.0.0/8"], "203.0.113.9", "203.0.113.9"),
        (["127.0.0.0/8", "10.0.0.0/8"], "198.51.100.7, 203.0.113.9, 10.1.2.3", "203.0.113.9"),
        (["127.0.0.0/8"], "not-an-ip", "127.0.0.1"),
    ],
)
async def test_client_ip_trusts_forwarded_for_only_from_trusted_proxies(
    client_with: ClientWith, auth: Auth, trusted: list[str], forwarded: str, recorded: str
) -> None:
    async with client_with(trusted_proxies=trusted) as client:
        created = await client.post("/v1/payment-methods", json=sepa_body(), headers=auth("c"))
        method_id = created.json()["id"]
        await client.post(
            f"/v1/payment-methods/{method_id}/validate",
            json={"mandate": {"accepted": True, "signer_name": "M"}},
            headers={**auth("c"), "X-Forwarded-For": forwarded},
        )
        mandate = await client.get(f"/v1/payment-methods/{method_id}/mandate", headers=auth("c"))
        assert mandate.json()["signer_ip"] == recorded


async def test_concurrent_twins_create_one_method(register: Register, count_rows: Counter) -> None:
    same_key = await asyncio.gather(*(register(**{"Idempotency-Key": "twin"}) for _ in range(3)))
    statuses = sorted(r.status_code for r in same_key)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
    created = {r.json()["id"] for r in same_key if r.status_code == 201}
    assert len(created) == 1
    no_key = await asyncio.gather(*(register(customer="cus_9") for _ in range(3)))
    assert sorted(r.status_code for r in no_key) == [201, 409, 409]
    assert {r.json()["code"] for r in no_key if r.status_code == 409} == {
        "duplicate_payment_method"
    }
    assert (await count_rows())["payment_methods"] == 2


async def test_expired_keys_are_purged(
    sessionmaker: async_sessionmaker[AsyncSession], register: Register, clock: FrozenClock
) -> None:
    await register(**{"Idempotency-Key": "old"})
    async with sessionmaker() as session:
        assert await purge_expired_keys(session, clock.now()) == 0
        assert await purge_expired_keys(session, clock.now() + timedelta(hours=24)) == 1
        await session.commit()
