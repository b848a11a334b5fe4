"""The customer's services list answers plain data without building `ServiceOut` models
(app/services/presenter.py): its JSON must stay exactly what the models write, for every
state a service and its renewal can show, and its filters and cursor must keep working."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import FrozenClock
from app.core.ids import new_id
from app.renewals.models import Renewal
from app.services.models import Service
from tests import factories

Auth = Callable[..., dict[str, str]]


def _renewal(service: Service, status: str, **columns: Any) -> Renewal:
    """The renewal of the service's current period (the one the list shows)."""
    now = service.created_at
    return Renewal(
        id=new_id("ren"),
        service_id=service.id,
        customer_id=service.customer_id,
        period_start=service.expires_at,
        period_end=service.expires_at + timedelta(days=365),
        amount=service.price_amount,
        currency=service.price_currency,
        payment_method_id=service.payment_method_id,
        status=status,
        due_at=service.expires_at - timedelta(days=7),
        created_at=now,
        updated_at=now,
        **columns,
    )


async def _services_in_every_state(session: AsyncSession, clock: FrozenClock) -> list[str]:
    now = clock.now()
    card = await factories.card_method(session, "cus_1", now=now, exp=(1, 2031))
    sepa = await factories.sepa_method(session, "cus_1", now=now)
    made: list[Service] = []

    async def service(**kw: Any) -> Service:
        clock.advance(timedelta(seconds=1))  # a distinct creation time each: the list's order
        made.append(await factories.service(session, "cus_1", now=clock.now(), **kw))
        return made[-1]

    await service(method=card)
    await service(method=sepa, kind="domain", expires_in=timedelta(days=90))
    await service(method=None, auto_renew=False)
    await service(method=card, currency="USD", amount=2500)
    session.add_all([
        _renewal(await service(method=card), "requires_action",
                 action_url="https://billing.example/pay/ren_1", attempt_count=1,
                 notified_at=now),
        _renewal(await service(method=card), "failed", failure_code="stolen_card",
                 failure_reason="The card was declined.", attempt_count=3,
                 failed_charge_count=3),
        _renewal(await service(method=card), "scheduled", attempt_count=1,
                 failed_charge_count=1, failure_code="insufficient_funds",
                 next_attempt_at=now + timedelta(days=2)),
        _renewal(await service(method=sepa, kind="domain"), "scheduled",
                 next_attempt_at=now + timedelta(days=3)),
    ])  # fmt: skip
    cancelled = await service(method=card)
    cancelled.status, cancelled.cancelled_at = "cancelled", now
    await factories.service(session, "cus_2", now=now, method=None)  # someone else's
    await session.flush()
    return [s.id for s in made]


@pytest.fixture
async def ids(clock: FrozenClock, sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
    """cus_1's services in every state, in creation order."""
    async with sessionmaker() as session, session.begin():
        return await _services_in_every_state(session, clock)


async def test_the_list_answers_what_each_service_answers_byte_for_byte(
    client: httpx.AsyncClient, auth: Auth, ids: list[str]
) -> None:
    me = auth("cus_1")
    listed = await client.get("/v1/services", headers=me)
    assert listed.status_code == 200
    ones = [(await client.get(f"/v1/services/{i}", headers=me)).content for i in ids]
    # Each item as `ServiceOut` writes it, in creation order, and no one else's.
    assert listed.content == b'{"data":[' + b",".join(ones) + b'],"next_cursor":null}'
    seen = {s["current_renewal"]["status"] for s in listed.json()["data"] if s["current_renewal"]}
    assert seen == {"requires_action", "failed", "scheduled"}


async def test_filters_and_pages_pick_the_same_services_as_before(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, ids: list[str]
) -> None:
    me = auth("cus_1")

    async def listed(**params: Any) -> list[str]:
        found, cursor = [], None
        while True:
            page = params | ({"cursor": cursor} if cursor else {})
            response = await client.get("/v1/services", params=page, headers=me)
            assert response.status_code == 200, response.text
            found += [s["id"] for s in response.json()["data"]]
            cursor = response.json()["next_cursor"]
            if cursor is None:
                return found

    assert await listed(limit=3) == ids
    assert await listed(limit=1, auto_renew="false") == [ids[2]]
    assert await listed(auto_renew="true") == ids[:2] + ids[3:]
    soon = (clock.now() + timedelta(days=60)).isoformat()
    assert await listed(limit=2, expiring_before=soon, auto_renew="true") == [
        i for i in ids if i not in (ids[1], ids[2])
    ]
    for bad in ({"cursor": "nope"}, {"limit": "0"}, {"auto_renew": "perhaps"}):
        refused = await client.get("/v1/services", params=bad, headers=me)
        assert refused.status_code in (400, 422), bad
        assert refused.headers["content-type"] == "application/problem+json"
