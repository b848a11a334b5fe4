"""The scale-out recipe: the compose file says what the README says, and the verdict of a
run (tests/renewal_runs.py, used by bench/scale_out.py and the replica tests) catches a
renewal charged twice, one left unfinished and a service moved the wrong way."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tests.renewal_runs import RenewalRow, ServiceRow, judge

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def test_compose_runs_three_production_replicas_on_one_postgresql_after_one_migration() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "sandbox", "migrate", "app"}
    app, migrate = services["app"], services["migrate"]
    assert app["deploy"]["replicas"] == 3
    assert app["environment"]["AUTORENEW_REPLICAS"] == "3"
    assert app["environment"]["AUTORENEW_ENV"] == "production"
    assert app["environment"]["AUTORENEW_MIGRATE_ON_START"] == "false"
    assert "@postgres:5432/" in app["environment"]["AUTORENEW_DATABASE_URL"]
    assert migrate["command"] == ["autorenew", "migrate"]
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"]
    assert services["sandbox"]["command"][:2] == ["autorenew", "sandbox-gateway"]


def test_every_value_the_compose_file_requires_is_in_the_env_example() -> None:
    required = set(re.findall(r"\$\{(\w+):\?", (DEPLOY / "compose.yaml").read_text()))
    example = {
        line.split("=", 1)[0]
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert required
    assert required <= example


BEFORE = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
AFTER = datetime(2027, 11, 27, 9, 0, tzinfo=UTC)


def charge(renewal_id: str, amount: int = 1000, status: str = "succeeded") -> dict[str, Any]:
    return {"status": status, "amount": amount, "metadata": {"renewal_id": renewal_id}}


def test_a_run_with_one_charge_per_renewal_is_clean() -> None:
    verdict = judge(
        [charge("ren_a"), charge("ren_b", status="requires_payment_method")],
        [
            RenewalRow("ren_a", "svc-a", "succeeded", 1000),
            RenewalRow("ren_b", "svc-b", "failed", 1000),
        ],
        [ServiceRow("svc-a", AFTER, 12), ServiceRow("svc-b", BEFORE, 12)],
        {"svc-a": BEFORE, "svc-b": BEFORE},
    )
    assert verdict.clean
    assert verdict.renewals_by_status == {"succeeded": 1, "failed": 1}


def test_a_renewal_charged_twice_is_a_duplicate() -> None:
    verdict = judge(
        [charge("ren_a"), charge("ren_a")],
        [RenewalRow("ren_a", "svc-a", "succeeded", 1000)],
        [ServiceRow("svc-a", AFTER, 12)],
        {"svc-a": BEFORE},
    )
    assert verdict.duplicates == ["ren_a"]
    assert not verdict.clean


def test_unfinished_renewals_stray_charges_and_wrong_expiries_are_flagged() -> None:
    verdict = judge(
        [charge("ren_a"), charge("ren_b", amount=999)],
        [
            RenewalRow("ren_a", "svc-a", "processing", 1000),
            RenewalRow("ren_b", "svc-b", "succeeded", 1000),
            RenewalRow("ren_c", "svc-c", "succeeded", 1000),
        ],
        [
            ServiceRow("svc-a", BEFORE, 12),
            ServiceRow("svc-b", AFTER, 12),
            ServiceRow("svc-c", BEFORE, 12),
        ],
        {"svc-a": BEFORE, "svc-b": BEFORE, "svc-c": BEFORE},
    )
    assert verdict.duplicates == []
    assert verdict.unfinished == ["ren_a"]
    # charged while processing, charged another amount, succeeded without a charge
    assert verdict.unmatched == ["ren_a", "ren_b", "ren_c"]
    assert verdict.wrong_services == ["svc-c"]
