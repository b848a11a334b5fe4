"""What a customer is told of a card decline.

Only what they can act on. The precise reason (lost_card, stolen_card, incorrect_cvc,
fraudulent, …) would tell whoever tests stolen numbers which guess was right, so the
customer's answers, method views and events say `generic_decline`; the precise code stays
on the method's record (the admin routes) and in the operators' log.
"""

from __future__ import annotations

GENERIC_DECLINE = "generic_decline"
# Codes that help the customer and tell a tester nothing about the card.
_TOLD_TO_CUSTOMER = frozenset(
    {
        "authentication_required",
        "card_setup_failed",
        "setup_intent_authentication_failure",
        "payment_method_detached",
        "expired_card",
        GENERIC_DECLINE,
    }
)


def told_to_customer(code: str | None) -> str | None:
    """The failure code as the customer may see it."""
    if code is None or code in _TOLD_TO_CUSTOMER:
        return code
    return GENERIC_DECLINE


# Declines that say something about the card itself (reported stolen, a wrong CVC). At
# registration every decline but the actionable ones above is generic; a renewal, on a card
# the customer already proved, hides only these (app/renewals/reasons.py).
TELLING_DECLINES = frozenset(
    {
        "lost_card",
        "stolen_card",
        "pickup_card",
        "restricted_card",
        "fraudulent",
        "merchant_blacklist",
        "security_violation",
        "incorrect_cvc",
        "invalid_cvc",
        "incorrect_number",
        "invalid_number",
    }
)
