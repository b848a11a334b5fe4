"""Every ORM model, imported in one place so Alembic and the tests see the whole schema."""

from app.core.database import Base
from app.events.models import (
    Event,
    EventSequence,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

__all__ = [
    "Base",
    "Event",
    "EventSequence",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
