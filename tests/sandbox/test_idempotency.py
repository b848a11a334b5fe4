"""Idempotency as Stripe runs it, injected faults, and reconciliation by re-sending."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.core.clock import FrozenClock
from app.gateways.factory import TimedASGITransport
from app.gateways.port import GatewayError, OutcomeUnknown, RateLimited
from app.gateways.stripe import StripeGateway, default_timeout
from app.sandbox.app import Sandbox
from app.sandbox.config import SandboxConfig
from app.sandbox.idempotency import CLAIM_SECONDS
from app.sandbox.models import IdempotencyKey

API_KEY = "sk_test_sandbox_tests"


async def ledger_charges(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await api.get("/_ledger/charges")
    assert response.status_code == 200
    return list(response.json()["data"])


@pytest.fixture
async def faulty(sandbox: Sandbox, fault_once: Any) -> AsyncIterator[tuple[StripeGateway, Any]]:
    transport = fault_once(httpx.ASGITransport(app=sandbox.app, raise_app_exceptions=False))
    adapter = StripeGateway(api_key=API_KEY, base_url="http://sandbox", transport=transport)
    yield adapter, transport
    await adapter.aclose()


async def test_same_key_twice_is_one_charge(flows: Any, api: httpx.AsyncClient) -> None:
    setup = await flows.register("4242424242424242", "reg-idem")
    first = await flows.charge(setup, "ren_5-attempt-1")
    again = await flows.charge(setup, "ren_5-attempt-1")
    assert again == first
    assert [c["id"] for c in await ledger_charges(api)] == [first.charge_id]


async def test_a_replay_says_so(api: httpx.AsyncClient) -> None:
    body = {"metadata[autorenew_customer_id]": "c-replay"}
    headers = {"Idempotency-Key": "cust-replay"}
    first = await api.post("/v1/customers", data=body, headers=headers)
    second = await api.post("/v1/customers", data=body, headers=headers)
    assert first.json() == second.json()
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"


async def test_same_key_other_parameters_is_stripes_idempotency_error(flows: Any) -> None:
    setup = await flows.register("4242424242424242", "reg-mismatch")
    await flows.charge(setup, "ren_6-attempt-1", amount=1299)
    with pytest.raises(GatewayError) as caught:
        await flows.charge(setup, "ren_6-attempt-1", amount=999)
    assert caught.value.code == "idempotency_error"


async def test_declines_are_replayed_too(flows: Any) -> None:
    setup = await flows.register("4000000000009995", "reg-poor-again")
    outcomes = []
    for _ in range(2):
        with pytest.raises(GatewayError) as caught:
            await flows.charge(setup, "ren_7-attempt-1")
        outcomes.append((type(caught.value), getattr(caught.value, "charge_id", None)))
    assert outcomes[0] == outcomes[1]


def one_charge_or_in_use(results: list[Any]) -> str:
    """Concurrent sends of one key: each either got the one charge or Stripe's 409 (which
    the adapter reads as "outcome unknown"); returns the charge's id."""
    charges = {result.charge_id for result in results if not isinstance(result, Exception)}
    others = [result for result in results if isinstance(result, Exception)]
    assert len(charges) == 1, results
    assert all(isinstance(error, OutcomeUnknown) for error in others), others
    return charges.pop()


async def test_concurrent_requests_with_one_key_make_one_charge(
    flows: Any, api: httpx.AsyncClient
) -> None:
    setup = await flows.register("4242424242424242", "reg-race")
    results = await asyncio.gather(
        *(flows.charge(setup, "ren_8-attempt-1") for _ in range(12)), return_exceptions=True
    )
    charge_id = one_charge_or_in_use(results)
    assert [charge["id"] for charge in await ledger_charges(api)] == [charge_id]
    # Once the first has answered, the key replays it.
    assert (await flows.charge(setup, "ren_8-attempt-1")).charge_id == charge_id


async def test_concurrency_on_a_shared_ledger_database(
    scratch_database: Callable[[], Any], clock: FrozenClock
) -> None:
    """Two sandboxes (think: two processes) on one ledger, SQLite or PostgreSQL."""
    url = await scratch_database()
    sandboxes = [Sandbox(SandboxConfig(database_url=url), clock=clock) for _ in range(2)]
    for instance in sandboxes:
        await instance.start()
    adapters = [
        StripeGateway(
            api_key=API_KEY,
            base_url="http://sandbox",
            transport=httpx.ASGITransport(app=instance.app),
        )
        for instance in sandboxes
    ]
    try:
        first, second = adapters
        customer = await first.ensure_customer(customer_ref="c-shared", existing_id=None)
        assert await second.ensure_customer(customer_ref="c-shared", existing_id=None) == customer
        setup = await first.set_up_card(
            gateway_customer_id=customer,
            payment_method_token="pm_card_visa",
            return_url="https://r.test",
            idempotency_key="reg-shared",
        )
        results = await asyncio.gather(
            *(
                adapters[n % 2].charge_off_session(
                    gateway_customer_id=customer,
                    gateway_payment_method_id=setup.gateway_payment_method_id,
                    amount=500,
                    currency="EUR",
                    idempotency_key="ren_shared-attempt-1",
                    metadata={},
                )
                for n in range(10)
            ),
            return_exceptions=True,
        )
        charge_id = one_charge_or_in_use(results)
        found = await second.find_charge("ren_shared-attempt-1")
        assert found is not None and found.charge_id == charge_id
    finally:
        for adapter in adapters:
            await adapter.aclose()
        for instance in sandboxes:
            await instance.stop()


@pytest.mark.parametrize(("fault", "made_before_resend"), [("error_after", 1), ("error_before", 0)])
async def test_a_lost_answer_is_reconciled_by_resending(
    flows: Any,
    faulty: tuple[StripeGateway, Any],
    api: httpx.AsyncClient,
    fault: str,
    made_before_resend: int,
) -> None:
    """error_after: the charge was made and its answer lost; error_before: nothing was made.
    Either way the engine re-sends the same request with the same key, and there is then
    exactly one charge."""
    adapter, transport = faulty
    setup = await flows.register("4242424242424242", f"reg-{fault}")
    flows.gateway = adapter
    transport.fault = fault
    with pytest.raises(OutcomeUnknown):
        await flows.charge(setup, f"ren-{fault}-attempt-1")
    assert len(await ledger_charges(api)) == made_before_resend
    found = await adapter.find_charge(f"ren-{fault}-attempt-1")
    assert (found is not None) == bool(made_before_resend)
    resent = await flows.charge(setup, f"ren-{fault}-attempt-1")
    assert resent.status == "succeeded"
    assert [c["id"] for c in await ledger_charges(api)] == [resent.charge_id]


async def test_a_hang_after_the_charge_times_out_in_process_too(
    flows: Any, sandbox: Sandbox, fault_once: Any, api: httpx.AsyncClient
) -> None:
    transport = fault_once(TimedASGITransport(app=sandbox.app, raise_app_exceptions=False))
    adapter = StripeGateway(
        api_key=API_KEY,
        base_url="http://sandbox",
        transport=transport,
        timeout=default_timeout(read=0.2),
    )
    try:
        setup = await flows.register("4242424242424242", "reg-hang")
        flows.gateway = adapter
        transport.fault = "hang_after"  # the sandbox holds the answer for 60 s
        with pytest.raises(OutcomeUnknown):
            await flows.charge(setup, "ren-hang-attempt-1")
        [made] = await ledger_charges(api)
        resent = await flows.charge(setup, "ren-hang-attempt-1")
        assert resent.charge_id == made["id"]
    finally:
        await adapter.aclose()


async def test_rate_limit_answers_429_with_retry_after(
    sandbox_config: SandboxConfig, clock: FrozenClock
) -> None:
    limited = Sandbox(
        SandboxConfig(database_url=sandbox_config.database_url, rate_limit_per_second=1),
        clock=clock,
    )
    await limited.start()
    adapter = StripeGateway(
        api_key=API_KEY, base_url="http://sandbox", transport=httpx.ASGITransport(app=limited.app)
    )
    try:
        await adapter.ensure_customer(customer_ref="c-rl", existing_id=None)
        with pytest.raises(RateLimited) as caught:
            await adapter.ensure_customer(customer_ref="c-rl2", existing_id=None)
        assert caught.value.retry_after is not None and caught.value.retry_after >= 1
        assert limited.limiter.refused == 1
    finally:
        await adapter.aclose()
        await limited.stop()


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer sk_live_real", 401),
        ("Basic abc", 401),
        ("Token sk_test_x", 401),
        ("Bearer sk_test_x", 200),
        ("Basic c2tfdGVzdF94Og==", 200),  # curl -u sk_test_x:
    ],
)
async def test_api_key_required(sandbox: Sandbox, authorization: str | None, status: int) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox.app), base_url="http://s"
    ) as client:
        response = await client.post("/v1/customers", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["type"] == "invalid_request_error"
        assert "sk_live_real" not in response.text


@pytest.mark.parametrize(
    ("query", "status"),
    [("metadata['a']:'b' AND status:'succeeded'", 200), ("amount>5", 400), ("", 400)],
)
async def test_search_understands_a_small_language(
    api: httpx.AsyncClient, query: str, status: int
) -> None:
    response = await api.get("/v1/payment_intents/search", params={"query": query})
    assert response.status_code == status
    if status == 400:
        assert response.json()["error"]["param"] == "query"


async def test_missing_parameters_are_400_and_store_nothing(api: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "pi-bad"}
    response = await api.post("/v1/payment_intents", data={"currency": "eur"}, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": "Missing required param: amount.",
        "code": "parameter_missing",
        "doc_url": "https://docs.stripe.com/error-codes/parameter-missing",
        "param": "amount",
    }
    # Not stored: the same key may be used again with right parameters.
    again = await api.post(
        "/v1/payment_intents", data={"amount": "5", "currency": "eur"}, headers=headers
    )
    assert again.status_code == 200
    assert again.json()["status"] == "requires_payment_method"


async def test_ledger_summary(flows: Any, api: httpx.AsyncClient) -> None:
    setup = await flows.register("4242424242424242", "reg-sum")
    await flows.charge(setup, "ren_12-attempt-1", amount=700)
    summary = (await api.get("/_ledger/summary")).json()
    assert summary["payment_intents"] == 1
    assert summary["charges_by_status"] == {"succeeded": {"count": 1, "amount": 700}}
    assert summary["rate_limited"] == 0


async def claim_as_another_request(sandbox: Sandbox, key: str, digest: str = "x") -> None:
    """What the ledger holds while another process's request with `key` is running."""
    async with sandbox.transaction() as session:
        session.add(
            IdempotencyKey(
                key=key,
                digest=digest,
                owner="other-process",
                claimed_until=sandbox.clock.now() + timedelta(seconds=CLAIM_SECONDS),
                created=sandbox.clock.now(),
            )
        )


async def test_a_key_in_flight_is_409_at_once_not_a_wait(
    sandbox: Sandbox, api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await claim_as_another_request(sandbox, "in-flight")
    busy = await api.post("/v1/customers", headers={"Idempotency-Key": "in-flight"})
    assert busy.status_code == 409
    assert busy.json()["error"]["code"] == "idempotency_key_in_use"
    assert (await api.get("/_ledger/summary")).json()["customers"] == 0
    # A claim whose process died is taken over once it is older than CLAIM_SECONDS.
    clock.advance(timedelta(seconds=CLAIM_SECONDS + 1))
    taken = await api.post("/v1/customers", headers={"Idempotency-Key": "in-flight"})
    assert taken.status_code == 200
    again = await api.post("/v1/customers", headers={"Idempotency-Key": "in-flight"})
    assert again.json() == taken.json() and again.headers["idempotent-replayed"] == "true"


async def test_a_slow_request_holds_its_key(api: httpx.AsyncClient) -> None:
    """The sandbox's latency is spent holding the key: the second request is refused while
    the first is still running, and the key then replays the first answer."""
    headers = {"Idempotency-Key": "slow", "X-Sandbox-Latency-Ms": "400"}
    both = await asyncio.gather(*(api.post("/v1/customers", headers=headers) for _ in range(2)))
    assert sorted(response.status_code for response in both) == [200, 409]
    [done] = [response for response in both if response.status_code == 200]
    [busy] = [response for response in both if response.status_code == 409]
    assert busy.json()["error"]["code"] == "idempotency_key_in_use"
    third = await api.post("/v1/customers", headers={"Idempotency-Key": "slow"})
    assert third.json()["id"] == done.json()["id"]


async def test_a_stored_500_is_replayed_for_its_key(
    flows: Any, api: httpx.AsyncClient, faulty: tuple[StripeGateway, Any]
) -> None:
    """Stripe keeps a 500 as the key's answer: re-sending gets it again (and says not to
    retry), so only a lookup finds the charge that was made."""
    adapter, transport = faulty
    setup = await flows.register("4242424242424242", "reg-stored")
    flows.gateway = adapter
    transport.fault = "error_stored"
    for _ in range(3):
        with pytest.raises(OutcomeUnknown):
            await flows.charge(setup, "ren-stored-attempt-1")
    [made] = await ledger_charges(api)
    assert made["status"] == "succeeded"
    found = await adapter.find_charge("ren-stored-attempt-1")
    assert found is not None and found.charge_id == made["id"]
    raw = await api.post(
        "/v1/customers", headers={"Idempotency-Key": "stored", "X-Sandbox-Fault": "error_stored"}
    )
    replay = await api.post("/v1/customers", headers={"Idempotency-Key": "stored"})
    for response in (raw, replay):
        assert response.status_code == 500
        assert response.headers["stripe-should-retry"] == "false"
        assert response.json()["error"]["type"] == "api_error"
    assert replay.headers["idempotent-replayed"] == "true"
