"""Services over HTTP: the registry, the customer's choices, readiness, audit, isolation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import FrozenClock
from app.services.models import Service, ServiceChange
from tests import factories

Auth = Callable[..., dict[str, str]]


def registry_body(clock: FrozenClock, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer_id": "cus_1",
        "kind": "hosting",
        "name": "Hosting Pro",
        "expires_at": (clock.now() + timedelta(days=60)).isoformat(),
        "period_months": 12,
        "price": {"amount": 1299, "currency": "EUR"},
    }
    body.update(overrides)
    return body


async def register(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, service_id: str = "dom-1", **kw: Any
) -> httpx.Response:
    return await client.put(
        f"/v1/admin/services/{service_id}",
        json=registry_body(clock, **kw),
        headers=auth("provisioning", admin=True),
    )


async def test_registry_creates_then_updates(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock
) -> None:
    created = await register(client, auth, clock)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["price"] == {"amount": 1299, "currency": "EUR"}
    assert body["auto_renew"] is False
    assert body["renewal_readiness"] == "no_payment_method"

    updated = await register(client, auth, clock, price={"amount": 1499, "currency": "EUR"})
    assert updated.status_code == 200
    assert updated.json()["price"]["amount"] == 1499
    again = await register(client, auth, clock, price={"amount": 1499, "currency": "EUR"})
    assert again.status_code == 200


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ({"price": {"amount": 0, "currency": "EUR"}}, ["body", "price", "amount"]),
        ({"price": {"amount": 12.5, "currency": "EUR"}}, ["body", "price", "amount"]),
        ({"price": {"amount": 1299, "currency": "EURO"}}, ["body", "price", "currency"]),
        ({"price": {"amount": 1299, "currency": "ABC"}}, ["body", "price", "currency"]),
        ({"period_months": 0}, ["body", "period_months"]),
        ({"period_months": 121}, ["body", "period_months"]),
        ({"expires_at": "2027-01-01T00:00:00"}, ["body", "expires_at"]),
        ({"kind": "Hosting Plan"}, ["body", "kind"]),
        ({"unexpected": 1}, ["body", "unexpected"]),
    ],
)
async def test_registry_refuses_bad_input_and_writes_nothing(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    session: AsyncSession,
    override: dict[str, Any],
    where: list[str],
) -> None:
    response = await register(client, auth, clock, **override)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert where in [error["loc"] for error in response.json()["errors"]]
    assert (await session.execute(select(func.count()).select_from(Service))).scalar_one() == 0


async def test_registry_is_admin_only(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock
) -> None:
    response = await client.put(
        "/v1/admin/services/x", json=registry_body(clock), headers=auth("cus_1")
    )
    assert response.status_code == 403


async def test_another_customers_service_is_404_on_every_route(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    await register(client, auth, clock)
    mine = await factories.card_method(session, "cus_2", now=clock.now())
    await session.commit()
    intruder = auth("cus_2")
    calls = [
        client.get("/v1/services/dom-1", headers=intruder),
        client.patch("/v1/services/dom-1", json={"auto_renew": True}, headers=intruder),
        client.put(
            "/v1/services/dom-1/payment-method",
            json={"payment_method_id": mine.id},
            headers=intruder,
        ),
        client.delete("/v1/services/dom-1/payment-method", headers=intruder),
        client.get("/v1/services/dom-1/renewals", headers=intruder),
        client.put(
            "/v1/services/payment-method",
            json={"payment_method_id": mine.id, "service_ids": ["dom-1"]},
            headers=intruder,
        ),
    ]
    for call in calls:
        response = await call
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "service_not_found"
    listed = await client.get("/v1/services", headers=intruder)
    assert listed.json()["data"] == []


async def test_assigning_someone_elses_method_is_404(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    await register(client, auth, clock)
    theirs = await factories.card_method(session, "cus_2", now=clock.now())
    await session.commit()
    response = await client.put(
        "/v1/services/dom-1/payment-method",
        json={"payment_method_id": theirs.id},
        headers=auth("cus_1"),
    )
    assert response.status_code == 404
    assert response.json()["code"] == "payment_method_not_found"


async def test_two_services_two_methods_and_the_currency_rule(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    await register(client, auth, clock, "dom-1", kind="domain")
    await register(client, auth, clock, "host-1", price={"amount": 999, "currency": "USD"})
    sepa = await factories.sepa_method(session, "cus_1", now=clock.now())
    card = await factories.card_method(session, "cus_1", now=clock.now())
    await session.commit()
    me = auth("cus_1")

    refused = await client.put(
        "/v1/services/host-1/payment-method", json={"payment_method_id": sepa.id}, headers=me
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "currency_not_supported"

    for service_id, method in (("dom-1", sepa), ("host-1", card)):
        assigned = await client.put(
            f"/v1/services/{service_id}/payment-method",
            json={"payment_method_id": method.id},
            headers=me,
        )
        assert assigned.status_code == 200, assigned.text
        turned_on = await client.patch(
            f"/v1/services/{service_id}", json={"auto_renew": True}, headers=me
        )
        body = turned_on.json()
        assert body["renewal_readiness"] == "ok"
        assert body["payment_method"]["id"] == method.id
    domain = (await client.get("/v1/services/dom-1", headers=me)).json()
    assert domain["payment_method"]["display"] == "ES91 **** **** **** **** 1332"
    assert domain["next_charge"]["lead_days"] == 21  # SEPA's lead beats the domain's 14


async def test_a_method_not_validated_cannot_be_assigned(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    await register(client, auth, clock)
    pending = await factories.card_method(
        session, "cus_1", now=clock.now(), status="requires_action"
    )
    await session.commit()
    response = await client.put(
        "/v1/services/dom-1/payment-method",
        json={"payment_method_id": pending.id},
        headers=auth("cus_1"),
    )
    assert response.status_code == 409
    assert response.json()["code"] == "payment_method_not_validated"


async def test_a_card_expiring_before_the_charge_is_refused(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    # The clock is at 2026-11-24; the service expires in 60 days (charged ~7 days before).
    await register(client, auth, clock)
    short = await factories.card_method(session, "cus_1", now=clock.now(), exp=(12, 2026))
    await session.commit()
    response = await client.put(
        "/v1/services/dom-1/payment-method",
        json={"payment_method_id": short.id},
        headers=auth("cus_1"),
    )
    assert response.status_code == 409
    assert response.json()["code"] == "card_expires_before_renewal"


@pytest.mark.parametrize(
    ("setup", "readiness"),
    [
        ("none", "no_payment_method"),
        ("requires_action", "payment_method_not_validated"),
        ("revoked", "payment_method_revoked"),
        ("failed", "payment_method_failed"),
        ("expired", "payment_method_expired"),
        ("expires_soon", "payment_method_expires_before_renewal"),
        ("usd_on_sepa", "currency_not_supported_by_method"),
        ("auto_renew_off", "auto_renew_off"),
        ("cancelled", "service_cancelled"),
        ("ok", "ok"),
    ],
)
async def test_every_readiness_state(
    client: httpx.AsyncClient,
    auth: Auth,
    clock: FrozenClock,
    session: AsyncSession,
    setup: str,
    readiness: str,
) -> None:
    now = clock.now()
    currency = "USD" if setup == "usd_on_sepa" else "EUR"
    service = await factories.service(
        session, "cus_1", now=now, service_id="svc-r", currency=currency,
        auto_renew=setup != "auto_renew_off",
    )  # fmt: skip
    if setup == "usd_on_sepa":
        method = await factories.sepa_method(session, "cus_1", now=now)
    elif setup != "none":
        statuses = {"requires_action": "requires_action", "revoked": "revoked", "failed": "failed"}
        method = await factories.card_method(
            session, "cus_1", now=now, status=statuses.get(setup, "validated"),
            exp=(11, 2026) if setup == "expires_soon" else (12, 2030),
        )  # fmt: skip
        if setup == "expired":
            method.status = "expired"
    if setup != "none":
        service.payment_method_id = method.id
    if setup == "cancelled":
        service.status = "cancelled"
    await session.commit()
    response = await client.get("/v1/services/svc-r", headers=auth("cus_1"))
    assert response.json()["renewal_readiness"] == readiness


async def test_bulk_assignment_is_all_or_nothing(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    await register(client, auth, clock, "a")
    await register(client, auth, clock, "b", price={"amount": 500, "currency": "USD"})
    sepa = await factories.sepa_method(session, "cus_1", now=clock.now())
    card = await factories.card_method(session, "cus_1", now=clock.now())
    await session.commit()
    me = auth("cus_1")

    refused = await client.put(
        "/v1/services/payment-method", json={"payment_method_id": sepa.id}, headers=me
    )
    assert refused.status_code == 409
    assert refused.json()["refusals"] == [
        {
            "service_id": "b",
            "code": "currency_not_supported",
            "detail": "A sepa_debit method cannot pay in USD.",
        }
    ]
    services = (await client.get("/v1/services", headers=me)).json()["data"]
    assert [s["payment_method"] for s in services] == [None, None]

    done = await client.put(
        "/v1/services/payment-method", json={"payment_method_id": card.id}, headers=me
    )
    assert done.status_code == 200
    assert {s["payment_method"]["id"] for s in done.json()["services"]} == {card.id}


async def test_auto_renew_falls_back_to_the_default_method(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    await register(client, auth, clock)
    me = auth("cus_1")
    refused = await client.patch("/v1/services/dom-1", json={"auto_renew": True}, headers=me)
    assert refused.status_code == 409
    assert refused.json()["code"] == "payment_method_required"

    default = await factories.card_method(session, "cus_1", now=clock.now(), is_default=True)
    await session.commit()
    response = await client.patch("/v1/services/dom-1", json={"auto_renew": True}, headers=me)
    assert response.status_code == 200
    assert response.json()["payment_method"]["id"] == default.id
    assert response.json()["auto_renew"] is True


async def test_every_choice_is_audited(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    await register(client, auth, clock)
    card = await factories.card_method(session, "cus_1", now=clock.now())
    await session.commit()
    me = auth("cus_1")
    # Choosing a method is the customer's opt-in: auto-renew goes on with it.
    chosen = await client.put(
        "/v1/services/dom-1/payment-method", json={"payment_method_id": card.id}, headers=me
    )
    assert chosen.json()["auto_renew"] is True
    assert chosen.json()["renewal_readiness"] == "ok"
    await client.patch("/v1/services/dom-1", json={"auto_renew": True}, headers=me)  # no change
    await client.patch("/v1/services/dom-1", json={"auto_renew": False}, headers=me)
    await client.patch("/v1/services/dom-1", json={"auto_renew": True}, headers=me)
    # Unless the body says otherwise.
    kept_off = await client.put(
        "/v1/services/dom-1/payment-method",
        json={"payment_method_id": card.id, "auto_renew": False},
        headers=me,
    )
    assert kept_off.json()["auto_renew"] is False

    trail = await client.get("/v1/admin/services/dom-1/changes", headers=auth("ops", admin=True))
    changes = [(c["field"], c["before"], c["after"], c["actor_id"]) for c in trail.json()]
    assert changes == [
        ("created", None, "active", "provisioning"),
        ("payment_method_id", None, card.id, "cus_1"),
        ("auto_renew", False, True, "cus_1"),
        ("auto_renew", True, False, "cus_1"),
        ("auto_renew", False, True, "cus_1"),
        ("auto_renew", True, False, "cus_1"),
    ]
    count = (await session.execute(select(func.count()).select_from(ServiceChange))).scalar_one()
    assert count == 6


async def test_cancelling_stops_renewals_and_lists_filter(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock
) -> None:
    admin = auth("ops", admin=True)
    await register(client, auth, clock, "a")
    await register(
        client, auth, clock, "b", expires_at=(clock.now() + timedelta(days=5)).isoformat()
    )
    cancelled = await client.delete("/v1/admin/services/a", headers=admin)
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["renewal_readiness"] == "service_cancelled"
    active = await client.get("/v1/admin/services?status=active", headers=admin)
    assert [s["id"] for s in active.json()["data"]] == ["b"]
    soon = (clock.now() + timedelta(days=10)).isoformat()
    expiring = await client.get(
        "/v1/services", params={"expiring_before": soon}, headers=auth("cus_1")
    )
    assert [s["id"] for s in expiring.json()["data"]] == ["b"]


async def test_lists_paginate_with_a_cursor(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock
) -> None:
    for index in range(5):
        await register(client, auth, clock, f"svc-{index}")
        clock.advance(timedelta(seconds=1))
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/services", params=params, headers=auth("cus_1"))).json()
        seen += [s["id"] for s in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"svc-{i}" for i in range(5)]
    bad = await client.get("/v1/services", params={"cursor": "nope"}, headers=auth("cus_1"))
    assert bad.status_code == 400


async def test_moving_a_service_to_another_customer_drops_the_old_method(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    await register(client, auth, clock)
    card = await factories.card_method(session, "cus_1", now=clock.now())
    await session.commit()
    await client.put(
        "/v1/services/dom-1/payment-method",
        json={"payment_method_id": card.id},
        headers=auth("cus_1"),
    )
    moved = await register(client, auth, clock, customer_id="cus_9")
    assert moved.json()["payment_method"] is None
    assert (await client.get("/v1/services/dom-1", headers=auth("cus_1"))).status_code == 404


async def test_choices_are_announced_as_events(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    from app.events.models import Event

    await register(client, auth, clock)
    card = await factories.card_method(session, "cus_1", now=clock.now())
    await session.commit()
    me = auth("cus_1")
    await client.put(
        "/v1/services/dom-1/payment-method", json={"payment_method_id": card.id}, headers=me
    )
    rows = (await session.execute(select(Event).order_by(Event.sequence))).scalars().all()
    assert [(e.type, e.resource_id, e.sequence) for e in rows] == [
        ("service.payment_method_changed", "dom-1", 1),
        ("service.auto_renew_changed", "dom-1", 2),
    ]
    assert rows[0].data["payment_method_id"] == card.id


async def test_revoking_a_method_in_use_names_the_services_unless_detached(
    client: httpx.AsyncClient, auth: Auth, clock: FrozenClock, session: AsyncSession
) -> None:
    await register(client, auth, clock, "a")
    await register(client, auth, clock, "b")
    card = await factories.card_method(session, "cus_1", now=clock.now())
    await session.commit()
    me = auth("cus_1")
    await client.put("/v1/services/payment-method", json={"payment_method_id": card.id}, headers=me)

    refused = await client.delete(f"/v1/payment-methods/{card.id}", headers=me)
    assert refused.status_code == 409
    assert refused.json()["code"] == "payment_method_in_use"
    assert refused.json()["service_ids"] == ["a", "b"]
    still = (await client.get(f"/v1/payment-methods/{card.id}", headers=me)).json()
    assert still["status"] == "validated"

    revoked = await client.delete(f"/v1/payment-methods/{card.id}?detach=true", headers=me)
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    services = (await client.get("/v1/services", headers=me)).json()["data"]
    assert [(s["payment_method"], s["renewal_readiness"]) for s in services] == [
        (None, "no_payment_method"),
        (None, "no_payment_method"),
    ]
