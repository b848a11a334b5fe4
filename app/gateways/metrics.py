"""Prometheus metrics of the gateway throttle (served at /metrics with the others)."""

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
