"""The `autorenew` command as an operator uses it."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import httpx
import jwt
import pytest

from app import __version__, cli
from app.cli import main
from app.core.auth import verify_token
from app.core.settings import Settings, get_settings
from tests.processes import autorenew_server


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


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"autorenew {__version__}"


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--sub", "cus_9", "--ttl", "0"], "must be a positive number of seconds, not 0"),
        (["--sub", "cus_9", "--ttl", "-5"], "must be a positive number of seconds, not -5"),
        (["--sub", "cus_9", "--ttl", "soon"], "not a whole number of seconds"),
        (["--sub", ""], "the subject may not be empty"),
        (["--sub", "  "], "the subject may not be empty"),
    ],
)
def test_token_refuses_a_useless_lifetime_or_subject(
    capsys: pytest.CaptureFixture[str], args: list[str], complaint: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["token", *args])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and complaint in captured.err


def test_token_lifetime_is_the_one_asked_for(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--sub", "cus_9", "--ttl", "1"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 1


def test_serve_on_a_busy_port_starts_nothing(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    captured = capsys.readouterr()
    assert f"cannot listen on 127.0.0.1:{port}" in captured.err
    assert captured.out == "" and caplog.records == []  # no "scheduler started", no app


@pytest.mark.slow
def test_serve_says_where_it_listens(tmp_path: Path) -> None:
    # autorenew_server waits for the line; the line must name the URL that answers.
    with autorenew_server(tmp_path) as (base_url, log):
        line = f"autorenew: serving on {base_url} (API docs at {base_url}/docs)"
        assert line in log.read_text().splitlines()
        assert httpx.get(f"{base_url}/healthz").json() == {"status": "ok"}


def test_serve_points_browsers_at_the_port_it_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    # 3-D Secure pages and the SPA's sandbox URL are built from public_base_url: left unset,
    # `serve --port 8450` must not send browsers to 8000, where nothing of ours listens.
    monkeypatch.delenv("AUTORENEW_PUBLIC_BASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        cli._default_public_url_to("0.0.0.0", 8450)  # noqa: S104
        assert get_settings().public_base_url == "http://127.0.0.1:8450"
        cli._default_public_url_to("::1", 8451)  # already set now: kept
        assert get_settings().public_base_url == "http://127.0.0.1:8450"

        monkeypatch.setenv("AUTORENEW_PUBLIC_BASE_URL", "https://billing.example")
        get_settings.cache_clear()
        cli._default_public_url_to("127.0.0.1", 8452)  # the operator's own setting wins
        assert get_settings().public_base_url == "https://billing.example"
    finally:
        get_settings.cache_clear()
