"""Gateway failures are counted by kind for the operators' dashboard and alerts."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import REGISTRY

from app.gateways.port import GatewayError
from app.gateways.stripe import StripeGateway


def _errors(kind: str) -> float:
    return REGISTRY.get_sample_value("autorenew_gateway_errors_total", {"kind": kind}) or 0.0


def _card_error(code: str) -> dict[str, object]:
    return {"error": {"type": "card_error", "code": code, "message": "Your card was declined."}}


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (httpx.Response(401, json={"error": {"type": "invalid_request_error"}}), "authentication"),
        (httpx.Response(403, json={"error": {"type": "invalid_request_error"}}), "authentication"),
        (httpx.Response(429, json={"error": {"type": "invalid_request_error"}}), "rate_limited"),
        (httpx.Response(503, text="<html>down</html>"), "server_error"),
        (httpx.Response(409, json={"error": {"code": "idempotency_key_in_use"}}), "idempotency"),
        (httpx.Response(400, json={"error": {"type": "idempotency_error"}}), "idempotency"),
        (httpx.Response(404, json={"error": {"code": "resource_missing"}}), "invalid_request"),
        (httpx.Response(200, text="not json"), "bad_response"),
        (httpx.ReadTimeout("read timed out"), "timeout"),
        (httpx.ConnectError("refused"), "network"),
        (httpx.Response(402, json=_card_error("card_declined")), None),
        (httpx.Response(402, json=_card_error("authentication_required")), None),
    ],
)
async def test_each_failure_is_counted_once_under_its_kind(
    answer: httpx.Response | httpx.TransportError, kind: str | None
) -> None:
    def respond(_request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    kinds = ("authentication", "rate_limited", "server_error", "idempotency",
             "invalid_request", "bad_response", "timeout", "network")  # fmt: skip
    before = {name: _errors(name) for name in kinds}
    gateway = StripeGateway(
        api_key="sk_test_metrics",
        base_url="https://api.stripe.test",
        transport=httpx.MockTransport(respond),
    )
    try:
        with pytest.raises(GatewayError):
            await gateway.refresh_setup("seti_1")
    finally:
        await gateway.aclose()
    after = {name: _errors(name) for name in kinds}
    assert {name: after[name] - before[name] for name in kinds if after[name] != before[name]} == (
        {kind: 1.0} if kind else {}
    )
