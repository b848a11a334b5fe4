"""Stripe's test cards and what each one does, as Stripe's testing guide documents them.

The number decides the behaviour once, when the card is tokenized; the ledger then keeps the
behaviour, never the number. Behaviours:

    success                 every step succeeds
    decline_on_attach       declined when attached / set up / charged (`decline` says how)
    decline_on_charge       set up fine, every charge declined (insufficient funds, 0341, …)
    auth_always             3-D Secure on setup; off-session charges still need
                            authentication (Stripe: "requires authentication on all
                            transactions, regardless of how the card is set up")
    auth_unless_set_up      3-D Secure on setup; once set up, off-session charges succeed
    auth_then_decline       3-D Secure on setup; charges declined for insufficient funds
    blocked                 set up fine; Radar blocks every charge (card_declined/fraudulent,
                            the charge's outcome `blocked`)
    dispute_after_charge    every step succeeds; each successful charge is then disputed
                            as fraudulent (charge.dispute.created)

On-session payments (a PaymentIntent confirmed with a return_url, no off_session) need 3-D
Secure with every `auth_*` card, set up or not: the testing guide says so of 3155 ("on-session
payments with this card always require authentication") and of 3184 and 3178; 3220 ("3D
Secure authentication must be completed for the payment to be successful") is treated the
same, and like 3155 off-session once set up. 0101 fails its CVC check only when a CVC is
given, and then is declined like 0127 (Radar's default blocks a failed CVC check); without a
CVC it behaves like 4242.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class Decline:
    code: str
    decline_code: str | None
    message: str
    advice_code: str | None = None


GENERIC = Decline("card_declined", "generic_decline", "Your card was declined.")
INSUFFICIENT = Decline(
    "card_declined",
    "insufficient_funds",
    "Your card has insufficient funds.",
    advice_code="try_again_later",
)
EXPIRED = Decline("expired_card", "expired_card", "Your card has expired.")
INCORRECT_CVC = Decline("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.")
LOST = Decline("card_declined", "lost_card", "Your card was declined.", "do_not_try_again")
STOLEN = Decline("card_declined", "stolen_card", "Your card was declined.", "do_not_try_again")
PROCESSING = Decline(
    "processing_error", None, "An error occurred while processing your card. Try again."
)
VELOCITY = Decline(
    "card_declined",
    "card_velocity_exceeded",
    "Your card was declined for making repeated attempts too frequently or exceeding its "
    "amount limit.",
)
# What Radar's block looks like in the error; the charge's outcome says `blocked`.
BLOCKED = Decline("card_declined", "fraudulent", "Your card was declined.")
AUTHENTICATION = Decline(
    "authentication_required",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
)


@dataclass(frozen=True)
class TestCard:
    behaviour: str
    brand: str = "visa"
    funding: str = "credit"
    country: str = "US"
    decline: Decline | None = None
    # The CVC check fails when a CVC is given (and the card is then declined like 0127).
    cvc_check_fails: bool = False


CARDS: dict[str, TestCard] = {
    "4242424242424242": TestCard("success"),
    "4000056655665556": TestCard("success", funding="debit"),
    "5555555555554444": TestCard("success", brand="mastercard"),
    "378282246310005": TestCard("success", brand="amex"),
    "4000000000000002": TestCard("decline_on_attach", decline=GENERIC),
    "4000000000000069": TestCard("decline_on_attach", decline=EXPIRED),
    "4000000000000127": TestCard("decline_on_attach", decline=INCORRECT_CVC),
    "4000000000009987": TestCard("decline_on_attach", decline=LOST),
    "4000000000009979": TestCard("decline_on_attach", decline=STOLEN),
    "4000000000009995": TestCard("decline_on_charge", decline=INSUFFICIENT),
    # Stripe: attaching succeeds, charging fails.
    "4000000000000341": TestCard("decline_on_charge", decline=GENERIC),
    "4000000000000119": TestCard("decline_on_charge", decline=PROCESSING),
    "4000002760003184": TestCard("auth_always", country="DE"),
    "4000002500003155": TestCard("auth_unless_set_up", country="DE"),
    "4000008260003178": TestCard("auth_then_decline", country="DE", decline=INSUFFICIENT),
    # Stripe's declined-payments table: none of these can be attached to a customer.
    "4000000000006975": TestCard("decline_on_attach", decline=VELOCITY),
    # Radar's "always blocked": a risk level of highest on every charge.
    "4100000000000019": TestCard("blocked", decline=BLOCKED),
    "4000000000003220": TestCard("auth_unless_set_up", country="IE"),
    "4000000000000259": TestCard("dispute_after_charge"),
    "4000000000000101": TestCard("success", cvc_check_fails=True),
}

# Stripe's test PaymentMethods: usable wherever a pm_… id is, each a fresh card.
TEST_PAYMENT_METHODS: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_amex": "378282246310005",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeCustomerFail": "4000000000000341",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_authenticationRequiredOnSetup": "4000002500003155",
    "pm_card_authenticationRequiredChargeDeclinedInsufficientFunds": "4000008260003178",
    "pm_card_visa_chargeDeclinedVelocityLimitExceeded": "4000000000006975",
    "pm_card_radarBlock": "4100000000000019",
    "pm_card_threeDSecure2Required": "4000000000003220",
    "pm_card_createDispute": "4000000000000259",
    "pm_card_cvcCheckFail": "4000000000000101",
}

DECLINES_BY_CODE = {
    decline.decline_code or decline.code: decline
    for decline in (
        GENERIC,
        INSUFFICIENT,
        EXPIRED,
        INCORRECT_CVC,
        LOST,
        STOLEN,
        PROCESSING,
        VELOCITY,
        BLOCKED,
    )
}


def luhn_valid(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def card_for(number: str) -> TestCard:
    """The behaviour of a number: a listed test card, or any Luhn-valid number → success."""
    known = CARDS.get(number)
    if known is not None:
        return known
    if number.startswith(("34", "37")):
        return TestCard("success", brand="amex")
    if number[:2] in {"51", "52", "53", "54", "55"} or "2221" <= number[:4] <= "2720":
        return TestCard("success", brand="mastercard")
    if number.startswith(("6011", "65")):
        return TestCard("success", brand="discover")
    return TestCard("success", brand="visa" if number.startswith("4") else "unknown")


def fingerprint(secret: str, number: str) -> str:
    """Same card → same fingerprint on this ledger; keyed, so it cannot be reversed by
    hashing every number of a BIN range."""
    return hmac.new(secret.encode(), number.encode(), hashlib.sha256).hexdigest()[:16]


def behaviour_of(card: TestCard, *, cvc_given: bool) -> str:
    """What the ledger keeps for a card: `behaviour` or `behaviour:decline`."""
    if card.cvc_check_fails and cvc_given:
        return f"decline_on_attach:{INCORRECT_CVC.decline_code}"
    if card.decline is None:
        return card.behaviour
    return f"{card.behaviour}:{card.decline.decline_code or card.decline.code}"


def cvc_check(card: TestCard, cvc: str | None) -> str | None:
    """The `checks.cvc_check` of a card: null when no CVC was given (nothing was checked)."""
    if cvc is None:
        return None
    return "fail" if card.cvc_check_fails or card.decline is INCORRECT_CVC else "pass"


def needs_authentication(behaviour: str, *, on_session: bool, set_up: bool) -> bool:
    """Whether a payment with this card needs 3-D Secure (see the module docstring)."""
    if not behaviour.startswith("auth_"):
        return False
    if on_session:
        return True
    # Off-session, 3178 is declined for insufficient funds rather than asking to authenticate.
    return behaviour == "auth_always" or (behaviour == "auth_unless_set_up" and not set_up)


def parse_behaviour(stored: str) -> tuple[str, Decline | None]:
    behaviour, _, decline = stored.partition(":")
    return behaviour, DECLINES_BY_CODE.get(decline) if decline else None
