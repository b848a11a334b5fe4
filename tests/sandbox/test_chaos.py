"""Latency and fault injection draw from their settings (seeded, so no sleeping to test)."""

from __future__ import annotations

import random

from starlette.requests import Request

from app.sandbox.config import SandboxConfig
from app.sandbox.edge import RANDOM_FAULTS, Chaos


def request(method: str = "POST", fault: str | None = None) -> Request:
    headers = [(b"x-sandbox-fault", fault.encode())] if fault else []
    return Request({"type": "http", "method": method, "headers": headers, "path": "/"})


def test_fixed_and_random_latency() -> None:
    assert Chaos(SandboxConfig(database_url="x")).latency_seconds() == 0
    assert Chaos(SandboxConfig(database_url="x", latency_ms=40)).latency_seconds() == 0.04
    random_chaos = Chaos(
        SandboxConfig(database_url="x", latency_ms=40, latency_mode="random"), random.Random(7)
    )
    draws = sorted(random_chaos.latency_seconds() for _ in range(2001))
    assert 0.035 < draws[1000] < 0.045  # the median is the setting
    assert draws[-1] > 0.08  # with a tail


def test_one_request_may_ask_for_its_latency() -> None:
    chaos = Chaos(SandboxConfig(database_url="x", latency_ms=40))
    asked = Request({"type": "http", "headers": [(b"x-sandbox-latency-ms", b"1500")]})
    assert chaos.latency_seconds(asked) == 1.5
    greedy = Request({"type": "http", "headers": [(b"x-sandbox-latency-ms", b"999999")]})
    assert chaos.latency_seconds(greedy) == 10
    assert chaos.latency_seconds(request()) == 0.04


def test_fault_rate_and_the_fault_header() -> None:
    never = Chaos(SandboxConfig(database_url="x"))
    assert never.fault_for(request()) is None
    assert never.fault_for(request(fault="error_after")) == "error_after"
    assert never.fault_for(request(fault="nonsense")) is None
    always = Chaos(SandboxConfig(database_url="x", fault_rate=1), random.Random(1))
    # The stored 500 is asked for by header only: drawn at random it would strand renewals.
    assert {always.fault_for(request()) for _ in range(60)} == set(RANDOM_FAULTS)
    assert never.fault_for(request(fault="error_stored")) == "error_stored"
    assert always.fault_for(request("GET")) is None  # reads never fail by chance
