"""A Python client generated from openapi.yaml runs the main journey against a live server.

What an integrator does: `openapi-python-client generate` (pinned in the dev extras) with
the settings in `openapi-python-client.yaml`, then provisioning registers a service, the
customer registers a card tokenized at the sandbox, picks it for the service, a sweep renews
it, and the renewals list parses into the generated models. Any generator warning fails the
test: a warning is an operation or a model the client silently lacks.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from app.core.auth import mint_token
from app.core.settings import Settings
from tests.processes import autorenew_server

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = Path(sys.executable).with_name("openapi-python-client")
PACKAGE = "autorenew_client"


@pytest.fixture
def client_package(tmp_path: Path) -> Iterator[ModuleType]:
    generated = subprocess.run(
        [
            str(GENERATOR), "generate",
            "--path", str(ROOT / "openapi.yaml"),
            "--config", str(ROOT / "openapi-python-client.yaml"),
            "--meta", "none",
            "--output-path", str(tmp_path / PACKAGE),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = generated.stdout + generated.stderr
    assert generated.returncode == 0, output
    assert output.strip() == f"Generating {tmp_path / PACKAGE}", output  # no warning at all
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _api(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.api.{name}")


@pytest.mark.slow
def test_the_main_journey_through_a_generated_client(
    client_package: ModuleType, tmp_path: Path
) -> None:
    models = importlib.import_module(f"{PACKAGE}.models")
    settings = Settings()
    now = datetime.now(UTC)
    with (
        autorenew_server(tmp_path) as (base_url, _log),
        client_package.AuthenticatedClient(
            base_url, token=mint_token(settings, subject="ops", admin=True, ttl=None, now=now)
        ) as admin,
        client_package.AuthenticatedClient(
            base_url, token=mint_token(settings, subject="cus_gen", admin=False, ttl=None, now=now)
        ) as customer,
    ):
        # Provisioning registers a hosting plan expiring inside the card lead (7 days).
        expires_at = now + timedelta(days=5)
        upserted = _api("services_admin.upsert_service").sync_detailed(
            "host-gen",
            client=admin,
            body=models.ServiceUpsert(
                customer_id="cus_gen",
                kind="hosting",
                name="Hosting Pro",
                expires_at=expires_at,
                period_months=12,
                price=models.Money(amount=1299, currency="EUR"),
            ),
        )
        assert upserted.status_code == 201, upserted.content
        assert isinstance(upserted.parsed, models.ServiceOut)

        # The card is tokenized at the gateway (the sandbox, as the browser would), and
        # the service only ever sees the token.
        tokenized = httpx.post(
            f"{base_url}/sandbox/v1/payment_methods",
            auth=("sk_test_generated", ""),
            data={
                "type": "card",
                "card[number]": "4242424242424242",
                "card[exp_month]": "12",
                "card[exp_year]": str(now.year + 3),
                "card[cvc]": "123",
            },
        )
        assert tokenized.status_code == 200, tokenized.text
        card = _api("payment_methods.create_payment_method").sync(
            client=customer,
            body=models.CardCreate(type_="card", card=models.CardIn(token=tokenized.json()["id"])),
        )
        assert isinstance(card, models.PaymentMethodOut), card
        assert card.status == models.PaymentMethodStatus.VALIDATED

        # Choosing the method is the customer's opt-in: auto-renew turns on with it.
        service = _api("services.assign_method").sync(
            "host-gen",
            client=customer,
            body=models.PaymentMethodAssignment(payment_method_id=card.id),
        )
        assert isinstance(service, models.ServiceOut), service
        assert service.auto_renew is True and service.renewal_readiness == "ok"

        summary = _api("renewals_admin.run_sweep").sync(client=admin)
        assert isinstance(summary, models.SweepSummaryOut), summary
        assert summary.succeeded == 1

        page = _api("renewals.list_my_renewals").sync(client=customer)
        assert isinstance(page, models.RenewalPage), page
        [renewal] = page.data
        assert isinstance(renewal, models.RenewalOut)
        assert renewal.status == "succeeded" and renewal.service_id == "host-gen"
        assert renewal.amount.amount == 1299 and renewal.amount.currency == "EUR"
        [attempt] = renewal.attempts
        assert isinstance(attempt, models.RenewalAttemptOut)
        assert attempt.status == "succeeded" and attempt.gateway_charge_id

        renewed = _api("services.get_my_service").sync("host-gen", client=customer)
        assert isinstance(renewed, models.ServiceOut)
        assert renewed.expires_at.year == expires_at.year + 1
