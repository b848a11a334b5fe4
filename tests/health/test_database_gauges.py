"""/metrics shows the work waiting in the database: due renewals and webhook deliveries."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.ids import new_id
from app.events.models import WebhookDelivery
from app.health.gauges import DatabaseGauges
from app.renewals.models import Renewal
from tests import factories
from tests.events.helpers import Auth, emit_committed

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _waiting(samples: Samples) -> dict[str, float]:
    return {
        "backlog": samples[("autorenew_renewals_due_backlog", ())],
        "oldest": samples[("autorenew_renewals_oldest_due_seconds", ())],
        "pending": samples[("autorenew_webhook_deliveries", (("status", "pending"),))],
        "dead": samples[("autorenew_webhook_deliveries", (("status", "dead"),))],
    }


async def test_due_renewals_and_webhook_deliveries_are_read_on_scrape(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # Values are cached per process; this test's scrapes are all within one window.
    app.state.database_gauges = DatabaseGauges(sessionmaker, clock, refresh_seconds=3600)
    now = clock.now()
    async with sessionmaker() as session, session.begin():
        card = await factories.card_method(session, "cus_1", now=now)
        sepa = await factories.sepa_method(session, "cus_1", now=now)
        for name, method, status, due, lease in [
            ("two-hours", card, "scheduled", now - timedelta(hours=2), None),
            ("ten-minutes", card, "scheduled", now - timedelta(minutes=10), None),
            ("tomorrow", card, "scheduled", now + timedelta(days=1), None),  # not due yet
            ("lease-lapsed", card, "processing", now - timedelta(hours=5), now - timedelta(1)),
            ("lease-held", card, "processing", now - timedelta(hours=5), now + timedelta(1)),
            ("sepa", sepa, "scheduled", now - timedelta(days=3), None),  # batches collect it
            ("done", card, "succeeded", now - timedelta(days=9), None),
        ]:
            service = await factories.service(session, "cus_1", now=now, method=method)
            session.add(
                Renewal(
                    id=new_id("ren"), service_id=service.id, customer_id="cus_1",
                    period_start=service.expires_at, period_end=service.expires_at + timedelta(365),
                    amount=1299, currency="EUR", payment_method_id=method.id, status=status,
                    due_at=due, next_attempt_at=due, lease_owner=name if lease else None,
                    lease_expires_at=lease, created_at=now, updated_at=now,
                )
            )  # fmt: skip
    endpoint = await client.post(
        "/v1/admin/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/hooks"},
        headers=auth("ops", admin=True),
    )
    assert endpoint.status_code == 201, endpoint.text
    for resource_id in ("ren_a", "ren_b", "ren_c"):
        await emit_committed(sessionmaker, now, resource_id=resource_id)
    async with sessionmaker() as session, session.begin():
        one = (await session.execute(select(WebhookDelivery.id).limit(1))).scalar_one()
        await session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id == one).values(status="dead")
        )

    first = _waiting(await _scrape(client))
    assert first == {"backlog": 3, "oldest": 7200, "pending": 2, "dead": 1}

    async with sessionmaker() as session, session.begin():
        await session.execute(update(Renewal).values(status="succeeded"))
    assert _waiting(await _scrape(client)) == first  # within the refresh window: no query

    app.state.database_gauges = DatabaseGauges(sessionmaker, clock, refresh_seconds=0)
    assert _waiting(await _scrape(client)) == {**first, "backlog": 0, "oldest": 0}
