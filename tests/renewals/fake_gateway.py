"""An in-memory gateway for engine tests: it keeps a ledger keyed by idempotency key, like
Stripe, and each saved card's behaviour is scripted by its gateway id. The whole flow
against the real sandbox over HTTP is tested separately."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.gateways.port import (
    AuthenticationRequired,
    CardDeclined,
    CardSetup,
    Charge,
    OutcomeUnknown,
    RateLimited,
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
        charge_id = f"pi_{len(self.ledger) + 1}"
        if behaviour == "ok" or (behaviour == "unknown_then_ok" and seen > 1):
            charge = Charge(charge_id, "succeeded", amount, currency, idempotency_key)
            self.ledger[idempotency_key] = charge
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
            raise AuthenticationRequired(
                "3ds", charge_id=charge_id, action_url="https://gw/3ds/" + charge_id
            )
        if behaviour == "rate_limited":
            raise RateLimited("slow down", retry_after=2)
        raise AssertionError(f"unknown behaviour {behaviour}")

    async def find_charge(self, idempotency_key: str) -> Charge | None:
        return self.ledger.get(idempotency_key)

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
