"""One typed settings object, read from `AUTORENEW_*` environment variables.

Everything configurable lives here so that the README's configuration table and the
production checks have a single source. `get_settings()` is cached; tests clear it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development defaults: good enough to run on a laptop, refused in production.
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789"  # noqa: S105
DEV_ENCRYPTION_KEY = "ZGV2LW9ubHktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM="  # base64 of 32 bytes

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./autorenew.db"


class ConfigurationError(RuntimeError):
    """The settings contradict each other or are unsafe for the declared environment."""


def normalise_database_url(url: str) -> str:
    """Accept the URLs people paste (`postgres://`, `postgresql://`, `sqlite:///`) and pick
    the async driver the service runs on."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTORENEW_", extra="ignore")

    env: Literal["development", "production"] = "development"
    database_url: str = DEFAULT_SQLITE_URL
    # Replicas sharing this database. SQLite cannot take the row locks that several
    # schedulers need, so production refuses SQLite with more than one.
    replicas: int = Field(default=1, ge=1)
    migrate_on_start: bool = True
    db_pool_size: int = Field(default=10, ge=1)

    # Auth: HS256 with a shared secret, or RS256 with a public key (PEM).
    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_public_key: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway_seconds: int = Field(default=30, ge=0)
    token_default_ttl_seconds: int = Field(default=3600, ge=60)

    # Encryption at rest (IBANs): urlsafe-base64 32-byte key and the id stored next to
    # each ciphertext, so keys can be rotated.
    encryption_key: SecretStr = SecretStr(DEV_ENCRYPTION_KEY)
    encryption_key_id: str = "k1"

    # HTTP
    cors_origins: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    log_level: str = "INFO"

    # --- Scheduler and events/webhooks (app/core/scheduler.py, app/events/) ---------------
    # Every replica runs the in-process scheduler; tests and one-off CLI runs switch it off.
    scheduler_enabled: bool = True
    webhook_dispatch_interval_seconds: float = Field(default=5.0, gt=0)
    webhook_dispatch_batch_size: int = Field(default=50, ge=1, le=1000)
    webhook_dispatch_concurrency: int = Field(default=10, ge=1, le=200)
    # A claimed delivery is invisible to other dispatchers this long; if the claimer dies,
    # the delivery becomes due again when the lease runs out. Must outlast one send.
    webhook_lease_seconds: float = Field(default=120.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_base_seconds: float = Field(default=30.0, gt=0)
    webhook_retry_max_interval_seconds: float = Field(default=12 * 3600.0, gt=0)
    # After this long without a 2xx, a delivery is dead-lettered (manual redelivery only).
    webhook_retry_window_hours: float = Field(default=72.0, gt=0)
    # After a rotation the old secret keeps signing (second signature) this long.
    webhook_secret_overlap_hours: float = Field(default=24.0, ge=0)
    webhook_response_body_limit: int = Field(default=2048, ge=0, le=65536)

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return normalise_database_url(value)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        path = self.database_url.split("///", 1)[1]
        return None if path in ("", ":memory:") else Path(path)

    def check(self) -> None:
        """Refuse configurations that would be unsafe to run. Called at startup."""
        problems: list[str] = []
        if self.env == "production":
            if self.jwt_public_key is None and self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
                problems.append("AUTORENEW_JWT_SECRET is the development secret")
            if self.encryption_key.get_secret_value() == DEV_ENCRYPTION_KEY:
                problems.append("AUTORENEW_ENCRYPTION_KEY is the development key")
            if self.is_sqlite and self.replicas > 1:
                problems.append(
                    "SQLite cannot coordinate several replicas; use PostgreSQL or "
                    "AUTORENEW_REPLICAS=1"
                )
        # A pass sends its batch in waves of `concurrency`, each attempt bounded by the
        # timeout; the lease must outlast the whole pass or deliveries would be sent twice.
        waves = -(-self.webhook_dispatch_batch_size // self.webhook_dispatch_concurrency)
        if self.webhook_lease_seconds <= waves * self.webhook_timeout_seconds:
            problems.append(
                "AUTORENEW_WEBHOOK_LEASE_SECONDS must exceed the longest dispatch pass "
                f"({waves} x AUTORENEW_WEBHOOK_TIMEOUT_SECONDS)"
            )
        if self.jwt_public_key is None and len(self.jwt_secret.get_secret_value()) < 32:
            problems.append("AUTORENEW_JWT_SECRET must be at least 32 characters")
        if problems:
            raise ConfigurationError("; ".join(problems))


@lru_cache
def get_settings() -> Settings:
    return Settings()
