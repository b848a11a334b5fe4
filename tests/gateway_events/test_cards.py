"""What Stripe reports about cards: the card updater's new details, a detached card, and a
3-D Secure set-up that finished while the customer's page was closed."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import FrozenClock
from app.core.settings import Settings
from app.gateways.stripe_events import card_of
from app.payment_methods import gateway_updates
from app.payment_methods.models import PaymentMethod
from app.services.expiry_watch import announce_expiring_cards
from tests import factories
from tests.gateway_events.stripe_webhooks import (
    card_payment_method,
    deliver,
    event,
    outbox,
    setup_intent,
)
from tests.payment_methods.card_flows import (
    THREE_D_SECURE,
    Auth,
    add_card,
    answer_challenge,
    new_customer,
)


async def _method(session: AsyncSession, method_id: str) -> PaymentMethod:
    query = select(PaymentMethod).where(PaymentMethod.id == method_id)
    return (await session.execute(query.execution_options(populate_existing=True))).scalar_one()


async def _readiness(client: httpx.AsyncClient, auth: Auth, service_id: str) -> str:
    response = await client.get(f"/v1/services/{service_id}", headers=auth("cus_1"))
    assert response.status_code == 200, response.text
    readiness: str = response.json()["renewal_readiness"]
    return readiness


async def test_the_card_updater_revives_an_expired_card_and_its_service_can_renew(
    client: httpx.AsyncClient, auth: Auth, session: AsyncSession, clock: FrozenClock
) -> None:
    now = clock.now()
    card = await factories.card_method(
        session, "cus_1", now=now, gateway_pm="pm_updater", exp=(10, 2026)
    )
    # Validated once (as every card that paid is), expired since.
    card.status, card.card_fingerprint, card.validated_at = "expired", "fp_updater", now
    await factories.service(session, "cus_1", now=now, service_id="svc-upd", method=card)
    await session.commit()
    assert await _readiness(client, auth, "svc-upd") == "payment_method_expired"

    document = event(
        "payment_method.automatically_updated",
        card_payment_method("pm_updater", last4="1881", exp=(10, 2029), brand="mastercard"),
    )
    response = await deliver(client, document)
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "applied"

    updated = await _method(session, card.id)
    assert (updated.status, updated.card_brand, updated.card_last4) == (
        "validated",
        "mastercard",
        "1881",
    )
    assert (updated.card_exp_month, updated.card_exp_year) == (10, 2029)
    assert updated.card_fingerprint == "fp_updater"  # the card row stays the same card
    assert await _readiness(client, auth, "svc-upd") == "ok"
    [announced] = await outbox(session, "payment_method.updated")
    assert announced.resource_id == card.id
    assert announced.data["status"] == "validated"
    assert announced.data["card"] == {
        "brand": "mastercard",
        "last4": "1881",
        "exp_month": 10,
        "exp_year": 2029,
    }


async def test_an_update_that_changes_nothing_announces_nothing(
    client: httpx.AsyncClient, session: AsyncSession, clock: FrozenClock
) -> None:
    await factories.card_method(session, "cus_1", now=clock.now(), gateway_pm="pm_same")
    await session.commit()
    # payment_method.updated also fires for billing details, which we do not keep.
    document = event("payment_method.updated", card_payment_method("pm_same"))
    response = await deliver(client, document)
    assert response.json()["outcome"] == "unchanged"
    assert await outbox(session, "payment_method.updated") == []


async def test_an_expired_card_registered_again_is_not_revived_beside_the_new_one(
    client: httpx.AsyncClient, session: AsyncSession, clock: FrozenClock
) -> None:
    now = clock.now()
    old = await factories.card_method(session, "cus_1", now=now, gateway_pm="pm_old", exp=(9, 2026))
    old.status, old.card_fingerprint = "expired", "fp_same_card"
    new = await factories.card_method(session, "cus_1", now=now, gateway_pm="pm_new")
    new.card_fingerprint = "fp_same_card"
    await session.commit()
    document = event(
        "payment_method.automatically_updated", card_payment_method("pm_old", exp=(9, 2029))
    )
    response = await deliver(client, document)
    assert response.status_code == 200, response.text  # one live registration per card
    kept = await _method(session, old.id)
    assert (kept.status, kept.card_exp_year) == ("expired", 2029)


async def test_a_card_that_is_not_ours_or_not_a_card_is_acknowledged(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    unknown = await deliver(client, event("payment_method.updated", card_payment_method("pm_no")))
    assert unknown.json()["outcome"] == "not_ours"
    sepa = {"id": "pm_sepa", "object": "payment_method", "type": "sepa_debit", "sepa_debit": {}}
    response = await deliver(client, event("payment_method.updated", sepa))
    assert response.json()["outcome"] == "not_ours"


async def test_a_new_expiry_from_the_updater_is_warned_about_again(
    session: AsyncSession, clock: FrozenClock, settings: Settings
) -> None:
    """The `expiring` warning is per expiry date: one for the old date does not silence the
    new one when that too comes before the charge."""
    now = clock.now()
    # Charged on 2027-01-19; the card works until 2026-11-30, then (updated) until 2026-12-31.
    card = await factories.card_method(session, "cus_1", now=now, gateway_pm="pm_w", exp=(11, 2026))
    await factories.service(session, "cus_1", now=now, method=card, expires_in=timedelta(days=63))
    await session.commit()
    assert await announce_expiring_cards(session, now=now, settings=settings) == 1
    await session.commit()
    assert await announce_expiring_cards(session, now=now, settings=settings) == 0

    new_card = card_of(card_payment_method("pm_w", exp=(12, 2026)))
    assert new_card is not None
    assert await gateway_updates.card_updated(session, "pm_w", new_card, now) == "applied"
    await session.commit()
    assert await announce_expiring_cards(session, now=now, settings=settings) == 1
    await session.commit()
    warned = [e.data["card"]["exp_year"] for e in await outbox(session, "payment_method.expiring")]
    assert warned == [2026, 2026]
    months = [e.data["card"]["exp_month"] for e in await outbox(session, "payment_method.expiring")]
    assert months == [11, 12]


async def test_a_detached_card_fails_and_its_services_say_so(
    client: httpx.AsyncClient, auth: Auth, session: AsyncSession, clock: FrozenClock
) -> None:
    now = clock.now()
    card = await factories.card_method(session, "cus_1", now=now, gateway_pm="pm_detached")
    await factories.service(session, "cus_1", now=now, service_id="svc-det", method=card)
    await session.commit()
    assert await _readiness(client, auth, "svc-det") == "ok"

    detached = card_payment_method("pm_detached")
    detached["customer"] = None
    response = await deliver(client, event("payment_method.detached", detached))
    assert response.json()["outcome"] == "applied"
    method = await _method(session, card.id)
    assert (method.status, method.failure_code) == ("failed", "payment_method_detached")
    # It stays on the service, which says what to fix.
    assert await _readiness(client, auth, "svc-det") == "payment_method_failed"
    [failed] = await outbox(session, "payment_method.failed")
    assert failed.data["failure_code"] == "payment_method_detached"

    again = await deliver(client, event("payment_method.detached", detached))
    assert again.json()["outcome"] == "unchanged"  # another event id, nothing left to do
    # A card the gateway dropped is not brought back by a later update either.
    update = await deliver(
        client, event("payment_method.updated", card_payment_method("pm_detached", exp=(1, 2031)))
    )
    assert update.json()["outcome"] == "unchanged"


async def test_a_revoked_card_stays_revoked_when_detached(
    client: httpx.AsyncClient, session: AsyncSession, clock: FrozenClock
) -> None:
    card = await factories.card_method(
        session, "cus_1", now=clock.now(), gateway_pm="pm_rev", status="revoked"
    )
    await session.commit()
    response = await deliver(
        client, event("payment_method.detached", card_payment_method("pm_rev"))
    )
    assert response.json()["outcome"] == "unchanged"
    assert (await _method(session, card.id)).status == "revoked"


async def _pending_3ds_card(
    client: httpx.AsyncClient, auth: Auth
) -> tuple[str, str, dict[str, str]]:
    customer = new_customer()
    created = await add_card(client, auth, customer, THREE_D_SECURE)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "requires_action"
    return customer, body["id"], body["next_action"]


async def _setup_id(session: AsyncSession, method_id: str) -> str:
    setup = (await _method(session, method_id)).gateway_setup_id
    assert setup is not None
    return setup


async def test_3ds_completed_while_the_page_was_closed_validates_the_card(
    client: httpx.AsyncClient, auth: Auth, session: AsyncSession
) -> None:
    customer, method_id, next_action = await _pending_3ds_card(client, auth)
    await answer_challenge(client, next_action["url"], "complete")
    # The customer closed the tab: no call to validate. Stripe tells us instead.
    setup = await _setup_id(session, method_id)
    response = await deliver(
        client, event("setup_intent.succeeded", setup_intent(setup, "succeeded"))
    )
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "applied"

    shown = await client.get(f"/v1/payment-methods/{method_id}", headers=auth(customer))
    assert shown.json()["status"] == "validated"
    assert shown.json()["next_action"] is None
    [validated] = await outbox(session, "payment_method.validated")
    assert validated.resource_id == method_id
    # The SPA's late call finds nothing left to do.
    late = await client.post(f"/v1/payment-methods/{method_id}/validate", headers=auth(customer))
    assert late.status_code == 409


async def test_3ds_failed_while_the_page_was_closed_fails_the_card(
    client: httpx.AsyncClient, auth: Auth, session: AsyncSession
) -> None:
    customer, method_id, next_action = await _pending_3ds_card(client, auth)
    await answer_challenge(client, next_action["url"], "fail")
    setup = await _setup_id(session, method_id)
    document = event("setup_intent.setup_failed", setup_intent(setup, "requires_payment_method"))
    response = await deliver(client, document)
    assert response.json()["outcome"] == "applied"
    shown = await client.get(f"/v1/payment-methods/{method_id}", headers=auth(customer))
    assert shown.json()["status"] == "failed"
    assert len(await outbox(session, "payment_method.failed")) == 1


async def test_a_setup_event_before_the_customer_finished_changes_nothing(
    client: httpx.AsyncClient, auth: Auth, session: AsyncSession
) -> None:
    """The event is the trigger; the gateway's set-up as it stands decides (the same call
    `validate` makes), so an early or forged-by-mistake claim cannot validate a card."""
    customer, method_id, _ = await _pending_3ds_card(client, auth)
    setup = await _setup_id(session, method_id)
    response = await deliver(
        client, event("setup_intent.succeeded", setup_intent(setup, "succeeded"))
    )
    assert response.json()["outcome"] == "unchanged"
    shown = await client.get(f"/v1/payment-methods/{method_id}", headers=auth(customer))
    assert shown.json()["status"] == "requires_action"


async def test_a_setup_event_for_a_card_already_validated_or_unknown_is_acknowledged(
    client: httpx.AsyncClient, auth: Auth, session: AsyncSession
) -> None:
    customer, method_id, next_action = await _pending_3ds_card(client, auth)
    await answer_challenge(client, next_action["url"], "complete")
    validated = await client.post(
        f"/v1/payment-methods/{method_id}/validate", headers=auth(customer)
    )
    assert validated.json()["status"] == "validated"
    setup = await _setup_id(session, method_id)
    late = await deliver(client, event("setup_intent.succeeded", setup_intent(setup, "succeeded")))
    assert late.json()["outcome"] == "unchanged"
    assert len(await outbox(session, "payment_method.validated")) == 1
    other = await deliver(
        client, event("setup_intent.succeeded", setup_intent("seti_no", "succeeded"))
    )
    assert other.json()["outcome"] == "not_ours"
