"""The operators' dashboard and alert rules (deploy/) name only metrics the app exports,
and the rules are well-formed (checked and unit-tested by promtool where it is installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import app.main  # noqa: F401  (every module that declares a metric)

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "autorenew.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yaml"
METRIC = re.compile(r"\bautorenew_[a-z0-9_]+")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


def exported_series() -> set[str]:
    """Every series name /metrics can carry, labelled families without children included."""
    names = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def dashboard_queries() -> list[str]:
    return [
        target["expr"]
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]  # fmt: skip


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_metric_the_dashboard_and_alerts_name_is_exported() -> None:
    named = {
        name
        for expr in [*dashboard_queries(), *(rule["expr"] for rule in alert_rules())]
        for name in METRIC.findall(expr)
    }
    # What the operators were promised, so the check cannot pass on an empty dashboard.
    assert {
        "autorenew_renewal_outcomes_total",
        "autorenew_renewals_due_backlog",
        "autorenew_renewals_oldest_due_seconds",
        "autorenew_renewal_sweep_duration_seconds_bucket",
        "autorenew_gateway_call_duration_seconds_bucket",
        "autorenew_gateway_errors_total",
        "autorenew_gateway_unavailable",
        "autorenew_webhook_deliveries",
    } <= named
    assert sorted(named - exported_series()) == []


def test_the_check_sees_a_metric_the_app_does_not_export() -> None:
    assert "autorenew_renewals_due_backlog" in exported_series()
    assert "autorenew_renewals_due_backlog_total" not in exported_series()
    assert "autorenew_gateway_errors" not in exported_series()  # a counter is read as _total


def test_the_dashboard_is_one_grafana_document_over_a_chosen_prometheus() -> None:
    document = dashboard()
    assert document["uid"] == "autorenew" and document["schemaVersion"] >= 36
    [variable] = document["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    panels = document["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["description"] and panel["targets"], panel["title"]
        assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"])


def test_each_alert_is_actionable() -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} == {
        "AutorenewRenewalBacklogNotDraining",
        "AutorenewRenewalFailureRateHigh",
        "AutorenewGatewayRefusingOurKey",
        "AutorenewWebhookDeliveriesDead",
    }
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("page", "warning")
        assert set(rule["annotations"]) == {"summary", "description"}
        assert re.fullmatch(r"\d+[smh]", rule["for"])


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_accepts_the_rules_their_unit_tests_and_the_dashboard_queries(
    tmp_path: Path,
) -> None:
    assert PROMTOOL is not None

    def promtool(*args: str, cwd: Path) -> None:
        result = subprocess.run(
            [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr

    promtool("check", "rules", ALERTS.name, cwd=ALERTS.parent)
    promtool("test", "rules", ALERT_TESTS.name, cwd=ALERTS.parent)
    # The dashboard's queries, parsed by Prometheus itself as recording rules.
    recorded = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{index}", "expr": expr}
                    for index, expr in enumerate(dashboard_queries())
                ],
            }
        ]
    }
    (tmp_path / "dashboard.yaml").write_text(yaml.safe_dump(recorded), encoding="utf-8")
    promtool("check", "rules", "dashboard.yaml", cwd=tmp_path)
