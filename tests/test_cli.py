"""The `autorenew` command as an operator uses it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.cli import main
from app.core.auth import verify_token
from app.core.settings import Settings, get_settings


@pytest.fixture(autouse=True)
def _fresh_settings() -> None:
    get_settings.cache_clear()


def test_token_prints_a_verifiable_admin_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--sub", "cus_9", "--admin", "--ttl", "120"]) == 0
    token = capsys.readouterr().out.strip()
    caller = verify_token(token, Settings())
    assert caller.customer_id == "cus_9" and caller.is_admin


def test_migrate_creates_the_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "cli.db"
    monkeypatch.setenv("AUTORENEW_DATABASE_URL", f"sqlite:///{database}")
    assert main(["migrate"]) == 0
    assert "head" in capsys.readouterr().out
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("select name from sqlite_master")}
    assert "alembic_version" in tables


def test_configuration_errors_exit_cleanly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTORENEW_JWT_SECRET", "too-short")
    assert main(["token", "--sub", "x"]) == 2
    assert "configuration error" in capsys.readouterr().err
