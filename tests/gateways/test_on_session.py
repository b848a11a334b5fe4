"""On-session payments through the real adapter against a scripted Stripe: "pay now" and
authenticating a renewal's payment that an off-session attempt could not complete."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.gateways.port import AuthenticationRequired, CardDeclined, Charge
from app.gateways.stripe import StripeGateway
from tests.gateways.scripted_stripe import API_KEY, AUTH_PM, BASE_URL, DECLINED_PM, ScriptedStripe

RETURN_URL = "https://customer-area.test/renewals/ren_1/return"


@pytest.fixture
def stripe() -> ScriptedStripe:
    return ScriptedStripe()


@pytest.fixture
async def gateway(stripe: ScriptedStripe) -> AsyncIterator[StripeGateway]:
    adapter = StripeGateway(api_key=API_KEY, base_url=BASE_URL, transport=stripe.transport())
    yield adapter
    await adapter.aclose()


async def off_session_needing_authentication(gateway: StripeGateway) -> str:
    with pytest.raises(AuthenticationRequired) as caught:
        await gateway.charge_off_session(
            gateway_customer_id="cus_1",
            gateway_payment_method_id=f"{AUTH_PM}_1",
            amount=1299,
            currency="EUR",
            idempotency_key="renewal:ren_1:attempt:1",
            metadata={"renewal_id": "ren_1"},
        )
    assert caught.value.charge_id is not None
    assert caught.value.action_url is None  # off-session: nobody to send to a page
    return caught.value.charge_id


async def test_the_customer_authenticates_the_renewals_own_payment(
    gateway: StripeGateway, stripe: ScriptedStripe
) -> None:
    charge_id = await off_session_needing_authentication(gateway)
    waiting = await gateway.get_charge(charge_id)
    assert (waiting.status, waiting.failure_code) == ("failed", "authentication_required")

    confirmed = await gateway.confirm_on_session(
        charge_id, return_url=RETURN_URL, idempotency_key="renewal:ren_1:confirm:1"
    )
    assert (confirmed.charge_id, confirmed.status) == (charge_id, "requires_action")
    assert confirmed.action_url == f"https://hooks.stripe.test/3ds/{charge_id}"
    # A double click sends the same key: the first answer, not a second confirmation.
    again = await gateway.confirm_on_session(
        charge_id, return_url=RETURN_URL, idempotency_key="renewal:ren_1:confirm:1"
    )
    assert again == confirmed

    stripe.complete_authentication(charge_id)
    back = await gateway.get_charge(charge_id)
    assert back.status == "succeeded"
    assert back.idempotency_key == "renewal:ren_1:attempt:1"  # found again by the first key
    assert await gateway.find_charge("renewal:ren_1:attempt:1") == back
    assert [c["id"] for c in stripe.charges()] == [charge_id]


async def test_a_failed_authentication_can_be_paid_with_another_card(
    gateway: StripeGateway, stripe: ScriptedStripe
) -> None:
    charge_id = await off_session_needing_authentication(gateway)
    await gateway.confirm_on_session(charge_id, return_url=RETURN_URL, idempotency_key="c-1")
    stripe.complete_authentication(charge_id, succeed=False)
    failed = await gateway.get_charge(charge_id)
    assert (failed.status, failed.failure_code) == (
        "failed",
        "payment_intent_authentication_failure",
    )

    paid = await gateway.confirm_on_session(
        charge_id,
        return_url=RETURN_URL,
        idempotency_key="c-2",
        gateway_payment_method_id="pm_ok_other",
    )
    assert (paid.status, paid.gateway_payment_method_id) == ("succeeded", "pm_ok_other")
    assert [c["id"] for c in stripe.charges()] == [charge_id]  # the same intent, once


async def pay_now(gateway: StripeGateway, card: str, key: str) -> Charge:
    return await gateway.charge_on_session(
        gateway_customer_id="cus_1",
        gateway_payment_method_id=card,
        amount=1299,
        currency="EUR",
        idempotency_key=key,
        return_url=RETURN_URL,
        metadata={"renewal_id": "ren_1"},
    )


async def test_pay_now(gateway: StripeGateway, stripe: ScriptedStripe) -> None:
    assert (await pay_now(gateway, "pm_ok_1", "pay-1")).status == "succeeded"
    with pytest.raises(CardDeclined) as caught:
        await pay_now(gateway, f"{DECLINED_PM}_1", "pay-2")
    assert caught.value.decline_code == "insufficient_funds"
    needs_3ds = await pay_now(gateway, f"{AUTH_PM}_2", "pay-3")
    assert needs_3ds.status == "requires_action"
    assert needs_3ds.action_url is not None
    [intent] = [i for i in stripe.intents.values() if i["id"] == needs_3ds.charge_id]
    assert intent["off_session"] is False  # the customer is present: 3-D Secure can happen
    stripe.complete_authentication(needs_3ds.charge_id)
    assert (await gateway.get_charge(needs_3ds.charge_id)).status == "succeeded"
    assert len(stripe.charges()) == 2
