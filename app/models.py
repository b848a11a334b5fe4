"""Every ORM model, imported in one place so Alembic and the tests see the whole schema."""

from app.core.database import Base

__all__ = ["Base"]
