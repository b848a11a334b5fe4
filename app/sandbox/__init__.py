"""The sandbox gateway: a small Stripe-compatible web app, part of this project.

It speaks the subset of Stripe's v1 API the `stripe` adapter uses, knows Stripe's test cards,
serves a 3-D Secure challenge page, honours idempotency keys as Stripe does, keeps its ledger
in its own database, and can add latency, faults and rate limits. Mounted at `/sandbox` in
the embedded default, or run alone with `autorenew sandbox-gateway --port N`.
"""
