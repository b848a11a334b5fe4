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
DEFAULT_SANDBOX_URL = "sqlite+aiosqlite:///./autorenew-sandbox.db"
# The key the built-in sandbox accepts by default; refused when talking to the real Stripe.
DEV_GATEWAY_API_KEY = "sk_test_autorenew_sandbox"


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

    # --- Card gateway (issue 4): the Stripe adapter, talking to Stripe or to the sandbox ---
    # `sandbox`: the built-in Stripe-compatible gateway (mounted at /sandbox, or another process
    # when gateway_base_url is set); `stripe`: the real Stripe API.
    gateway: Literal["sandbox", "stripe"] = "sandbox"
    # None: https://api.stripe.com for `stripe`, the in-process sandbox for `sandbox`.
    gateway_base_url: str | None = None
    gateway_api_key: SecretStr = SecretStr(DEV_GATEWAY_API_KEY)
    gateway_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    gateway_timeout_seconds: float = Field(default=30.0, gt=0)
    gateway_max_connections: int = Field(default=20, ge=1)
    # Where browsers reach this service: the 3-D Secure page URL of the mounted sandbox is
    # built from it (`<public_base_url>/sandbox/3ds/...`).
    public_base_url: str = "http://127.0.0.1:8000"
    # Serve the sandbox at /sandbox (only ever with gateway=sandbox).
    sandbox_mounted: bool = True
    sandbox_database_url: str = DEFAULT_SANDBOX_URL
    # Latency added to each sandbox API call: `fixed`, or `random` (log-normal, this median).
    sandbox_latency_ms: float = Field(default=0.0, ge=0)
    sandbox_latency_mode: Literal["fixed", "random"] = "fixed"
    # Share of POSTs that fail: 5xx before acting, 5xx after acting (response lost), or a
    # hang after acting (the client times out).
    sandbox_fault_rate: float = Field(default=0.0, ge=0, le=1)
    sandbox_fault_hang_seconds: float = Field(default=60.0, ge=0)
    # Requests per second per sandbox process before 429 + Retry-After; 0 = unlimited.
    sandbox_rate_limit_per_second: float = Field(default=0.0, ge=0)

    @field_validator("database_url", "sandbox_database_url")
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
        if self.gateway == "stripe" and (
            self.gateway_api_key.get_secret_value() == DEV_GATEWAY_API_KEY
            or not self.gateway_api_key.get_secret_value().startswith(("sk_", "rk_"))
        ):
            problems.append("AUTORENEW_GATEWAY_API_KEY must be a Stripe secret key (sk_…)")
        if self.gateway == "sandbox" and not self.sandbox_mounted and not self.gateway_base_url:
            problems.append(
                "AUTORENEW_GATEWAY=sandbox with AUTORENEW_SANDBOX_MOUNTED=false needs "
                "AUTORENEW_GATEWAY_BASE_URL (where the sandbox process listens)"
            )
        if self.jwt_public_key is None and len(self.jwt_secret.get_secret_value()) < 32:
            problems.append("AUTORENEW_JWT_SECRET must be at least 32 characters")
        if problems:
            raise ConfigurationError("; ".join(problems))


@lru_cache
def get_settings() -> Settings:
    return Settings()
