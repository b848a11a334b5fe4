"""Every ORM model, imported in one place so Alembic and the tests see the whole schema."""

from app.core.database import Base
from app.core.idempotency import IdempotencyRecord
from app.core.ratelimit import RateLimitHit
from app.events.models import (
    Event,
    EventSequence,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.gateway_events.models import GatewayEvent
from app.payment_methods.models import Mandate, PaymentMethod
from app.renewals.models import Renewal, RenewalAttempt
from app.sepa.models import SepaBatch, SepaCollection, SepaReturn, SepaReturnFile
from app.services.models import Service, ServiceChange

__all__ = [
    "Base",
    "Event",
    "EventSequence",
    "GatewayEvent",
    "IdempotencyRecord",
    "Mandate",
    "PaymentMethod",
    "RateLimitHit",
    "Renewal",
    "RenewalAttempt",
    "SepaBatch",
    "SepaCollection",
    "SepaReturn",
    "SepaReturnFile",
    "Service",
    "ServiceChange",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
