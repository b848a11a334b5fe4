"""Every periodic job, on one screen (as `app/api.py` is for routes).

Add a job with one line: `Job("<id>", <async fn(JobContext)>, lambda s: s.<interval setting>)`.
"""

from __future__ import annotations

from app.core.ratelimit import forgetting_job
from app.core.scheduler import Job
from app.events.dispatcher import dispatch_events
from app.payment_methods.cards import expire_cards_job
from app.payment_methods.limits import iban_checks, registrations
from app.renewals.limits import pay_now
from app.runs.service import renewals_job
from app.sepa.collections import sepa_collections_job
from app.services.expiry_watch import announce_expiring_cards_job

JOBS: tuple[Job, ...] = (
    Job("renewal-sweep", renewals_job, lambda s: s.renewal_interval_seconds),
    Job("sepa-collections", sepa_collections_job, lambda s: s.sepa_interval_seconds),
    Job("dispatch-events", dispatch_events, lambda s: s.webhook_dispatch_interval_seconds),
    Job("expire-cards", expire_cards_job, lambda s: s.card_expiry_interval_seconds),
    Job(
        "warn-expiring-cards", announce_expiring_cards_job, lambda s: s.card_expiry_interval_seconds
    ),
    Job(
        "forget-rate-limit-hits",
        forgetting_job(iban_checks, registrations, pay_now),
        lambda s: s.card_expiry_interval_seconds,
    ),
)
