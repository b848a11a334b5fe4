"""Pay now (POST /v1/renewals/{id}/pay) and 3-D Secure on-session, against the scripted
gateway: every state pay accepts or refuses, exactly once, the browser's links, the sweep
settling a payment the customer finished without coming back. The same against the real
sandbox over HTTP, real processes and a real browser: test_pay_processes.py,
tests/sandbox/test_browser.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import FrozenClock
from app.core.ids import new_id
from app.core.settings import Settings
from app.events.guard import check_no_secrets
from app.renewals import links
from app.renewals.engine.sweep import RenewalEngine
from app.renewals.models import Renewal
from app.sepa.models import SepaCollection
from app.services.models import Service
from tests import factories
from tests.renewals.fake_gateway import FakeGateway
from tests.renewals.test_engine import attempts, due_service, renewal_of
from tests.sepa.flow import sepa_customer

pytestmark = pytest.mark.usefixtures("sessionmaker")

Auth = Callable[..., dict[str, str]]


@pytest.fixture
async def client(app: FastAPI, gateway: FakeGateway) -> AsyncIterator[httpx.AsyncClient]:
    app.state.gateway = gateway
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@dataclass
class Desk:
    """What a test of pay now works with: the customer cus_1's client, the engine and its
    scripted gateway, the database and the clock."""

    session: AsyncSession
    clock: FrozenClock
    gateway: FakeGateway
    client: httpx.AsyncClient
    auth: Auth
    renewer: RenewalEngine
    settings: Settings

    async def swept(self, behaviour: str = "ok") -> tuple[Service, Renewal]:
        """A due service paid by a card that behaves so, after one sweep."""
        service = await due_service(
            self.session, self.clock, behaviour=behaviour, gateway=self.gateway
        )
        await self.renewer.sweep()
        return service, await renewal_of(self.session, service.id)

    async def planned(self) -> tuple[Service, Renewal]:
        """A due service whose renewal is planned, not charged yet."""
        service = await due_service(self.session, self.clock, gateway=self.gateway)
        await self.renewer.plan()
        return service, await renewal_of(self.session, service.id)

    async def pay(self, renewal: Renewal, **headers: str) -> httpx.Response:
        return await self.client.post(
            f"/v1/renewals/{renewal.id}/pay", headers={**self.auth("cus_1"), **headers}
        )


@pytest.fixture
def desk(
    session: AsyncSession,
    clock: FrozenClock,
    gateway: FakeGateway,
    client: httpx.AsyncClient,
    auth: Auth,
    renewer: RenewalEngine,
    settings: Settings,
) -> Desk:
    return Desk(session, clock, gateway, client, auth, renewer, settings)


def charged(gateway: FakeGateway) -> int:
    """Charges that took money, whichever way they were made or confirmed."""
    return sum(charge.status == "succeeded" for charge in gateway.intents.values())


async def expiry(session: AsyncSession, service_id: str) -> object:
    service = await session.get(Service, service_id, populate_existing=True)
    assert service is not None
    return service.expires_at


async def choose(client: httpx.AsyncClient, auth: Auth, service: Service, method_id: str) -> None:
    response = await client.put(
        f"/v1/services/{service.id}/payment-method",
        json={"payment_method_id": method_id},
        headers=auth("cus_1"),
    )
    assert response.status_code == 200, response.text


async def another_card(
    session: AsyncSession, clock: FrozenClock, gateway: FakeGateway, behaviour: str = "ok"
) -> str:
    card = await factories.card_method(session, "cus_1", now=clock.now())
    gateway.behaviours[card.gateway_payment_method_id or ""] = behaviour
    await session.commit()
    return card.id


async def test_a_due_renewal_is_paid_now_on_session(desk: Desk) -> None:
    service, renewal = await desk.planned()
    paid = await desk.pay(renewal)
    assert paid.status_code == 200, paid.text
    body = paid.json()
    assert (body["status"], body["next_action"]) == ("succeeded", None)
    assert [a["status"] for a in body["attempts"]] == ["succeeded"]
    [attempt] = await attempts(desk.session, renewal.id)
    assert attempt.on_session and attempt.idempotency_key.endswith(":attempt:1")
    assert await expiry(desk.session, service.id) == renewal.period_end
    assert charged(desk.gateway) == 1
    # Nothing is left to pay, and the sweep charges nothing.
    again = await desk.pay(renewal)
    assert (again.status_code, again.json()["code"]) == (409, "renewal_not_payable")
    assert again.headers["content-type"] == "application/problem+json"
    assert (await desk.renewer.sweep()).claimed == 0
    assert charged(desk.gateway) == 1


async def test_a_retrying_renewal_is_paid_after_choosing_another_card(desk: Desk) -> None:
    service = await due_service(
        desk.session, desk.clock, behaviour="soft_decline", gateway=desk.gateway
    )
    assert (await desk.renewer.sweep()).retry_scheduled == 1
    renewal = await renewal_of(desk.session, service.id)
    assert (renewal.status, renewal.failed_charge_count) == ("scheduled", 1)
    # Paying with the same card is declined again, and the answer says why.
    declined = await desk.pay(renewal)
    assert declined.status_code == 200, declined.text
    assert declined.json()["failure_code"] == "insufficient_funds"
    assert declined.json()["attempts"][-1]["status"] == "failed"
    await choose(
        desk.client, desk.auth, service, await another_card(desk.session, desk.clock, desk.gateway)
    )
    paid = await desk.pay(renewal)
    assert paid.json()["status"] == "succeeded", paid.text
    assert charged(desk.gateway) == 1
    assert await expiry(desk.session, service.id) == renewal.period_end


async def test_a_failed_renewal_is_paid_while_the_service_has_not_lapsed(desk: Desk) -> None:
    service = await due_service(
        desk.session, desk.clock, behaviour="hard_decline", gateway=desk.gateway
    )
    assert (await desk.renewer.sweep()).failed == 1
    renewal = await renewal_of(desk.session, service.id)
    # The customer unblocked the card with their bank, and pays with it.
    desk.gateway.behaviours[next(iter(desk.gateway.behaviours))] = "ok"
    paid = await desk.pay(renewal)
    assert paid.json()["status"] == "succeeded", paid.text

    # Past the expiry plus grace, a failed renewal has nothing left to pay for.
    lapsed = await due_service(
        desk.session, desk.clock, behaviour="hard_decline", gateway=desk.gateway
    )
    await desk.renewer.sweep()
    late = await renewal_of(desk.session, lapsed.id)
    desk.clock.advance(timedelta(days=5 + desk.settings.renewal_grace_days))
    refused = await desk.pay(late)
    assert (refused.status_code, refused.json()["code"]) == (409, "service_lapsed")
    assert charged(desk.gateway) == 1


async def test_authentication_confirms_the_same_charge_and_settles_on_return(desk: Desk) -> None:
    service, renewal = await desk.swept("auth")
    [off_session] = await attempts(desk.session, renewal.id)
    link = links.authenticate_url(desk.settings, renewal.id)
    shown = await desk.client.get(f"/v1/renewals/{renewal.id}", headers=desk.auth("cus_1"))
    assert shown.json()["next_action"] == {"type": "authenticate_payment", "url": link}

    # The browser follows the link: the same charge, confirmed on-desk.session, then its page.
    path = urlsplit(link)
    followed = await desk.client.get(f"{path.path}?{path.query}")
    assert followed.status_code == 303, followed.text
    pi = off_session.gateway_charge_id
    assert followed.headers["location"] == f"https://gw/3ds/{pi}"
    [_, waiting] = await attempts(desk.session, renewal.id)
    assert (waiting.status, waiting.on_session, waiting.gateway_charge_id) == (
        "requires_action",
        True,
        pi,
    )
    # Following it (or paying) again sends nothing new while the page waits.
    assert (await desk.client.get(f"{path.path}?{path.query}")).headers["location"] == (
        f"https://gw/3ds/{pi}"
    )
    again = await desk.pay(renewal)
    assert again.json()["status"] == "requires_action"
    assert again.json()["next_action"]["url"] == link
    assert len(await attempts(desk.session, renewal.id)) == 2

    desk.gateway.complete_authentication(pi or "")
    back = urlsplit(links.return_url(desk.settings, renewal.id))
    # The desk.gateway adds its own parameters; they are never believed, only the charge is.
    returned = await desk.client.get(
        f"{back.path}?{back.query}&payment_intent={pi}&redirect_status=failed"
    )
    assert returned.status_code == 303
    landed = urlsplit(returned.headers["location"])
    assert f"{landed.scheme}://{landed.netloc}{landed.path}" == "http://127.0.0.1:8000/"
    assert parse_qs(landed.query) == {"renewal_id": [renewal.id], "status": ["succeeded"]}
    assert await expiry(desk.session, service.id) == renewal.period_end
    # Coming back twice, or a sweep after it, settles nothing more.
    await desk.client.get(f"{back.path}?{back.query}")
    assert (await desk.renewer.sweep()).succeeded == 0
    assert await expiry(desk.session, service.id) == renewal.period_end
    assert charged(desk.gateway) == 1


async def test_a_failed_authentication_waits_for_the_customer_who_pays_with_another_card(
    desk: Desk,
) -> None:
    service, renewal = await desk.swept("auth")
    paying = await desk.pay(renewal)
    assert paying.json()["status"] == "requires_action"
    [first, _] = await attempts(desk.session, renewal.id)
    desk.gateway.complete_authentication(first.gateway_charge_id or "", succeed=False)
    back = urlsplit(links.return_url(desk.settings, renewal.id))
    returned = await desk.client.get(f"{back.path}?{back.query}")
    assert parse_qs(urlsplit(returned.headers["location"]).query)["status"] == ["requires_action"]
    shown = (await desk.client.get(f"/v1/renewals/{renewal.id}", headers=desk.auth("cus_1"))).json()
    assert (shown["status"], shown["failure_code"]) == ("requires_action", "authentication_failed")
    assert shown["next_action"]["type"] == "authenticate_payment"
    service_shown = (
        await desk.client.get(f"/v1/services/{service.id}", headers=desk.auth("cus_1"))
    ).json()
    assert service_shown["renewal_readiness"] == "requires_authentication"
    assert "did not succeed" in service_shown["renewal_readiness_message"]
    assert shown["attempts"][-1]["status"] == "failed"
    assert await expiry(desk.session, service.id) == renewal.period_start

    await choose(
        desk.client, desk.auth, service, await another_card(desk.session, desk.clock, desk.gateway)
    )
    paid = await desk.pay(renewal)
    assert paid.json()["status"] == "succeeded", paid.text
    assert charged(desk.gateway) == 1
    # The charge whose authentication failed is confirmed again, not left beside a new one:
    # its client secret went through the browser and could still take the money.
    charges = {a.gateway_charge_id for a in await attempts(desk.session, renewal.id)}
    assert charges == {first.gateway_charge_id}


async def test_another_card_confirms_the_waiting_charge_instead_of_a_second_one(desk: Desk) -> None:
    service, renewal = await desk.swept("auth")
    await desk.pay(renewal)
    await choose(
        desk.client, desk.auth, service, await another_card(desk.session, desk.clock, desk.gateway)
    )
    paid = await desk.pay(renewal)
    assert paid.json()["status"] == "succeeded", paid.text
    charges = {a.gateway_charge_id for a in await attempts(desk.session, renewal.id)}
    assert len(charges) == 1  # one payment at the desk.gateway, whichever page is completed
    assert charged(desk.gateway) == 1


async def test_the_sweep_settles_an_authentication_the_customer_never_came_back_from(
    desk: Desk,
) -> None:
    service, renewal = await desk.swept("auth")
    await desk.pay(renewal)
    # Still on the page: the sweep asks and leaves it waiting.
    assert (await desk.renewer.sweep()).succeeded == 0
    [_, waiting] = await attempts(desk.session, renewal.id)
    desk.gateway.complete_authentication(waiting.gateway_charge_id or "")
    assert (await desk.renewer.sweep()).succeeded == 1
    assert (await renewal_of(desk.session, service.id)).status == "succeeded"
    assert await expiry(desk.session, service.id) == renewal.period_end
    assert (await desk.renewer.sweep()).succeeded == 0


async def test_a_lost_answer_to_pay_now_is_reconciled_under_the_same_key(desk: Desk) -> None:
    service, renewal = await desk.planned()
    desk.gateway.behaviours[next(iter(desk.gateway.behaviours))] = "lost_response"
    lost = await desk.pay(renewal)
    assert lost.status_code == 200, lost.text
    assert lost.json()["status"] == "processing"  # the answer will be asked for again
    # Under its lease nobody touches it; past it, a sweep re-sends the same request.
    assert (await desk.renewer.sweep()).claimed == 0
    desk.clock.advance(timedelta(seconds=desk.settings.renewal_lease_seconds + 1))
    assert (await desk.renewer.sweep()).reconciled == 1
    [attempt] = await attempts(desk.session, renewal.id)
    assert (attempt.status, attempt.on_session, attempt.reconciled) == ("succeeded", True, True)
    assert desk.gateway.calls == [attempt.idempotency_key] * 2
    assert charged(desk.gateway) == 1
    assert await expiry(desk.session, service.id) == renewal.period_end


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [("ok", "renewal_not_payable"), ("lost_response", "renewal_payment_in_progress")],
)
async def test_pay_refuses_what_there_is_nothing_to_pay_for(
    desk: Desk, behaviour: str, code: str
) -> None:
    service = await due_service(desk.session, desk.clock, behaviour=behaviour, gateway=desk.gateway)
    await desk.renewer.sweep()  # succeeded, or processing under its lease (the answer lost)
    renewal = await renewal_of(desk.session, service.id)
    refused = await desk.pay(renewal)
    assert (refused.status_code, refused.json()["code"]) == (409, code), refused.text
    assert len(desk.gateway.calls) == 1


async def test_pay_refuses_other_customers_unknown_ids_and_bad_input(desk: Desk) -> None:
    service, renewal = await desk.planned()
    for path, headers, status, code in [
        (f"/v1/renewals/{renewal.id}/pay", desk.auth("cus_2"), 404, "renewal_not_found"),
        ("/v1/renewals/ren_nope/pay", desk.auth("cus_1"), 404, "renewal_not_found"),
        (f"/v1/renewals/{'x' * 65}/pay", desk.auth("cus_1"), 422, "validation_error"),
        (f"/v1/renewals/{renewal.id}/pay", {}, 401, "missing_token"),
    ]:
        response = await desk.client.post(path, headers=headers)
        assert (response.status_code, response.json()["code"]) == (status, code)
        assert response.headers["content-type"] == "application/problem+json"
    bad_key = await desk.client.post(
        f"/v1/renewals/{renewal.id}/pay",
        headers={**desk.auth("cus_1"), "Idempotency-Key": "a b"},
    )
    assert (bad_key.status_code, bad_key.json()["code"]) == (400, "invalid_idempotency_key")
    # The browser's links: a wrong or missing token opens nothing.
    for step in ("authenticate", "payment-return"):
        wrong = await desk.client.get(f"/v1/renewals/{renewal.id}/{step}?token=abc")
        assert (wrong.status_code, wrong.json()["code"]) == (404, "renewal_not_found")
        missing = await desk.client.get(f"/v1/renewals/{renewal.id}/{step}")
        assert missing.status_code == 422
    assert desk.gateway.calls == []
    assert (await renewal_of(desk.session, service.id)).status == "scheduled"


async def test_a_sepa_service_is_paid_by_its_collection_not_now(desk: Desk) -> None:
    made = await sepa_customer(desk.client, desk.auth, desk.clock.now(), service_id="sepa-1")
    service = await desk.session.get_one(Service, made["service"]["id"])
    run = await desk.client.post("/v1/admin/renewals/run", headers=desk.auth("ops", admin=True))
    assert run.status_code == 200, run.text
    renewal = await renewal_of(desk.session, service.id)
    refused = await desk.pay(renewal)
    assert refused.status_code == 409, refused.text
    # The collection is pre-notified (under way), but what the customer can do is choose a
    # card: that is what the answer says.
    assert refused.json()["code"] == "pay_now_card_only"
    [collection] = (await desk.session.execute(select(SepaCollection))).scalars().all()
    assert collection.status == "pending"

    # They choose a card: the collection not yet filed is taken back, and pay now works.
    card = await another_card(desk.session, desk.clock, desk.gateway)
    await choose(desk.client, desk.auth, service, card)
    await desk.session.refresh(collection)
    assert (collection.status, collection.cancel_reason) == ("canceled", "payment_method_changed")
    paid = await desk.pay(renewal)
    assert paid.json()["status"] == "succeeded", paid.text
    assert charged(desk.gateway) == 1


async def test_an_idempotency_key_replays_the_first_answer(desk: Desk) -> None:
    _, renewal = await desk.planned()
    headers = {**desk.auth("cus_1"), "Idempotency-Key": "click-1"}
    first = await desk.client.post(f"/v1/renewals/{renewal.id}/pay", headers=headers)
    second = await desk.client.post(f"/v1/renewals/{renewal.id}/pay", headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.content == first.content
    assert charged(desk.gateway) == 1


async def test_two_clicks_at_once_charge_once(desk: Desk) -> None:
    service, renewal = await desk.planned()
    url = f"/v1/renewals/{renewal.id}/pay"
    clicks = [desk.client.post(url, headers=desk.auth("cus_1")) for _ in "ab"]
    if desk.session.get_bind().dialect.name == "postgresql":
        # And a sweep at the same moment: the renewal's row lock decides. SQLite has no
        # row locks (it runs one replica): there the attempt's unique key stops a second
        # charge, and the loser's transaction fails.
        *answers, _ = await asyncio.gather(*clicks, desk.renewer.sweep())
    else:
        answers = await asyncio.gather(*clicks)
    statuses = sorted(a.status_code for a in answers)
    assert statuses in ([200, 409], [409, 409]), [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json()["code"] in ("renewal_payment_in_progress", "renewal_not_payable")
        else:
            assert answer.json()["status"] == "succeeded"
    assert charged(desk.gateway) == 1
    assert (await renewal_of(desk.session, service.id)).status == "succeeded"


async def test_pay_is_rate_limited_per_customer(
    session: AsyncSession,
    clock: FrozenClock,
    gateway: FakeGateway,
    make_app: Callable[..., FastAPI],
    auth: Auth,
    renewer: RenewalEngine,
) -> None:
    service = await due_service(session, clock, gateway=gateway)
    await renewer.plan()
    renewal = await renewal_of(session, service.id)
    app = make_app(renewal_pay_rate_limit=2)
    async with app.router.lifespan_context(app):
        app.state.gateway = gateway
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            url = f"/v1/renewals/{renewal.id}/pay"
            codes = [(await client.post(url, headers=auth("cus_1"))).status_code for _ in "abc"]
            assert codes == [200, 409, 429]
            limited = await client.post(url, headers=auth("cus_1"))
            assert limited.json()["code"] == "rate_limited"
            assert int(limited.headers["Retry-After"]) > 0
            # Another customer has a limit of their own.
            other = await client.post(url, headers=auth("cus_2"))
            assert other.status_code == 404
    # Another replica on the same database counts the same tries.
    replica = make_app(renewal_pay_rate_limit=2)
    async with replica.router.lifespan_context(replica):
        replica.state.gateway = gateway
        transport = httpx.ASGITransport(app=replica)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            again = await client.post(f"/v1/renewals/{renewal.id}/pay", headers=auth("cus_1"))
            assert again.status_code == 429, again.text


async def test_a_payment_the_gateway_never_took_leaves_the_renewal_as_it_was(desk: Desk) -> None:
    service, renewal = await desk.swept("auth")
    card = await another_card(desk.session, desk.clock, desk.gateway, behaviour="rate_limited")
    await choose(desk.client, desk.auth, service, card)
    headers = {**desk.auth("cus_1"), "Idempotency-Key": "k-1"}
    refused = await desk.client.post(f"/v1/renewals/{renewal.id}/pay", headers=headers)
    assert (refused.status_code, refused.json()["code"]) == (503, "gateway_unavailable")
    assert "Retry-After" in refused.headers
    shown = (await desk.client.get(f"/v1/renewals/{renewal.id}", headers=desk.auth("cus_1"))).json()
    assert shown["status"] == "requires_action"
    assert shown["attempts"][-1]["status"] == "not_sent"
    # The key is free again for the retry.
    desk.gateway.behaviours[next(reversed(desk.gateway.behaviours))] = "ok"
    paid = await desk.client.post(f"/v1/renewals/{renewal.id}/pay", headers=headers)
    assert paid.json()["status"] == "succeeded", paid.text


def test_the_customer_area_url_is_validated_and_used(settings: Settings) -> None:
    with pytest.raises(ValidationError):
        Settings(payment_return_url="javascript:alert(1)")
    with pytest.raises(ValidationError):
        Settings(payment_return_url="/billing")
    configured = settings.model_copy(
        update={"payment_return_url": "https://my.example.com/billing?tab=renewals"}
    )
    assert links.customer_area_url(configured, "ren_1", "succeeded") == (
        "https://my.example.com/billing?tab=renewals&renewal_id=ren_1&status=succeeded"
    )


def test_the_links_never_look_like_a_card_number_in_events(settings: Settings) -> None:
    """The link goes out in `renewal.requires_action`, whose last check refuses digit runs
    that pass Luhn: the token is letters only, so no renewal's link can trip it."""
    for _ in range(2000):
        renewal_id = new_id("ren")
        token = links.token(settings, renewal_id)
        assert token.isalpha() and len(token) == 64
        check_no_secrets({"next_action_url": links.authenticate_url(settings, renewal_id)})
        assert links.token_valid(settings, renewal_id, token)
        assert not links.token_valid(settings, f"{renewal_id}x", token)


async def test_a_telling_decline_reaches_the_customer_as_generic(desk: Desk) -> None:
    # stolen_card would tell a card tester the guess was right: the customer's views say
    # generic_decline (with the same sentence), the admin's renewal list the precise code.
    service, renewal = await desk.swept("hard_decline")
    assert renewal.failure_code == "stolen_card"
    mine = (await desk.client.get(f"/v1/renewals/{renewal.id}", headers=desk.auth("cus_1"))).json()
    assert mine["failure_code"] == "generic_decline"
    assert [a["decline_code"] for a in mine["attempts"]] == ["generic_decline"]
    assert "stolen" not in str(mine) and "refuse" not in mine["failure_reason"]
    shown = (await desk.client.get(f"/v1/services/{service.id}", headers=desk.auth("cus_1"))).json()
    assert shown["current_renewal"]["failure_code"] == "generic_decline"
    admin = desk.auth("ops", admin=True)
    listed = await desk.client.get(
        "/v1/admin/renewals", params={"service_id": service.id}, headers=admin
    )
    [precise] = listed.json()["data"]
    assert precise["failure_code"] == "stolen_card"
    assert [a["decline_code"] for a in precise["attempts"]] == ["stolen_card"]
