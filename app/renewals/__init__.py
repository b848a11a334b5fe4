"""The renewal engine: plan the next period's renewal shortly before a service expires,
charge it exactly once, reconcile what a crash left behind, and retry failures (dunning)."""
