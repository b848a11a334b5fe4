"""The startup check: refuse settings that contradict each other or are unsafe to run.

Apart from `settings.py` so that the settings object stays a plain list of what can be
configured, and so that this module may import the rules it checks against (SEPA
identifiers, IBANs, keys) without `settings.py` importing anything that imports it.
"""

from __future__ import annotations

from app.core.keys import key_problem
from app.core.networks import network_problem
from app.core.settings import (
    DEV_ENCRYPTION_KEY,
    DEV_GATEWAY_API_KEY,
    DEV_JWT_SECRET,
    DEV_SANDBOX_WEBHOOK_SECRET,
    DEV_SEPA_CREDITOR_IBAN,
    DEV_SEPA_CREDITOR_ID,
    SEPA_CALENDAR_MARGIN_DAYS,
    ConfigurationError,
    Settings,
)


def check_settings(settings: Settings) -> None:
    """Raise ConfigurationError naming every problem. Called at startup (app and CLI)."""
    problems = [
        *_production_problems(settings),
        *_gateway_problems(settings),
        *_publishable_key_problems(settings),
        *_webhook_secret_problems(settings),
        *_timing_problems(settings),
        *_sepa_problems(settings),
    ]
    if settings.jwt_public_key is None and len(settings.jwt_secret.get_secret_value()) < 32:
        problems.append("AUTORENEW_JWT_SECRET must be at least 32 characters")
    if problems:
        raise ConfigurationError("; ".join(problems))


def _production_problems(s: Settings) -> list[str]:
    if s.env != "production":
        return []
    problems = []
    if s.jwt_public_key is None and s.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
        problems.append("AUTORENEW_JWT_SECRET is the development secret")
    if s.encryption_key.get_secret_value() == DEV_ENCRYPTION_KEY:
        problems.append("AUTORENEW_ENCRYPTION_KEY is the development key")
    if s.is_sqlite and s.replicas > 1:
        problems.append(
            "SQLite cannot coordinate several replicas; use PostgreSQL or AUTORENEW_REPLICAS=1"
        )
    if s.sepa_creditor_id == DEV_SEPA_CREDITOR_ID:
        problems.append("AUTORENEW_SEPA_CREDITOR_ID is the development identifier")
    if s.sepa_creditor_iban == DEV_SEPA_CREDITOR_IBAN:
        problems.append("AUTORENEW_SEPA_CREDITOR_IBAN is the development account")
    if s.gateway == "sandbox":
        # A mounted sandbox answers any sk_test_… key on the public port, ledger included:
        # every customer's charges. Never in production, whatever else is said.
        if s.sandbox_mounted:
            problems.append(
                "AUTORENEW_SANDBOX_MOUNTED=true serves the sandbox gateway and its ledger on "
                "the public port: production needs AUTORENEW_GATEWAY=stripe"
            )
        elif not s.allow_sandbox_gateway:
            problems.append(
                "AUTORENEW_GATEWAY=sandbox charges no one: production needs "
                "AUTORENEW_GATEWAY=stripe (a staging or drill with a sandbox process sets "
                "AUTORENEW_ALLOW_SANDBOX_GATEWAY=true)"
            )
    return problems


def _gateway_problems(s: Settings) -> list[str]:
    problems = []
    secret = s.gateway_api_key.get_secret_value()
    if s.gateway == "stripe" and (
        secret == DEV_GATEWAY_API_KEY or not secret.startswith(("sk_", "rk_"))
    ):
        problems.append("AUTORENEW_GATEWAY_API_KEY must be a Stripe secret key (sk_…)")
    if s.gateway == "sandbox" and not s.sandbox_mounted and not s.gateway_base_url:
        problems.append(
            "AUTORENEW_GATEWAY=sandbox with AUTORENEW_SANDBOX_MOUNTED=false needs "
            "AUTORENEW_GATEWAY_BASE_URL (where the sandbox process listens)"
        )
    return problems


def _timing_problems(s: Settings) -> list[str]:
    problems = []
    # A pass sends its batch in waves of `concurrency`, each attempt bounded by the
    # timeout; the lease must outlast the whole pass or deliveries would be sent twice.
    waves = -(-s.webhook_dispatch_batch_size // s.webhook_dispatch_concurrency)
    if s.webhook_lease_seconds <= waves * s.webhook_timeout_seconds:
        problems.append(
            "AUTORENEW_WEBHOOK_LEASE_SECONDS must exceed the longest dispatch pass "
            f"({waves} x AUTORENEW_WEBHOOK_TIMEOUT_SECONDS)"
        )
    # A SEPA renewal is announced at its lead; the collection follows the notice (the
    # longer of the consumer notice and SEPA's pre-notification) and the bank's lead.
    sepa_needs = (
        max(s.sepa_prenotification_days, s.renewal_notice_days)
        + s.sepa_submission_lead_business_days
        + SEPA_CALENDAR_MARGIN_DAYS
    )
    if s.renewal_lead_days_sepa < sepa_needs:
        problems.append(
            f"AUTORENEW_RENEWAL_LEAD_DAYS_SEPA={s.renewal_lead_days_sepa} leaves no room "
            f"for the notice and the bank's lead: it needs at least {sepa_needs}"
        )
    # The lease is taken before the call, which may wait its whole budget in the
    # throttle and then run to its timeouts.
    gateway_call_seconds = (
        s.gateway_connect_timeout_seconds
        + s.gateway_timeout_seconds
        + s.gateway_rate_limit_max_wait_seconds
    )
    if s.renewal_lease_seconds <= gateway_call_seconds:
        problems.append(
            "AUTORENEW_RENEWAL_LEASE_SECONDS must outlast a gateway call (connect + read "
            "timeout + AUTORENEW_GATEWAY_RATE_LIMIT_MAX_WAIT_SECONDS), or a live worker's "
            "renewal would be taken over"
        )
    return problems


def _publishable_key_problems(s: Settings) -> list[str]:
    key = s.gateway_publishable_key
    if key is None:
        if s.env == "production" and s.gateway == "stripe":
            return ["AUTORENEW_GATEWAY_PUBLISHABLE_KEY is needed: the SPA tokenizes with it"]
        return []
    if not key.startswith(("pk_test_", "pk_live_")):
        return ["AUTORENEW_GATEWAY_PUBLISHABLE_KEY must be a publishable key (pk_…)"]
    secret = s.gateway_api_key.get_secret_value()
    if s.gateway == "stripe" and ("_live_" in key) != ("_live_" in secret):
        return ["AUTORENEW_GATEWAY_PUBLISHABLE_KEY and _API_KEY are of different modes"]
    if s.gateway == "sandbox" and key.startswith("pk_live_"):
        return ["the sandbox gateway takes test keys only (pk_test_…)"]
    return []


def _webhook_secret_problems(s: Settings) -> list[str]:
    secret = s.gateway_webhook_secret
    if s.gateway != "stripe":
        return []
    if secret is None:
        if s.env == "production":
            # Without it card updates, detached cards, disputes and refunds never arrive.
            return [
                "AUTORENEW_GATEWAY_WEBHOOK_SECRET is needed with AUTORENEW_GATEWAY=stripe: "
                "Stripe's webhooks are verified with it"
            ]
        return []
    value = secret.get_secret_value()
    if value == DEV_SANDBOX_WEBHOOK_SECRET or not value.startswith("whsec_"):
        return [
            "AUTORENEW_GATEWAY_WEBHOOK_SECRET must be the signing secret (whsec_…) of the "
            "Stripe webhook endpoint"
        ]
    return []


def _sepa_problems(s: Settings) -> list[str]:
    # Imported here: these load schwifty (IBAN and bank registries), some 50 ms more for
    # every import of this module, when only the startup check needs them.
    from app.payment_methods.iban import check_iban
    from app.payment_methods.sepa_rules import creditor_id_problem, to_sepa_text

    problems = []
    if problem := key_problem(s.encryption_key.get_secret_value()):
        problems.append(f"AUTORENEW_ENCRYPTION_KEY {problem}")
    if not s.encryption_key_id.strip():
        problems.append("AUTORENEW_ENCRYPTION_KEY_ID must not be empty")
    for key_id, key in s.encryption_old_keys.items():
        if key_id == s.encryption_key_id:
            problems.append(f"AUTORENEW_ENCRYPTION_OLD_KEYS reuses the current key id {key_id}")
        if problem := key_problem(key.get_secret_value()):
            problems.append(f"AUTORENEW_ENCRYPTION_OLD_KEYS[{key_id}] {problem}")
    if problem := creditor_id_problem(s.sepa_creditor_id):
        problems.append(f"AUTORENEW_SEPA_CREDITOR_ID {problem}")
    if not check_iban(s.sepa_creditor_iban).valid:
        problems.append("AUTORENEW_SEPA_CREDITOR_IBAN is not a valid IBAN")
    if s.sepa_creditor_bic is not None and not _valid_bic(s.sepa_creditor_bic):
        problems.append("AUTORENEW_SEPA_CREDITOR_BIC is not a valid BIC")
    name, rejected = to_sepa_text(s.sepa_creditor_name)
    if not name or len(name) > 70 or rejected:
        problems.append("AUTORENEW_SEPA_CREDITOR_NAME must have 1 to 70 characters of the SEPA set")
    for proxy in s.trusted_proxies:
        if problem := network_problem(proxy):
            problems.append(f"AUTORENEW_TRUSTED_PROXIES: {proxy!r} {problem}")
    for network in s.webhook_allowed_networks or []:
        if problem := network_problem(network):
            problems.append(f"AUTORENEW_WEBHOOK_ALLOWED_NETWORKS: {network!r} {problem}")
    return problems


def _valid_bic(value: str) -> bool:
    from schwifty import BIC
    from schwifty.exceptions import SchwiftyException

    try:
        BIC(value)
    except SchwiftyException:
        return False
    return True
