"""What a renewal's failure code means, in a sentence the customer can act on.

`failure_code` is stable (API, events, dashboards); `failure_reason` is this sentence,
written when the renewal fails and free to be reworded.
"""

from __future__ import annotations

from app.payment_methods.declines import GENERIC_DECLINE, TELLING_DECLINES

# The same words as any decline (see told_to_customer below), with the way out.
_TELLING_SENTENCE = "Your bank declined the payment: pay with another card, or ask your bank."
_SENTENCES: dict[str, str] = {
    "insufficient_funds": "Your bank declined the payment for insufficient funds.",
    "card_declined": "Your bank declined the payment.",
    "generic_decline": "Your bank declined the payment.",
    "do_not_honor": "Your bank declined the payment.",
    "charge_failed": "The payment did not go through.",
    "expired_card": "The card has expired.",
    "incorrect_cvc": _TELLING_SENTENCE,
    "processing_error": "The card network could not process the payment.",
    "card_velocity_exceeded": "The card's spending limit was reached.",
    "lost_card": _TELLING_SENTENCE,
    "stolen_card": _TELLING_SENTENCE,
    "pickup_card": _TELLING_SENTENCE,
    "restricted_card": _TELLING_SENTENCE,
    "fraudulent": _TELLING_SENTENCE,
    "authentication_required": "Your bank asks you to authenticate this payment.",
    "authentication_failed": (
        "The authentication with your bank did not succeed: try again, or pay with another "
        "payment method."
    ),
    "payment_method_unusable": "The payment method can no longer be used.",
    "mandate_lapsed": "The SEPA mandate lapsed after 36 months without a collection.",
    "no_collection_date": (
        "A SEPA direct debit can no longer be collected before the service expires."
    ),
    "currency_not_supported_by_method": (
        "This payment method cannot pay in the service's currency."
    ),
    "service_cancelled": "The service was cancelled.",
    "auto_renew_off": "Automatic renewal was turned off.",
    "service_already_renewed": "The service was renewed by other means.",
    "service_lapsed": "The service expired before it could be renewed.",
    "no_payment_method": "No payment method was chosen for the service.",
    "payment_method_revoked": "The payment method was removed.",
    "sepa_return_am04": "Your bank returned the direct debit for insufficient funds.",
    "sepa_return_ac01": "Your bank says the account number is wrong.",
    "sepa_return_ac04": "Your bank says the account is closed.",
    "sepa_return_ac06": "Your bank says the account is blocked for direct debits.",
    "sepa_return_md01": "Your bank holds no valid mandate for this direct debit.",
    "sepa_return_md06": "The direct debit was refunded at your request.",
    "sepa_return_ms02": "The direct debit was refused at your bank.",
}

# Why a failure is final, as the dunning and the fallback say it.
_FINAL: dict[str, str] = {
    "hard_decline": "Your bank will not accept it if we try again.",
    "retries_exhausted": "Every retry was declined.",
    "service_expired_before_retry": "No retry is left before the service expires.",
    "fallback_exhausted": "None of your other payment methods could pay.",
}


def describe(code: str | None, reason: str | None = None) -> str:
    """The sentence for `code`, then why it is final when `reason` is a key of the dunning
    or the fallback; any other `reason` (the gateway's own words) stands in for a code this
    table does not know."""
    why = _FINAL.get(reason or "")
    if code in _SENTENCES:
        first = _SENTENCES[code]
    elif code is not None and code.startswith("sepa_return_"):
        first = f"Your bank returned the direct debit (reason {code[12:].upper()})."
    else:
        first = (reason if why is None else None) or "The payment did not go through."
    return " ".join(sentence for sentence in (first, why) if sentence)[:255]


def and_finally(reason: str | None, why: str) -> str:
    """`reason`, with one more sentence on why the renewal failed for good."""
    return " ".join(part for part in (reason, _FINAL[why]) if part)[:255]


def told_to_customer(code: str | None) -> str | None:
    """A renewal's failure or decline code as the customer sees it: the declines that say
    something about the card itself (app/payment_methods/declines.py) become generic, so a
    renewal is no oracle for someone testing cards; every other code is something the
    customer can act on. The admin's renewal list keeps them all."""
    return GENERIC_DECLINE if code in TELLING_DECLINES else code
