"""Event history: customers see only their own; admins filter by type, resource and time."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock

from .helpers import Auth, emit_committed, renewal_data


async def _seed(sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock) -> list[str]:
    ids = []
    for index in range(5):
        clock.advance(timedelta(minutes=1))
        event = await emit_committed(
            sessionmaker,
            clock.now(),
            type="renewal.succeeded" if index % 2 == 0 else "renewal.failed",
            resource_id=f"ren_{index}",
            data=renewal_data(f"ren_{index}", "cus_1"),
        )
        ids.append(event.id)
    await emit_committed(
        sessionmaker, clock.now(), resource_id="ren_x", customer_id="cus_2",
        data=renewal_data("ren_x", "cus_2"),
    )  # fmt: skip
    return ids


async def test_customers_page_through_their_own_events_newest_first(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    ids = await _seed(sessionmaker, clock)
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/events", params=params, headers=auth("cus_1"))).json()
        seen += [event["id"] for event in page["data"]]
        cursor = page["next_cursor"]
    assert seen == list(reversed(ids)) and cursor is None

    failed = await client.get(
        "/v1/events", params={"type": "renewal.failed"}, headers=auth("cus_1")
    )
    assert [e["type"] for e in failed.json()["data"]] == ["renewal.failed"] * 2
    one = await client.get(
        "/v1/events", params={"resource_type": "renewal", "resource_id": "ren_3"},
        headers=auth("cus_1"),
    )  # fmt: skip
    assert [e["id"] for e in one.json()["data"]] == [ids[3]]
    mine = await client.get(f"/v1/events/{ids[0]}", headers=auth("cus_1"))
    assert mine.status_code == 200 and mine.json()["data"]["id"] == "ren_0"


async def test_another_customers_event_is_not_found(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    ids = await _seed(sessionmaker, clock)
    assert (await client.get("/v1/events", headers=auth("cus_3"))).json()["data"] == []
    response = await client.get(f"/v1/events/{ids[0]}", headers=auth("cus_2"))
    assert response.status_code == 404 and response.json()["code"] == "event_not_found"
    assert (await client.get("/v1/events/evt_nope", headers=auth("cus_2"))).status_code == 404
    assert (await client.get("/v1/events")).status_code == 401


async def test_a_bad_cursor_is_a_clear_400(client: httpx.AsyncClient, auth: Auth) -> None:
    # 400, as on every other list of the API: one rule for clients to handle.
    for cursor in ("!!!", "bm90LWEtY3Vyc29y"):
        response = await client.get("/v1/events", params={"cursor": cursor}, headers=auth("c"))
        assert response.status_code == 400 and response.json()["code"] == "invalid_cursor"


async def test_admins_filter_by_type_customer_resource_and_time(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    ids = await _seed(sessionmaker, clock)
    admin = auth("ops", admin=True)

    async def found(**params: str) -> list[str]:
        response = await client.get("/v1/admin/events", params=params, headers=admin)
        assert response.status_code == 200, response.text
        return [event["id"] for event in response.json()["data"]]

    assert len(await found()) == 6
    assert len(await found(customer_id="cus_1")) == 5
    assert await found(resource_type="renewal", resource_id="ren_3") == [ids[3]]
    assert len(await found(type="renewal.succeeded", customer_id="cus_1")) == 3
    # Events were one minute apart from 09:01 to 09:05.
    window = await found(
        created_after="2026-11-24T09:02:00Z", created_before="2026-11-24T09:04:00Z"
    )
    assert window == [ids[2], ids[1]]
    assert (await client.get("/v1/admin/events", headers=auth("cus_1"))).status_code == 403


async def test_an_unknown_type_in_a_filter_is_named_with_the_known_ones(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    # A misspelt type would otherwise match nothing and look like "no such events".
    for path, who in (("/v1/events", auth("cus_1")), ("/v1/admin/events", auth("ops", admin=True))):
        response = await client.get(
            path, params=[("type", "renewal.failed"), ("type", "renewal.faild")], headers=who
        )
        assert response.status_code == 422, path
        problem = response.json()
        assert problem["code"] == "unknown_event_type"
        assert problem["unknown"] == ["renewal.faild"]
        assert "renewal.failed" in problem["known"] and "renewal.failed" in problem["detail"]
        assert problem["errors"] == [
            {
                "loc": ["query", "type", "1"],
                "message": "'renewal.faild' is not an event type of this service.",
                "type": "unknown_event_type",
            }
        ]
