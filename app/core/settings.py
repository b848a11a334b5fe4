"""One typed settings object, read from `AUTORENEW_*` environment variables.

Everything configurable lives here so that the README's configuration table and the
production checks have a single source. `get_settings()` is cached; tests clear it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development defaults: good enough to run on a laptop, refused in production.
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789"  # noqa: S105
DEV_ENCRYPTION_KEY = "ZGV2LW9ubHktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM="  # base64 of 32 bytes

# A SEPA collection date is a TARGET2 business day: around Easter the next one can be four
# calendar days away (Good Friday to Tuesday), so the SEPA lead keeps that much spare.
SEPA_CALENDAR_MARGIN_DAYS = 4
# A well-formed Spanish creditor identifier (check digits 11, business code 000, CIF
# B12345674) for development only.
DEV_SEPA_CREDITOR_ID = "ES11000B12345674"
# A well-formed Spanish account (CaixaBank's bank code) for development files only.
DEV_SEPA_CREDITOR_IBAN = "ES6021000813606101234567"

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./autorenew.db"
DEFAULT_SANDBOX_URL = "sqlite+aiosqlite:///./autorenew-sandbox.db"
# The key the built-in sandbox accepts by default; refused when talking to the real Stripe.
DEV_GATEWAY_API_KEY = "sk_test_autorenew_sandbox"
# The publishable key the SPA tokenizes with against the sandbox (it accepts any pk_test_…).
DEV_GATEWAY_PUBLISHABLE_KEY = "pk_test_autorenew_sandbox"
# What the sandbox signs its webhooks with by default (development only; a receiver of the
# sandbox's events configures the same value).
DEV_SANDBOX_WEBHOOK_SECRET = "whsec_autorenew_sandbox_development_only"  # noqa: S105


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

    # --- SEPA direct debit methods, encryption at rest, idempotency (issue 3) ---
    # Keys retired by a rotation, still able to decrypt until `autorenew reencrypt-ibans`
    # has moved every row to the current key: JSON `{"k0": "<base64 of 32 bytes>"}`.
    encryption_old_keys: dict[str, SecretStr] = Field(default_factory=dict)
    # The creditor of every mandate (SEPA Creditor Identifier and name on the bank's file).
    sepa_creditor_id: str = DEV_SEPA_CREDITOR_ID
    sepa_creditor_name: str = "Autorenew Hosting S.L."
    # POST /v1/iban-checks is an oracle for guessing accounts: at most this many checks per
    # caller per window. Counted in each replica's memory, so the cluster-wide limit is
    # replicas times this.
    iban_check_rate_limit: int = Field(default=30, ge=1)
    iban_check_rate_window_seconds: int = Field(default=60, ge=1)
    # POST /v1/payment-methods answers the same oracle (why an IBAN is refused) and, for
    # cards, would let someone test stolen numbers against the gateway: registrations per
    # caller per window, counted like the IBAN checks. Idempotent replays are not counted.
    payment_method_create_rate_limit: int = Field(default=20, ge=1)
    payment_method_create_rate_window_seconds: int = Field(default=3600, ge=1)
    # Peers (IPs or CIDR networks) whose X-Forwarded-For is believed when recording the
    # client IP of a mandate acceptance. Empty: the TCP peer is the client.
    trusted_proxies: list[str] = Field(default_factory=list)
    idempotency_key_ttl_hours: int = Field(default=24, ge=1)

    # HTTP
    cors_origins: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    log_level: str = "INFO"
    # When set, GET /metrics answers only `Authorization: Bearer <this>` (what the metrics
    # say about volumes and failures is not for everyone who can reach the port).
    metrics_token: SecretStr | None = None

    # Payment-method imports from the previous panel (app/imports). The HTTP route streams
    # the body, so these bound the work one request can ask for, not the memory it takes;
    # `autorenew import payment-methods` reads a file and is bounded by neither.
    import_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    import_max_lines: int = Field(default=100_000, ge=1)
    import_max_line_bytes: int = Field(default=16 * 1024, ge=512)
    # Card look-ups at the gateway in flight at once during an import's checking pass.
    import_gateway_concurrency: int = Field(default=8, ge=1, le=64)

    # Renewal timing: how many days before a service expires its renewal is charged. The
    # effective lead is the larger of the payment method's and the service kind's (see
    # app/services/lead_time.py). SEPA needs the longest: pre-notification + bank lead.
    renewal_lead_days: int = Field(default=7, ge=1, le=90)
    renewal_lead_days_sepa: int = Field(default=21, ge=1, le=90)
    renewal_lead_days_by_kind: dict[str, int] = Field(default_factory=lambda: {"domain": 14})
    sepa_prenotification_days: int = Field(default=14, ge=1, le=30)
    sepa_submission_lead_business_days: int = Field(default=1, ge=1, le=5)
    # The notice before every charge, card or SEPA (`renewal.upcoming`): Spain's consumer
    # law asks for 15 days before a subscription renewal is charged, and the same notice is
    # SEPA's pre-notification. 0 turns it off (business customers); SEPA then still gives
    # its own pre-notification days.
    renewal_notice_days: int = Field(default=15, ge=0, le=60)
    # When a full notice no longer fits before expiry (registered late, expiry moved closer),
    # the charge waits for the last moment that still renews in time: this many days before.
    renewal_short_notice_lead_days: int = Field(default=1, ge=0, le=30)
    # Expiry reminders (`service.expiring`), per kind: days before expiry (negative: after).
    # Registrars owe domain holders one about a month and one a week ahead, one just after.
    expiry_notice_days_by_kind: dict[str, list[int]] = Field(
        default_factory=lambda: {"domain": [30, 7, -3]}
    )

    # Renewal engine: how a sweep charges, and how failures are retried (dunning).
    renewal_interval_seconds: int = Field(default=300, ge=1)
    renewal_batch_size: int = Field(default=20, ge=1, le=1000)
    renewal_concurrency: int = Field(default=8, ge=1, le=256)
    # A claimed renewal's lease: longer than a gateway call with its timeouts, so a live
    # worker is never taken over; a dead worker's renewals are reconciled after it.
    renewal_lease_seconds: int = Field(default=120, ge=2)
    dunning_schedule_days: list[int] = Field(default_factory=lambda: [1, 3, 5])
    renewal_grace_days: int = Field(default=0, ge=0, le=60)
    # Off by default: when a renewal's method fails for good, charge the customer's default
    # method, then their other validated cards, instead of failing (app/renewals/fallback.py).
    renewal_fallback_enabled: bool = False
    # Stripe keeps idempotency keys for at least 24 hours; within that window a lost answer
    # is recovered by re-sending the same request, after it only by looking the charge up.
    gateway_idempotency_window_hours: int = Field(default=23, ge=1, le=24)

    # --- SEPA collections (issue 7): the account collected into, sequence types, settlement ---
    # The creditor's account that pain.008 files debit into (and its BIC, required by
    # pain.008.001.02 only).
    sepa_creditor_iban: str = DEV_SEPA_CREDITOR_IBAN
    sepa_creditor_bic: str | None = "CAIXESBBXXX"
    # Present a mandate's first collection as RCUR (allowed since the 2016 rulebook).
    sepa_first_as_recurring: bool = False
    # Business days after the collection date without a return before a collection counts
    # as settled (the interbank return window of SDD Core is 5 business days).
    sepa_settlement_business_days: int = Field(default=5, ge=0, le=20)
    sepa_interval_seconds: int = Field(default=300, ge=1)

    # --- Card gateway (issue 4): the Stripe adapter, talking to Stripe or to the sandbox ---
    # `sandbox`: the built-in Stripe-compatible gateway (mounted at /sandbox, or another process
    # when gateway_base_url is set); `stripe`: the real Stripe API.
    gateway: Literal["sandbox", "stripe"] = "sandbox"
    # None: https://api.stripe.com for `stripe`, the in-process sandbox for `sandbox`.
    gateway_base_url: str | None = None
    gateway_api_key: SecretStr = SecretStr(DEV_GATEWAY_API_KEY)
    # The publishable key (`pk_…`) the SPA tokenizes cards with, served by
    # GET /v1/payment-methods/setup; None: the sandbox's development key with gateway=sandbox.
    gateway_publishable_key: str | None = None
    # The signing secret (`whsec_…`) of the webhook endpoint that sends Stripe's events to
    # POST /v1/gateway-webhooks/stripe. None: AUTORENEW_SANDBOX_WEBHOOK_SECRET with
    # gateway=sandbox; with gateway=stripe, events are refused (and production will not start).
    gateway_webhook_secret: SecretStr | None = None
    gateway_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    gateway_timeout_seconds: float = Field(default=30.0, gt=0)
    gateway_max_connections: int = Field(default=20, ge=1)
    # --- Client-side throttle (issue 9, app/gateways/throttle.py) ---
    # Off-session calls (renewal charges, lookups) per second from this process, evenly spaced;
    # 0 = unpaced. Keep it under the gateway's limit divided by the replicas, with room left
    # for card registrations, which are never paced.
    gateway_max_requests_per_second: float = Field(default=0.0, ge=0)
    # How long one off-session call may wait for its turn (pace and 429 Retry-After pauses)
    # before RateLimited reaches the engine, which reschedules; 0 = never wait, never retry.
    gateway_rate_limit_max_wait_seconds: float = Field(default=30.0, ge=0)
    # Where browsers reach this service: the 3-D Secure page URL of the mounted sandbox is
    # built from it (`<public_base_url>/sandbox/3ds/...`).
    public_base_url: str = "http://127.0.0.1:8000"
    # Serve the sandbox at /sandbox (only ever with gateway=sandbox).
    sandbox_mounted: bool = True
    # Production refuses the sandbox gateway (it charges no one); a staging deployment or a
    # drill that runs the sandbox as its own process says so here. Never a mounted one.
    allow_sandbox_gateway: bool = False
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
    # Browser origins the sandbox answers CORS for (the SPA tokenizing with the publishable
    # key). Mounted, the service's AUTORENEW_CORS_ORIGINS are allowed as well.
    sandbox_cors_origins: list[str] = Field(default_factory=list)
    # Where the sandbox sends Stripe's events (signed like Stripe's, with the secret below);
    # unset: events are only recorded (GET /sandbox/v1/events).
    sandbox_webhook_url: str | None = None
    sandbox_webhook_secret: SecretStr = SecretStr(DEV_SANDBOX_WEBHOOK_SECRET)

    # --- Card methods (issue 4, registration): POST /v1/payment-methods with type=card ---
    # Where the customer's browser is sent back after 3-D Secure: the customer-area page,
    # which then calls POST /v1/payment-methods/{id}/validate. None: <public_base_url>/.
    card_return_url: str | None = None
    # Trusted internal callers only: accept a card number and CVC and tokenize them at the
    # gateway (nothing is kept). Off, such a body is refused: it would bring this service
    # into the heaviest PCI DSS scope.
    accept_raw_card_data: bool = False
    # How often cards past their expiry month are marked expired (payment_method.expired).
    card_expiry_interval_seconds: float = Field(default=3600.0, gt=0)

    # --- Paying a renewal now (issue 13, app/renewals/paying.py) ---
    # The customer-area page the browser lands on after authenticating a renewal payment
    # (`?renewal_id=…&status=…` added). None: <public_base_url>/. Absolute http(s) only.
    payment_return_url: str | None = None
    # POST /v1/renewals/{id}/pay (and the 3-D Secure link) reach the gateway with the
    # customer present: at most this many per customer per window, in each replica.
    renewal_pay_rate_limit: int = Field(default=10, ge=1)
    renewal_pay_rate_window_seconds: int = Field(default=600, ge=1)

    @field_validator("payment_return_url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if value is not None and not absolute_http_url(value):
            raise ValueError("an absolute http(s) URL, such as https://example.com/billing")
        return value

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
    # Networks (CIDR) webhooks may be sent to besides public addresses, e.g. an internal
    # receiver's. None: loopback in development, none in production (app/events/destinations.py).
    webhook_allowed_networks: list[str] | None = None

    @field_validator("expiry_notice_days_by_kind")
    @classmethod
    def _reminder_offsets(cls, value: dict[str, list[int]]) -> dict[str, list[int]]:
        for kind, offsets in value.items():
            if len(set(offsets)) != len(offsets) or any(not -60 <= d <= 365 for d in offsets):
                raise ValueError(f"{kind}: distinct days between -60 and 365")
        # Earliest reminder first, as the reminder job walks them.
        return {kind: sorted(offsets, reverse=True) for kind, offsets in value.items()}

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

    @property
    def publishable_key(self) -> str | None:
        """The key the SPA tokenizes cards with."""
        if self.gateway_publishable_key is None and self.gateway == "sandbox":
            return DEV_GATEWAY_PUBLISHABLE_KEY
        return self.gateway_publishable_key

    @property
    def webhook_signing_secret(self) -> str | None:
        """The secret Stripe's (or the sandbox's) webhooks are verified with, if any."""
        if self.gateway_webhook_secret is not None:
            return self.gateway_webhook_secret.get_secret_value()
        if self.gateway == "sandbox":
            return self.sandbox_webhook_secret.get_secret_value()  # what the sandbox signs with
        return None


def absolute_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.fragment


@lru_cache
def get_settings() -> Settings:
    return Settings()
