"""What a sweep did: counts per outcome, merged once each transaction has committed."""

from __future__ import annotations

from dataclasses import dataclass

from app.renewals import metrics

OUTCOMES = (
    "succeeded",
    "failed",
    "retry_scheduled",
    "requires_action",
    "canceled",
    "outcome_unknown",
    "rate_limited",
    "payment_method_switched",
    "deferred",
)


@dataclass
class SweepSummary:
    """A run's counts: the card sweep's, with the SEPA cycle's and the notices added by the
    run (app/runs). `failed` and `canceled` count SEPA renewals too."""

    planned: int = 0
    notices: int = 0  # renewal.upcoming sent: card renewals planned, SEPA collections fixed
    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    retry_scheduled: int = 0
    requires_action: int = 0
    canceled: int = 0
    outcome_unknown: int = 0
    rate_limited: int = 0
    reconciled: int = 0
    # Our answer came after the renewal was settled (a gateway webhook was faster, or our
    # lease ran out): nothing to do, but the claim is accounted for.
    settled_elsewhere: int = 0
    payment_method_switched: int = 0
    # Left due without a charge: the gateway refused our API key (see gateway_unavailable).
    deferred: int = 0
    sepa_prenotified: int = 0
    sepa_waiting: int = 0
    sepa_released: int = 0
    sepa_settled: int = 0
    expiry_reminders: int = 0
    lapsed: int = 0
    duration_seconds: float = 0.0
    # The sweep met a gateway that refuses to work for us, and stopped charging.
    gateway_unavailable: bool = False
    gateway_unavailable_reason: str | None = None

    def count(self, outcome: str, times: int = 1) -> None:
        setattr(self, outcome, getattr(self, outcome) + times)

    def merge(self, tally: SweepSummary) -> None:
        """Add a committed transaction's tally to the sweep's, and to the metrics.

        Outcomes are tallied per transaction and merged only after its commit, so a group
        that rolls back (and is settled again one by one) is never counted twice."""
        for outcome in OUTCOMES:
            counted = getattr(tally, outcome)
            if counted:
                self.count(outcome, counted)
                metrics.RENEWAL_OUTCOMES.labels(outcome).inc(counted)
        self.claimed += tally.claimed
        self.reconciled += tally.reconciled
        self.settled_elsewhere += tally.settled_elsewhere
