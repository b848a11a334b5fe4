"""Stripe-shaped JSON for charges, refunds and disputes (2025-03-31.basil field lists, as in
`objects.py`)."""

from __future__ import annotations

from typing import Any

from app.sandbox import cards
from app.sandbox.models import Charge, Dispute, PaymentMethod, Refund
from app.sandbox.objects import empty_address, unix


def outcome_json(decline: cards.Decline | None) -> dict[str, Any]:
    """A charge's `outcome`: authorised, declined by the issuer, or blocked by Radar."""
    if decline is None:
        return {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": 20,
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    if decline is cards.BLOCKED:
        return {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "not_sent_to_network",
            "reason": "highest_risk_level",
            "risk_level": "highest",
            "risk_score": 95,
            "seller_message": "Stripe blocked this payment as too risky.",
            "type": "blocked",
        }
    return {
        "advice_code": decline.advice_code,
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": "declined_by_network",
        "reason": decline.decline_code or decline.code,
        "risk_level": "normal",
        "risk_score": 20,
        "seller_message": "The bank did not return any further details with this decline.",
        "type": "issuer_declined",
    }


def _card_details(charge: Charge, method: PaymentMethod) -> dict[str, Any]:
    return {
        "amount_authorized": charge.amount if charge.status == "succeeded" else None,
        "authorization_code": None,
        "brand": method.brand,
        "checks": {
            "address_line1_check": None,
            "address_postal_code_check": None,
            "cvc_check": method.cvc_check,
        },
        "country": method.country,
        "exp_month": method.exp_month,
        "exp_year": method.exp_year,
        "extended_authorization": {"status": "disabled"},
        "fingerprint": method.fingerprint,
        "funding": method.funding,
        "incremental_authorization": {"status": "unavailable"},
        "installments": None,
        "last4": method.last4,
        "mandate": None,
        "multicapture": {"status": "unavailable"},
        "network": method.brand,
        "network_token": {"used": False},
        "network_transaction_id": None,
        "overcapture": {"maximum_amount_capturable": charge.amount, "status": "unavailable"},
        "regulated_status": "unregulated",
        "three_d_secure": (
            {
                "authentication_flow": "challenge",
                "electronic_commerce_indicator": "05",
                "exemption_indicator": None,
                "result": "authenticated",
                "result_reason": None,
                "transaction_id": None,
                "version": "2.2.0",
            }
            if charge.authenticated
            else None
        ),
        "wallet": None,
    }


def charge_json(charge: Charge, method: PaymentMethod, refunds: list[Refund]) -> dict[str, Any]:
    succeeded = charge.status == "succeeded"
    return {
        "id": charge.id,
        "object": "charge",
        "amount": charge.amount,
        "amount_captured": charge.amount if succeeded else 0,
        "amount_refunded": charge.amount_refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": None,
        "billing_details": {
            "address": empty_address(),
            "email": None,
            "name": method.billing_name,
            "phone": None,
            "tax_id": None,
        },
        "calculated_statement_descriptor": "AUTORENEW SANDBOX",
        "captured": succeeded,
        "created": unix(charge.created),
        "currency": charge.currency,
        "customer": charge.customer_id,
        "description": charge.description,
        "disputed": charge.disputed,
        "failure_balance_transaction": None,
        "failure_code": charge.failure_code,
        "failure_message": charge.failure_message,
        "fraud_details": {},
        "livemode": False,
        "metadata": charge.meta or {},
        "on_behalf_of": None,
        "outcome": charge.outcome,
        "paid": succeeded,
        "payment_intent": charge.payment_intent_id,
        "payment_method": charge.payment_method_id,
        "payment_method_details": {"card": _card_details(charge, method), "type": "card"},
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": None,
        "refunded": succeeded and charge.amount_refunded >= charge.amount,
        "refunds": {
            "object": "list",
            "data": [refund_json(refund) for refund in refunds],
            "has_more": False,
            "url": f"/v1/charges/{charge.id}/refunds",
        },
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": charge.status,
        "transfer_data": None,
        "transfer_group": None,
    }


def refund_json(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "object": "refund",
        "amount": refund.amount,
        "balance_transaction": None,
        "charge": refund.charge_id,
        "created": unix(refund.created),
        "currency": refund.currency,
        "destination_details": {"card": {"type": "refund"}, "type": "card"},
        "metadata": refund.meta or {},
        "payment_intent": refund.payment_intent_id,
        "reason": refund.reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": refund.status,
        "transfer_reversal": None,
    }


_EVIDENCE_FIELDS = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
)


def dispute_json(dispute: Dispute, method: PaymentMethod, due_by: int) -> dict[str, Any]:
    return {
        "id": dispute.id,
        "object": "dispute",
        "amount": dispute.amount,
        "balance_transactions": [],
        "charge": dispute.charge_id,
        "created": unix(dispute.created),
        "currency": dispute.currency,
        "enhanced_eligibility_types": [],
        "evidence": {**dict.fromkeys(_EVIDENCE_FIELDS), "enhanced_evidence": {}},
        "evidence_details": {
            "due_by": due_by,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": dispute.payment_intent_id,
        "payment_method_details": {
            "card": {
                "brand": method.brand,
                "case_type": "chargeback",
                "network_reason_code": "10.4" if dispute.reason == "fraudulent" else "13.1",
            },
            "type": "card",
        },
        "reason": dispute.reason,
        "status": dispute.status,
    }
