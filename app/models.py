"""Every ORM model, imported in one place so Alembic and the tests see the whole schema."""

from app.core.database import Base
from app.core.idempotency import IdempotencyRecord
from app.payment_methods.models import Mandate, PaymentMethod

__all__ = ["Base", "IdempotencyRecord", "Mandate", "PaymentMethod"]
