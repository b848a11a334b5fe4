"""Production refuses unsafe settings; URLs are normalised to the async drivers."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from app.core.settings import (
    DEV_SANDBOX_WEBHOOK_SECRET,
    ConfigurationError,
    Settings,
    normalise_database_url,
)
from app.core.settings_checks import check_settings

SAFE = {
    "jwt_secret": SecretStr("a-production-secret-that-is-long-enough-1234"),
    "encryption_key": SecretStr("cHJvZHVjdGlvbi1rZXktb2YtMzItYnl0ZXMtLS0tLS0="),
    "database_url": "postgresql+asyncpg://db/autorenew",
    "sepa_creditor_id": "ES59ZZZX1234567L",
    "sepa_creditor_iban": "DE89370400440532013000",
    "gateway": "stripe",
    "gateway_api_key": SecretStr("sk_live_a_real_looking_key"),
    "gateway_publishable_key": "pk_live_a_real_looking_key",
    "gateway_webhook_secret": SecretStr("whsec_0123abcd"),
}


def test_production_with_safe_settings_starts() -> None:
    check_settings(Settings(env="production", **SAFE))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"jwt_secret": Settings().jwt_secret}, "JWT_SECRET"),
        ({"encryption_key": Settings().encryption_key}, "ENCRYPTION_KEY"),
        ({"database_url": "sqlite+aiosqlite:///x.db", "replicas": 2}, "SQLite"),
        ({"sepa_creditor_id": Settings().sepa_creditor_id}, "SEPA_CREDITOR_ID"),
        ({"sepa_creditor_iban": Settings().sepa_creditor_iban}, "SEPA_CREDITOR_IBAN"),
        ({"sepa_creditor_iban": "DE00370400440532013000"}, "not a valid IBAN"),
        ({"sepa_creditor_bic": "NOTABIC"}, "not a valid BIC"),
    ],
)
def test_production_refuses_unsafe_settings(override: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        check_settings(Settings(env="production", **{**SAFE, **override}))


STRIPE = {
    "gateway": "stripe",
    "gateway_api_key": SecretStr("sk_live_a_real_looking_key"),
    "gateway_publishable_key": "pk_live_a_real_looking_key",
}


def test_production_on_stripe_needs_the_webhook_signing_secret() -> None:
    # Without it, card updates, detached cards, disputes and refunds would never arrive.
    with pytest.raises(ConfigurationError, match="AUTORENEW_GATEWAY_WEBHOOK_SECRET is needed"):
        check_settings(Settings(env="production", **{**SAFE, "gateway_webhook_secret": None}))
    configured = Settings(env="production", **SAFE)
    check_settings(configured)
    assert configured.webhook_signing_secret == "whsec_0123abcd"


@pytest.mark.parametrize("secret", ["sk_live_not_a_signing_secret", DEV_SANDBOX_WEBHOOK_SECRET])
def test_a_stripe_webhook_secret_must_be_a_real_signing_secret(secret: str) -> None:
    with pytest.raises(ConfigurationError, match="AUTORENEW_GATEWAY_WEBHOOK_SECRET must be"):
        check_settings(Settings(**STRIPE, gateway_webhook_secret=SecretStr(secret)))


def test_webhooks_verify_with_the_sandbox_secret_in_development() -> None:
    assert Settings().webhook_signing_secret == DEV_SANDBOX_WEBHOOK_SECRET
    # On Stripe in development, without a secret the route refuses every event (503).
    check_settings(Settings(**STRIPE))
    assert Settings(**STRIPE).webhook_signing_secret is None


def test_development_allows_the_defaults() -> None:
    check_settings(Settings(env="development"))


def test_short_jwt_secret_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="32 characters"):
        check_settings(Settings(jwt_secret=SecretStr("short")))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///./a.db", "sqlite+aiosqlite:///./a.db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_database_urls_are_normalised(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected
    assert Settings(database_url=given).database_url == expected
