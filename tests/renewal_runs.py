"""Runs of real renewal processes, before and after: due services paid by sandbox cards,
and the verdict read from the sandbox ledger and the database (every renewal charged exactly
once, none left unfinished, every renewed service moved exactly one period). Shared by the
replica tests (tests/renewals/test_replicas.py) and the scale-out drill (bench/scale_out.py).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import httpx
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.gateways.port import GatewayError
from app.gateways.stripe import StripeGateway, default_timeout
from app.payment_methods.models import PaymentMethod
from app.renewals.models import FINAL_STATUSES, Renewal
from app.services.models import Service
from app.services.periods import add_months

T = TypeVar("T")


async def _retry(call: Callable[[], Awaitable[T]], attempts: int = 20) -> T:
    """Seeding through a faulty gateway: the idempotency keys make retries safe."""
    for _ in range(attempts):
        try:
            return await call()
        except GatewayError:
            await asyncio.sleep(0.05)
    raise RuntimeError("the sandbox kept failing while seeding")


async def seed_cards(url: str, api_key: str, count: int) -> list[tuple[str, str]]:
    """(gateway customer, gateway payment method) for cards set up for off-session use."""
    adapter = StripeGateway(api_key=api_key, base_url=url, timeout=default_timeout(read=5))
    cards = []
    try:
        for index in range(count):
            # partial, not lambda: each call is bound to this iteration's values.
            customer = await _retry(
                partial(adapter.ensure_customer, customer_ref=f"cus_{index}", existing_id=None)
            )
            token = await _retry(
                partial(
                    adapter.tokenize_card,
                    number="4242424242424242",
                    exp_month=12,
                    exp_year=2031,
                    cvc="123",
                )
            )
            setup = await _retry(
                partial(
                    adapter.set_up_card,
                    gateway_customer_id=customer,
                    payment_method_token=token,
                    return_url="https://customer-area.test/return",
                    idempotency_key=f"seed-{index}",
                )
            )
            assert setup.status == "succeeded"
            cards.append((customer, setup.gateway_payment_method_id))
    finally:
        await adapter.aclose()
    return cards


async def seed_services(
    sessionmaker: async_sessionmaker[AsyncSession], cards: list[tuple[str, str]], count: int
) -> dict[str, datetime]:
    """`count` services due now (expiring in three days, card lead seven), spread over the
    cards; the renewal sweep plans and charges them. Returns each service's expiry before
    the run."""
    now = datetime.now(UTC)
    methods, services, expiries = [], [], {}
    for index, (gateway_customer, gateway_method) in enumerate(cards):
        methods.append(
            {
                "id": f"pm_replica_{index}",
                "customer_id": f"cus_{index}",
                "type": "card",
                "status": "validated",
                "is_default": False,
                "created_at": now,
                "updated_at": now,
                "gateway_customer_id": gateway_customer,
                "gateway_payment_method_id": gateway_method,
                "card_brand": "visa",
                "card_last4": "4242",
                "card_exp_month": 12,
                "card_exp_year": 2031,
            }
        )
    for index in range(count):
        card = index % len(cards)
        expires_at = (now + timedelta(days=3, minutes=index)).replace(microsecond=0)
        service_id = f"svc-{index:05d}"
        expiries[service_id] = expires_at
        services.append(
            {
                "id": service_id,
                "customer_id": f"cus_{card}",
                "kind": "hosting",
                "name": f"hosting {index}",
                "status": "active",
                "expires_at": expires_at,
                "expiry_anchor_day": expires_at.day,
                "period_months": 12,
                "price_amount": 1000 + index,
                "price_currency": "EUR",
                "auto_renew": True,
                "payment_method_id": f"pm_replica_{card}",
                "payment_method_type": "card",
                "created_at": now,
                "updated_at": now,
            }
        )
    async with sessionmaker() as session, session.begin():
        await session.execute(insert(PaymentMethod), methods)
        await session.execute(insert(Service), services)
    return expiries


# --- after the run: the verdict ---------------------------------------------------------


@dataclass(frozen=True)
class RenewalRow:
    id: str
    service_id: str
    status: str
    amount: int


@dataclass(frozen=True)
class ServiceRow:
    id: str
    expires_at: datetime
    period_months: int


@dataclass
class Verdict:
    """What went wrong, by kind; each list names the renewals or services concerned."""

    renewals_by_status: Counter[str] = field(default_factory=Counter)
    charges_by_status: Counter[str] = field(default_factory=Counter)
    # Renewals with more than one successful charge at the gateway: charged twice.
    duplicates: list[str] = field(default_factory=list)
    # Renewals not in a final state (scheduled, processing, requires_action).
    unfinished: list[str] = field(default_factory=list)
    # Succeeded renewals without a successful charge, and charges of renewals that did not
    # succeed (or are unknown), or of another amount.
    unmatched: list[str] = field(default_factory=list)
    # Services without exactly one renewal, or not moved exactly one period when renewed.
    wrong_services: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.duplicates or self.unfinished or self.unmatched or self.wrong_services)


def judge(
    charges: Sequence[dict[str, Any]],
    renewals: Sequence[RenewalRow],
    services: Sequence[ServiceRow],
    expiries_before: dict[str, datetime],
) -> Verdict:
    """Compare the sandbox ledger's charges (as `/_ledger/charges` lists them) with the
    renewals and services in the database after a run."""
    verdict = Verdict(
        renewals_by_status=Counter(r.status for r in renewals),
        charges_by_status=Counter(str(c["status"]) for c in charges),
    )
    charged = Counter(
        str(c["metadata"].get("renewal_id")) for c in charges if c["status"] == "succeeded"
    )
    verdict.duplicates = sorted(renewal_id for renewal_id, n in charged.items() if n > 1)
    verdict.unfinished = sorted(r.id for r in renewals if r.status not in FINAL_STATUSES)
    by_id = {r.id: r for r in renewals}
    succeeded = {r.id for r in renewals if r.status == "succeeded"}
    verdict.unmatched = sorted(
        {r for r in succeeded if charged[r] == 0}
        | {r for r in charged if r not in succeeded}
        | {
            str(c["metadata"].get("renewal_id"))
            for c in charges
            if c["status"] == "succeeded"
            and c["metadata"].get("renewal_id") in by_id
            and c["amount"] != by_id[c["metadata"]["renewal_id"]].amount
        }
    )
    renewals_of = Counter(r.service_id for r in renewals)
    renewed = {r.service_id for r in renewals if r.status == "succeeded"}
    for service in services:
        before = expiries_before[service.id]
        expected = add_months(before, service.period_months) if service.id in renewed else before
        if renewals_of[service.id] != 1 or service.expires_at != expected:
            verdict.wrong_services.append(service.id)
    return verdict


async def read_outcome(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway_url: str,
    api_key: str,
    expiries_before: dict[str, datetime],
) -> Verdict:
    """The verdict on the ledger of the sandbox at `gateway_url` and on the database."""
    async with httpx.AsyncClient(
        base_url=gateway_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60
    ) as client:
        response = await client.get("/_ledger/charges", params={"limit": 100_000})
        response.raise_for_status()
        charges = response.json()["data"]
    async with sessionmaker() as session:
        renewals = [
            RenewalRow(r.id, r.service_id, r.status, r.amount)
            for r in (await session.scalars(select(Renewal))).all()
        ]
        services = [
            ServiceRow(s.id, s.expires_at, s.period_months)
            for s in (await session.scalars(select(Service))).all()
        ]
    return judge(charges, renewals, services, expiries_before)
