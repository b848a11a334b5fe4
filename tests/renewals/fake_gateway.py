"""An in-memory gateway for engine tests: it keeps a ledger keyed by idempotency key, like
Stripe, and each saved card's behaviour is scripted by its gateway id. The whole flow
against the real sandbox over HTTP is tested separately.

On-session payments: `charge_on_session` and `confirm_on_session` answer requires_action
with a 3-D Secure URL for an "auth" card; `complete_authentication` plays the customer on
that page; `get_charge` reads the charge as it stands."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from app.gateways.port import (
    AuthenticationRequired,
    CardDeclined,
    CardDetails,
    CardSetup,
    Charge,
    InvalidCardRequest,
    OutcomeUnknown,
    PaymentMethodNotFound,
    RateLimited,
    StoredPaymentMethod,
)


@dataclass
class FakeGateway:
    # gateway payment method id → behaviour
    behaviours: dict[str, str] = field(default_factory=dict)
    ledger: dict[str, Charge] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    # The next N calls are refused with a 429 before anything else happens.
    rate_limit_next: int = 0
    # Behaviours that change after N calls, e.g. "unknown_then_ok".
    _seen: dict[str, int] = field(default_factory=dict)
    # Every charge by id, as it stands (declined and waiting ones too).
    intents: dict[str, Charge] = field(default_factory=dict)
    # On-session confirmations by idempotency key: a repeat gets the first answer.
    confirmations: dict[str, Charge] = field(default_factory=dict)
    _charges_made: int = 0

    def _new_id(self) -> str:
        self._charges_made += 1
        return f"pi_{self._charges_made}"

    # Payment methods stored at the gateway (for imports): id → what a GET answers.
    stored: dict[str, StoredPaymentMethod] = field(default_factory=dict)
    # Gateway payment method ids whose lookup fails as if the gateway were down.
    unreachable: set[str] = field(default_factory=set)

    def store_card(
        self,
        gateway_payment_method_id: str,
        gateway_customer_id: str | None,
        *,
        exp_month: int = 12,
        exp_year: int = 2030,
        last4: str = "4242",
        brand: str = "visa",
        method_type: str = "card",
    ) -> None:
        card = CardDetails(
            brand=brand,
            last4=last4,
            exp_month=exp_month,
            exp_year=exp_year,
            funding="credit",
            country="ES",
            fingerprint=f"fp_{gateway_payment_method_id}",
        )
        self.stored[gateway_payment_method_id] = StoredPaymentMethod(
            gateway_payment_method_id,
            method_type,
            gateway_customer_id,
            card if method_type == "card" else None,
        )

    def successful_charges(self) -> list[Charge]:
        return [c for c in self.ledger.values() if c.status == "succeeded"]

    async def charge_off_session(
        self,
        *,
        gateway_customer_id: str,
        gateway_payment_method_id: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> Charge:
        self.calls.append(idempotency_key)
        if self.rate_limit_next > 0:
            self.rate_limit_next -= 1
            raise RateLimited("slow down", retry_after=2)
        if idempotency_key in self.ledger:  # a replay: the first answer, never a new charge
            return self.ledger[idempotency_key]
        behaviour = self.behaviours.get(gateway_payment_method_id, "ok")
        seen = self._seen[gateway_payment_method_id] = (
            self._seen.get(gateway_payment_method_id, 0) + 1
        )
        charge_id = self._new_id()
        if behaviour == "ok" or (behaviour == "unknown_then_ok" and seen > 1):
            charge = Charge(charge_id, "succeeded", amount, currency, idempotency_key)
            self.ledger[idempotency_key] = self.intents[charge_id] = charge
            return charge
        if behaviour == "lost_response":
            # Charged, but the answer never arrived.
            self.ledger[idempotency_key] = Charge(
                charge_id, "succeeded", amount, currency, idempotency_key
            )
            raise OutcomeUnknown("read timeout")
        if behaviour in ("unknown", "unknown_then_ok"):
            raise OutcomeUnknown("connection reset before the request was sent")
        if behaviour == "soft_decline":
            raise CardDeclined(
                "declined", decline_code="insufficient_funds", hard=False, charge_id=charge_id
            )
        if behaviour == "hard_decline":
            raise CardDeclined(
                "declined", decline_code="stolen_card", hard=True, charge_id=charge_id
            )
        if behaviour == "auth":
            self.intents[charge_id] = Charge(
                charge_id,
                "failed",
                amount,
                currency,
                idempotency_key,
                failure_code="authentication_required",
                gateway_payment_method_id=gateway_payment_method_id,
            )
            raise AuthenticationRequired(
                "3ds", charge_id=charge_id, action_url="https://gw/3ds/" + charge_id
            )
        if behaviour == "rate_limited":
            raise RateLimited("slow down", retry_after=2)
        raise AssertionError(f"unknown behaviour {behaviour}")

    async def find_charge(self, idempotency_key: str) -> Charge | None:
        return self.ledger.get(idempotency_key)

    async def charge_on_session(
        self,
        *,
        gateway_customer_id: str,
        gateway_payment_method_id: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        return_url: str,
        metadata: dict[str, str],
    ) -> Charge:
        self.calls.append(idempotency_key)
        if idempotency_key in self.ledger:
            return self.ledger[idempotency_key]
        if self.behaviours.get(gateway_payment_method_id) == "lost_response":
            # Charged, but the answer never arrived.
            paid = Charge(
                self._new_id(),
                "succeeded",
                amount,
                currency,
                idempotency_key,
                metadata=metadata,
                gateway_payment_method_id=gateway_payment_method_id,
            )
            self.ledger[idempotency_key] = self.intents[paid.charge_id] = paid
            raise OutcomeUnknown("read timeout")
        charge = Charge(
            self._new_id(),
            "failed",
            amount,
            currency,
            idempotency_key,
            metadata=metadata,
            gateway_payment_method_id=gateway_payment_method_id,
        )
        self.ledger[idempotency_key] = charge = self._confirm(charge, gateway_payment_method_id)
        return charge

    async def confirm_on_session(
        self,
        charge_id: str,
        *,
        return_url: str,
        idempotency_key: str,
        gateway_payment_method_id: str | None = None,
    ) -> Charge:
        self.calls.append(idempotency_key)
        if idempotency_key in self.confirmations:
            return self.confirmations[idempotency_key]
        charge = self.intents[charge_id]
        if charge.status in ("succeeded", "processing", "canceled"):
            raise InvalidCardRequest(
                "This charge cannot be confirmed.", code="payment_intent_unexpected_state"
            )
        method = gateway_payment_method_id or charge.gateway_payment_method_id or ""
        self.confirmations[idempotency_key] = charge = self._confirm(charge, method)
        return charge

    async def get_charge(self, charge_id: str) -> Charge:
        return self.intents[charge_id]

    def complete_authentication(self, charge_id: str, *, succeed: bool = True) -> Charge:
        """The customer finishes (or fails) 3-D Secure at the charge's action URL."""
        charge = self.intents[charge_id]
        assert charge.status == "requires_action"
        status = "succeeded" if succeed else "failed"
        code = None if succeed else "payment_intent_authentication_failure"
        charge = replace(charge, status=status, action_url=None, failure_code=code)
        self.intents[charge_id] = charge
        if succeed and charge.idempotency_key is not None:
            self.ledger[charge.idempotency_key] = charge
        return charge

    def _confirm(self, charge: Charge, method: str) -> Charge:
        """An on-session confirmation: the customer is there, so 3-D Secure is possible."""
        behaviour = self.behaviours.get(method, "ok")
        if behaviour == "rate_limited":
            raise RateLimited("slow down", retry_after=2)
        if behaviour in ("soft_decline", "hard_decline"):
            self.intents[charge.charge_id] = replace(charge, status="failed")
            raise CardDeclined(
                "declined",
                decline_code="insufficient_funds" if behaviour == "soft_decline" else "stolen_card",
                hard=behaviour == "hard_decline",
                charge_id=charge.charge_id,
            )
        if behaviour == "auth":
            charge = replace(
                charge,
                status="requires_action",
                action_url="https://gw/3ds/" + charge.charge_id,
                gateway_payment_method_id=method,
            )
        else:
            charge = replace(
                charge, status="succeeded", failure_code=None, gateway_payment_method_id=method
            )
        self.intents[charge.charge_id] = charge
        return charge

    async def get_payment_method(self, gateway_payment_method_id: str) -> StoredPaymentMethod:
        self.calls.append(f"get:{gateway_payment_method_id}")
        if gateway_payment_method_id in self.unreachable:
            raise OutcomeUnknown("read timeout")
        found = self.stored.get(gateway_payment_method_id)
        if found is None:
            raise PaymentMethodNotFound(f"No such PaymentMethod: '{gateway_payment_method_id}'")
        return found

    async def ensure_customer(self, *, customer_ref: str, existing_id: str | None) -> str:
        return existing_id or f"cus_{customer_ref}"

    async def set_up_card(self, **_: object) -> CardSetup:
        raise NotImplementedError

    async def refresh_setup(self, setup_id: str) -> CardSetup:
        raise NotImplementedError

    async def tokenize_card(self, **_: object) -> str:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None
