"""Prometheus metrics of the gateway adapter and its throttle (served at /metrics)."""

from prometheus_client import Counter, Gauge, Histogram

RATE_LIMITED = Counter(
    "autorenew_gateway_rate_limited_total",
    "429 answers from the payment gateway, by kind of call (off_session or customer).",
    ["call"],
)
THROTTLE_WAIT = Histogram(
    "autorenew_gateway_throttle_wait_seconds",
    "Time one off-session gateway call waited for its turn (pace and 429 pauses).",
    buckets=(0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60),
)
THROTTLE_GAVE_UP = Counter(
    "autorenew_gateway_throttle_gave_up_total",
    "Off-session calls handed back as rate limited: no turn within the wait budget.",
)
THROTTLE_PACE = Gauge(
    "autorenew_gateway_throttle_pace_per_second",
    "Current pace of off-session gateway calls, lowered after a 429 (0 = unpaced).",
)
UNAVAILABLE = Gauge(
    "autorenew_gateway_unavailable",
    "1 while the card gateway refuses to work for us (API key rejected): renewals wait.",
)
GATEWAY_ERRORS = Counter(
    "autorenew_gateway_errors_total",
    "Gateway calls that failed for a reason other than the card, by kind: timeout, network, "
    "rate_limited, server_error, authentication (our API key refused), idempotency, "
    "invalid_request, bad_response. Declines are renewal outcomes, not errors.",
    ["kind"],
)
