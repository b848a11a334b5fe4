"""Every object the sandbox returns has the fields Stripe always returns for 2025-03-31.basil
(null where empty), and no field the official SDK's types for that version do not know.

The field lists are those of the objects in Stripe's published OpenAPI fixtures for that
version (the stripe/openapi repository, `openapi/fixtures3.json` of April 2025).
"""

from __future__ import annotations

from typing import Any

import httpx
import stripe

from tests.sandbox.conftest import RETURN_URL, card_form

ALWAYS = {
    "customer": {
        "address", "balance", "created", "currency", "default_source", "delinquent",
        "description", "discount", "email", "id", "invoice_prefix", "invoice_settings",
        "livemode", "metadata", "name", "next_invoice_sequence", "object", "phone",
        "preferred_locales", "shipping", "tax_exempt", "test_clock",
    },
    "payment_method": {
        "allow_redisplay", "billing_details", "card", "created", "customer", "id", "livemode",
        "metadata", "object", "type",
    },
    "setup_intent": {
        "application", "automatic_payment_methods", "cancellation_reason", "client_secret",
        "created", "customer", "description", "flow_directions", "id", "last_setup_error",
        "latest_attempt", "livemode", "mandate", "metadata", "next_action", "object",
        "on_behalf_of", "payment_method", "payment_method_configuration_details",
        "payment_method_options", "payment_method_types", "single_use_mandate", "status",
        "usage",
    },
    "payment_intent": {
        "amount", "amount_capturable", "amount_details", "amount_received", "application",
        "application_fee_amount", "automatic_payment_methods", "canceled_at",
        "cancellation_reason", "capture_method", "client_secret", "confirmation_method",
        "created", "currency", "customer", "description", "id", "last_payment_error",
        "latest_charge", "livemode", "metadata", "next_action", "object", "on_behalf_of",
        "payment_method", "payment_method_configuration_details", "payment_method_options",
        "payment_method_types", "processing", "receipt_email", "review", "setup_future_usage",
        "shipping", "source", "statement_descriptor", "statement_descriptor_suffix", "status",
        "transfer_data", "transfer_group",
    },
    "charge": {
        "amount", "amount_captured", "amount_refunded", "application", "application_fee",
        "application_fee_amount", "balance_transaction", "billing_details",
        "calculated_statement_descriptor", "captured", "created", "currency", "customer",
        "description", "disputed", "failure_balance_transaction", "failure_code",
        "failure_message", "fraud_details", "id", "livemode", "metadata", "object",
        "on_behalf_of", "outcome", "paid", "payment_intent", "payment_method",
        "payment_method_details", "receipt_email", "receipt_number", "receipt_url", "refunded",
        "refunds", "review", "shipping", "source", "source_transfer", "statement_descriptor",
        "statement_descriptor_suffix", "status", "transfer_data", "transfer_group",
    },
    "refund": {
        "amount", "balance_transaction", "charge", "created", "currency", "destination_details",
        "id", "metadata", "object", "payment_intent", "reason", "receipt_number",
        "source_transfer_reversal", "status", "transfer_reversal",
    },
    "dispute": {
        "amount", "balance_transactions", "charge", "created", "currency",
        "enhanced_eligibility_types", "evidence", "evidence_details", "id",
        "is_charge_refundable", "livemode", "metadata", "object", "payment_intent",
        "payment_method_details", "reason", "status",
    },
    "event": {
        "api_version", "created", "data", "id", "livemode", "object", "pending_webhooks",
        "request", "type",
    },
}  # fmt: skip
CARD = {
    "brand", "checks", "country", "display_brand", "exp_month", "exp_year", "fingerprint",
    "funding", "generated_from", "last4", "networks", "regulated_status",
    "three_d_secure_usage", "wallet",
}  # fmt: skip
OUTCOME = {
    "advice_code", "network_advice_code", "network_decline_code", "network_status", "reason",
    "seller_message", "type",
}  # fmt: skip
SDK_CLASSES: dict[str, type] = {
    "customer": stripe.Customer,
    "payment_method": stripe.PaymentMethod,
    "setup_intent": stripe.SetupIntent,
    "payment_intent": stripe.PaymentIntent,
    "charge": stripe.Charge,
    "refund": stripe.Refund,
    "dispute": stripe.Dispute,
    "event": stripe.Event,
}


def check(kind: str, body: dict[str, Any]) -> None:
    assert body["object"] == kind
    assert ALWAYS[kind] <= set(body), f"{kind} lacks {sorted(ALWAYS[kind] - set(body))}"
    known = set(SDK_CLASSES[kind].__annotations__)
    assert set(body) <= known, f"{kind} has fields the SDK does not know: {set(body) - known}"


async def test_every_object_has_stripes_fields(api: httpx.AsyncClient) -> None:
    customer = (await api.post("/v1/customers", data={"email": "a@b.test"})).json()
    check("customer", customer)
    method = (await api.post("/v1/payment_methods", data=card_form("4000000000000259"))).json()
    check("payment_method", method)
    assert set(method["card"]) >= CARD
    assert set(method["card"]) <= set(stripe.PaymentMethod.Card.__annotations__)

    await api.post(f"/v1/payment_methods/{method['id']}/attach", data={"customer": customer["id"]})
    waiting = await api.post(
        "/v1/setup_intents",
        data={
            "customer": customer["id"],
            "payment_method": "pm_card_authenticationRequired",
            "confirm": "true",
            "return_url": RETURN_URL,
        },
    )
    check("setup_intent", waiting.json())
    assert waiting.json()["next_action"]["type"] == "redirect_to_url"

    paid = await api.post(
        "/v1/payment_intents",
        data={
            "amount": "1299",
            "currency": "eur",
            "customer": customer["id"],
            "payment_method": method["id"],
            "confirm": "true",
            "off_session": "true",
        },
    )
    intent = paid.json()
    check("payment_intent", intent)
    assert (intent["amount_received"], intent["amount_capturable"]) == (1299, 0)

    charge = (await api.get(f"/v1/charges/{intent['latest_charge']}")).json()
    check("charge", charge)
    assert set(charge["outcome"]) >= OUTCOME
    assert set(charge["outcome"]) <= set(stripe.Charge.Outcome.__annotations__)
    details = charge["payment_method_details"]["card"]
    assert set(details) <= set(stripe.Charge.PaymentMethodDetails.Card.__annotations__)

    refund = (await api.post("/v1/refunds", data={"charge": charge["id"], "amount": "99"})).json()
    check("refund", refund)

    listed = (await api.get("/v1/events", params={"type": "charge.dispute.created"})).json()
    [event] = listed["data"]
    check("event", event)
    check("dispute", event["data"]["object"])  # a 0259 card: disputed after the charge
    for other in (await api.get("/v1/events", params={"limit": 100})).json()["data"]:
        check("event", other)
        kind = other["data"]["object"]["object"]
        check(kind, other["data"]["object"])


async def test_errors_carry_the_failed_objects(api: httpx.AsyncClient) -> None:
    customer = (await api.post("/v1/customers")).json()["id"]
    declined = await api.post(
        "/v1/payment_intents",
        data={
            "amount": "500",
            "currency": "eur",
            "customer": customer,
            "payment_method": "pm_card_chargeCustomerFail",
            "confirm": "true",
            "off_session": "true",
        },
    )
    assert declined.status_code == 402
    error = declined.json()["error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        "card_declined",
        "generic_decline",
    )
    assert error["charge"].startswith("ch_")
    check("payment_intent", error["payment_intent"])
    check("payment_method", error["payment_method"])
    assert error["payment_intent"]["last_payment_error"]["charge"] == error["charge"]
    charge = (await api.get(f"/v1/charges/{error['charge']}")).json()
    assert (charge["status"], charge["failure_code"]) == ("failed", "card_declined")
    assert charge["outcome"]["type"] == "issuer_declined"
