"""`autorenew import payment-methods FILE`: the README's sample file, as an operator runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.settings import get_settings
from app.imports.cli import import_file
from tests.imports.helpers import counts

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "payment-methods-import.ndjson"


@pytest.fixture
def sample_without_services(tmp_path: Path) -> Path:
    """The sample, minus the services (provisioning has not registered them here)."""
    lines = [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]
    path = tmp_path / "import.ndjson"
    path.write_text("".join(json.dumps({**line, "services": None}) + "\n" for line in lines))
    return path


@pytest.fixture
def configured(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    env = {
        "AUTORENEW_DATABASE_URL": database_url,
        "AUTORENEW_SANDBOX_DATABASE_URL": f"sqlite:///{tmp_path / 'sandbox.db'}",
        "AUTORENEW_MIGRATE_ON_START": "false",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


async def test_the_sample_file_imports_then_is_already_present(
    configured: dict[str, str],
    sample_without_services: Path,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    dry = await import_file(sample_without_services, dry_run=True, partial=False, operator="t")
    assert (dry.imported, dry.refused, dry.committed) == (3, 0, False)
    assert (await counts(sessionmaker))["payment_methods"] == 0

    report = await import_file(sample_without_services, dry_run=False, partial=False, operator="t")
    assert (report.imported, report.lapsed, report.committed) == (3, 1, True)
    assert [m.mandate_reference for m in report.lapsed_mandates] == ["OLDPANEL-000789"]
    again = await import_file(sample_without_services, dry_run=False, partial=False, operator="t")
    assert (again.imported, again.already_present) == (0, 3)


def test_the_command_prints_the_report_and_fails_on_refusals(
    tmp_path: Path, sample_without_services: Path
) -> None:
    env = {
        **os.environ,
        "AUTORENEW_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "AUTORENEW_SANDBOX_DATABASE_URL": f"sqlite:///{tmp_path / 'sandbox.db'}",
    }

    def autorenew(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert autorenew("migrate").returncode == 0
    # The sample as shipped names a service nobody registered here: refused, nothing kept.
    refused = autorenew("import", "payment-methods", str(SAMPLE))
    assert refused.returncode == 1
    report = json.loads(refused.stdout)
    assert [(r["line"], r["code"]) for r in report["refusals"]] == [(1, "service_not_found")]
    assert report["committed"] is False
    done = autorenew("import", "payment-methods", str(sample_without_services))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["imported"] == 3
    missing = autorenew("import", "payment-methods", str(tmp_path / "nope.ndjson"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
