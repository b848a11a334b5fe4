"""Prometheus metrics of the gateway's webhooks (served at /metrics with the others)."""

from prometheus_client import Counter

GATEWAY_WEBHOOK_EVENTS = Counter(
    "autorenew_gateway_webhook_events_total",
    "Gateway webhook events received, by event type and what receiving them did: applied, "
    "unchanged, not_ours, unhandled (a type we do not act on), replayed (seen before), "
    "rejected (bad or missing signature, or not an event).",
    ["type", "outcome"],
)
