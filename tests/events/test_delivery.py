"""Signed deliveries to a real receiver on loopback: success, retries, dead letter,
redelivery, secret rotation, and the outbox's guarantees across crashes and rollbacks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from app.core.clock import FrozenClock
from app.core.database import transaction
from app.core.settings import Settings
from app.events import repository as repo
from app.events.dispatcher import Dispatcher
from app.events.models import Event, WebhookDelivery

from .helpers import (
    Auth,
    dispatch,
    emit_committed,
    emit_rolled_back,
    event_detail,
    register_endpoint,
    renewed_data,
    serving,
)
from .receiver import Receiver, SignatureError, verify


async def test_renewal_events_arrive_signed_and_verified(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # The package's own verifier checks the timestamp against the real time.
    clock.set(datetime.now(UTC))
    with Receiver() as receiver:
        endpoint = await register_endpoint(client, auth, receiver.url)
        succeeded = await emit_committed(sessionmaker, clock.now())
        renewed = await emit_committed(
            sessionmaker,
            clock.now(),
            type="service.renewed",
            resource_id="svc_1",
            data=renewed_data(),
        )
        summary = await dispatch(client, auth)

    assert summary["claimed"] == 2 and summary["succeeded"] == 2
    by_type = {}
    for received in receiver.received:
        body = Webhook(endpoint["secret"]).verify(received.body, received.headers)
        assert verify(endpoint["secret"], received, now=clock.now()) == body
        assert received.headers["webhook-id"] == body["id"]
        by_type[body["type"]] = body
    assert by_type["renewal.succeeded"]["id"] == succeeded.id
    assert by_type["renewal.succeeded"]["data"]["amount"] == {"amount": 1299, "currency": "EUR"}
    assert by_type["renewal.succeeded"]["sequence"] == 1
    assert by_type["service.renewed"]["id"] == renewed.id
    assert by_type["service.renewed"]["resource_id"] == "svc_1"

    detail = await event_detail(client, auth, succeeded.id)
    [delivery] = detail["deliveries"]
    assert delivery["status"] == "succeeded" and delivery["attempt_count"] == 1
    assert delivery["attempts"][0]["status_code"] == 200
    # Nothing left to send.
    assert (await dispatch(client, auth))["claimed"] == 0


async def test_a_500_is_retried_with_backoff_and_every_attempt_recorded(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    with Receiver(500, 503, 200) as receiver:
        endpoint = await register_endpoint(client, auth, receiver.url)
        event = await emit_committed(sessionmaker, clock.now())
        assert (await dispatch(client, auth))["retrying"] == 1
        # Not due yet: the backoff (base 30 s, jittered to 15 to 30 s) has not passed.
        assert (await dispatch(client, auth))["claimed"] == 0
        clock.advance(timedelta(seconds=31))
        assert (await dispatch(client, auth))["retrying"] == 1
        clock.advance(timedelta(seconds=61))
        assert (await dispatch(client, auth))["succeeded"] == 1

    ids = {received.headers["webhook-id"] for received in receiver.received}
    assert ids == {event.id}, "retries carry the same webhook-id"
    for received in receiver.received:
        verify(endpoint["secret"], received, now=clock.now(), tolerance=timedelta(minutes=5))
    [delivery] = (await event_detail(client, auth, event.id))["deliveries"]
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 503, 200]
    assert delivery["status"] == "succeeded" and delivery["attempt_count"] == 3
    # The response body is kept, truncated to the configured limit.
    assert len(delivery["attempts"][0]["response_body"]) == 2048
    assert all(a["latency_ms"] >= 0 for a in delivery["attempts"])


async def test_a_receiver_that_does_not_answer_times_out_and_is_retried(
    make_app: Callable[..., FastAPI],
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    app = make_app(webhook_timeout_seconds=0.3)
    async with serving(app) as client:
        with Receiver("hang", 200) as receiver:
            await register_endpoint(client, auth, receiver.url)
            event = await emit_committed(sessionmaker, clock.now())
            assert (await dispatch(client, auth))["retrying"] == 1
            clock.advance(timedelta(seconds=31))
            assert (await dispatch(client, auth))["succeeded"] == 1
        [delivery] = (await event_detail(client, auth, event.id))["deliveries"]
    first, second = delivery["attempts"]
    assert first["status_code"] is None and first["error"].startswith("timeout")
    assert second["status_code"] == 200


async def test_retries_stop_after_the_window_then_redelivery_sends_again(
    make_app: Callable[..., FastAPI],
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # A 36-second window: the first failure is retried (15 to 30 s later), the second is not.
    app = make_app(webhook_retry_window_hours=0.01)
    async with serving(app) as client:
        with Receiver(500, 500, 200) as receiver:
            await register_endpoint(client, auth, receiver.url)
            event = await emit_committed(sessionmaker, clock.now())
            assert (await dispatch(client, auth))["retrying"] == 1
            clock.advance(timedelta(seconds=31))
            assert (await dispatch(client, auth))["dead"] == 1
            clock.advance(timedelta(days=10))
            assert (await dispatch(client, auth))["claimed"] == 0
            [dead] = (await event_detail(client, auth, event.id))["deliveries"]
            assert dead["status"] == "dead" and dead["next_attempt_at"] is None

            response = await client.post(
                f"/v1/admin/events/{event.id}/redeliver", headers=auth("ops", admin=True)
            )
            assert response.status_code == 202
            assert response.json()["deliveries"][0]["status"] == "pending"
            assert (await dispatch(client, auth))["succeeded"] == 1
        assert len(receiver.received) == 3
        assert {r.headers["webhook-id"] for r in receiver.received} == {event.id}
        [delivered] = (await event_detail(client, auth, event.id))["deliveries"]
        assert delivered["status"] == "succeeded" and len(delivered["attempts"]) == 3


async def test_redelivery_to_one_endpoint_even_one_added_later(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    admin = auth("ops", admin=True)
    with Receiver() as first, Receiver() as late:
        await register_endpoint(client, auth, first.url)
        event = await emit_committed(sessionmaker, clock.now())
        await dispatch(client, auth)
        added = await register_endpoint(client, auth, late.url)
        response = await client.post(
            f"/v1/admin/events/{event.id}/redeliver",
            json={"endpoint_id": added["id"]},
            headers=admin,
        )
        assert response.status_code == 202
        await dispatch(client, auth)
        missing = await client.post(
            "/v1/admin/events/evt_missing/redeliver", headers=admin, json={}
        )
        assert missing.status_code == 404 and missing.json()["code"] == "event_not_found"
    assert len(first.received) == 1
    assert len(late.received) == 1
    verify(added["secret"], late.received[0], now=clock.now())


async def test_rotation_signs_with_both_secrets_during_the_overlap_only(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    clock.set(datetime.now(UTC))
    with Receiver() as receiver:
        endpoint = await register_endpoint(client, auth, receiver.url)
        old_secret = endpoint["secret"]
        response = await client.post(
            f"/v1/admin/webhook-endpoints/{endpoint['id']}/rotate-secret",
            json={"overlap_seconds": 3600},
            headers=auth("ops", admin=True),
        )
        assert response.status_code == 200
        new_secret = response.json()["secret"]
        assert new_secret != old_secret and new_secret.startswith("whsec_")

        await emit_committed(sessionmaker, clock.now())
        await dispatch(client, auth)
        during = receiver.received[-1]
        assert len(during.headers["webhook-signature"].split(" ")) == 2
        for secret in (old_secret, new_secret):
            Webhook(secret).verify(during.body, during.headers)
            verify(secret, during, now=clock.now())

        clock.advance(timedelta(hours=1, seconds=1))
        await emit_committed(sessionmaker, clock.now(), resource_id="ren_2")
        await dispatch(client, auth)
        after = receiver.received[-1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    verify(new_secret, after, now=clock.now())
    with pytest.raises(SignatureError):
        verify(old_secret, after, now=clock.now())


async def test_an_event_committed_before_a_crash_is_sent_by_the_next_process(
    make_app: Callable[..., FastAPI],
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    with Receiver() as receiver:
        first = make_app()
        async with serving(first) as client:
            await register_endpoint(client, auth, receiver.url)
        event = await emit_committed(sessionmaker, clock.now())
        # A dispatcher claims it (lease committed) and dies before sending.
        async with transaction(sessionmaker) as session:
            claimed = await repo.claim_due_deliveries(
                session,
                now=clock.now(),
                limit=10,
                lease_until=clock.now() + timedelta(seconds=120),
                token="lease_dead",
            )
        assert len(claimed) == 1

        restarted = make_app()
        async with serving(restarted) as client:
            assert (await dispatch(client, auth))["claimed"] == 0, "still leased"
            clock.advance(timedelta(seconds=121))
            assert (await dispatch(client, auth))["succeeded"] == 1
    assert [r.headers["webhook-id"] for r in receiver.received] == [event.id]


async def test_an_event_in_a_rolled_back_transaction_is_never_sent(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
) -> None:
    with Receiver() as receiver:
        await register_endpoint(client, auth, receiver.url)
        await emit_rolled_back(sessionmaker, clock.now())
        assert (await dispatch(client, auth))["claimed"] == 0
    assert receiver.received == []
    assert await session.scalar(select(func.count()).select_from(Event)) == 0
    assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


async def test_disabled_and_filtered_endpoints_get_nothing(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    with Receiver() as wanted, Receiver() as filtered, Receiver() as disabled:
        await register_endpoint(client, auth, wanted.url, event_types=["renewal.succeeded"])
        await register_endpoint(client, auth, filtered.url, event_types=["renewal.failed"])
        await register_endpoint(client, auth, disabled.url, enabled=False)
        await emit_committed(sessionmaker, clock.now())
        await dispatch(client, auth)
    assert len(wanted.received) == 1
    assert filtered.received == [] and disabled.received == []


async def test_concurrent_dispatchers_send_each_delivery_once(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # Replicas claim with SKIP LOCKED on PostgreSQL; here four passes race on one database.
    narrow = settings.model_copy(update={"webhook_dispatch_batch_size": 5})
    with Receiver() as receiver:
        await register_endpoint(client, auth, receiver.url)
        events = [
            await emit_committed(sessionmaker, clock.now(), resource_id=f"ren_{n}")
            for n in range(20)
        ]
        dispatchers = [Dispatcher(sessionmaker, narrow, clock) for _ in range(4)]
        for _ in range(5):
            summaries = await asyncio.gather(*(d.run_once() for d in dispatchers))
            if not any(s.claimed for s in summaries):
                break
    sent = [r.headers["webhook-id"] for r in receiver.received]
    assert sorted(sent) == sorted(event.id for event in events)


async def test_dead_letters_are_listed_and_revived_per_endpoint(
    make_app: Callable[..., FastAPI],
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    admin = auth("ops", admin=True)
    app = make_app(webhook_retry_window_hours=0.001)  # 3.6 s: the first failure is final
    async with serving(app) as client:
        with Receiver(500, 500) as receiver:
            endpoint = await register_endpoint(client, auth, receiver.url)
            base = f"/v1/admin/webhook-endpoints/{endpoint['id']}"
            for n in range(2):
                await emit_committed(sessionmaker, clock.now(), resource_id=f"ren_{n}")
            assert (await dispatch(client, auth))["dead"] == 2
            dead = (await client.get(f"{base}/deliveries?status=dead", headers=admin)).json()
            assert len(dead["data"]) == 2
            assert dead["data"][0]["attempts"][0]["status_code"] == 500

            revived = await client.post(f"{base}/redeliver-dead", headers=admin)
            assert revived.status_code == 202 and revived.json() == {"redelivered": 2}
            assert (await dispatch(client, auth))["succeeded"] == 2
        done = (await client.get(f"{base}/deliveries", headers=admin)).json()["data"]
        assert {d["status"] for d in done} == {"succeeded"}
        missing = await client.get("/v1/admin/webhook-endpoints/we_x/deliveries", headers=admin)
        assert missing.status_code == 404
    assert len(receiver.received) == 4
