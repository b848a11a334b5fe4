"""Prometheus metrics of the renewal engine (served at /metrics with the HTTP ones).

What is waiting (the due backlog, the oldest due renewal) is read from the database on
scrape: app/health/gauges.py.
"""

from prometheus_client import Counter, Histogram

RENEWAL_OUTCOMES = Counter(
    "autorenew_renewal_outcomes_total",
    "Renewal attempts settled, by outcome.",
    ["outcome"],
)
SWEEP_DURATION = Histogram(
    "autorenew_renewal_sweep_duration_seconds",
    "Wall time of one renewal sweep.",
    buckets=(0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900),
)
GATEWAY_LATENCY = Histogram(
    "autorenew_gateway_call_duration_seconds",
    "Latency of charge calls to the payment gateway.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
