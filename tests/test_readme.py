"""The README's walkthrough runs as written against a live `autorenew serve`.

The server and the script share a scratch folder laid out like a checkout: `.venv` is this
environment, the repository's files are linked in, `autorenew.db` is created there (the
README greps it). See tests/readme_runner.py for the conventions the blocks follow.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import readme_runner
from tests.processes import autorenew_server

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("readme")
    (folder / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    for entry in ROOT.iterdir():
        if not entry.name.startswith(".") and not entry.name.startswith("autorenew"):
            (folder / entry.name).symlink_to(entry)
    return folder


@pytest.fixture(scope="module")
def server(checkout: Path) -> Iterator[str]:
    # The service as the README starts it, in the checkout (SQLite files there), plus the
    # public URL its card section asks for.
    with autorenew_server(
        checkout,
        cwd=checkout,
        AUTORENEW_DATABASE_URL="sqlite+aiosqlite:///./autorenew.db",
        AUTORENEW_SANDBOX_DATABASE_URL="sqlite+aiosqlite:///./autorenew-sandbox.db",
        AUTORENEW_SCHEDULER_ENABLED="true",
    ) as (base_url, _log):
        yield base_url


def _run(markdown: str, base_url: str, checkout: Path) -> tuple[int, str, str]:
    result = readme_runner.run(markdown, base_url, cwd=checkout, env=dict(os.environ))
    return result.returncode, result.stdout, result.stderr


@pytest.mark.slow
def test_the_readme_runs_top_to_bottom(server: str, checkout: Path) -> None:
    blocks = readme_runner.shell_blocks(README)
    assert len(blocks) >= 8
    code, out, err = _run(README, server, checkout)
    assert (code, err) == (0, ""), f"{err}\n--- stdout (end) ---\n{out[-6000:]}"
    assert out.count("### README line") == len(blocks)
    assert (checkout / "pain008.xml").read_bytes().startswith(b"<?xml")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("block", "complaint"),
    [
        ("curl -s localhost:8000/v1/nothing-here\n", "README: HTTP 404"),
        ("curl -s localhost:8000/healthz   # 404 wrong\n", "README: expected HTTP 404, got 200"),
        ("X=$(curl -s localhost:8000/nope | cat)\necho $X\n", "README: HTTP 404"),
        ('echo "$(uuidgen-is-not-here)"\n', "command not found"),
        ('python3 -c \'import json; json.loads("{}")["id"]\'\n', "KeyError"),
        ("curl -s localhost:1/healthz\n", "README: curl failed (exit 7)"),
    ],
)
def test_the_runner_fails_on_what_would_rot(
    server: str, checkout: Path, block: str, complaint: str
) -> None:
    code, _out, err = _run(f"```sh\n{block}```\n", server, checkout)
    assert code != 0 or err
    assert complaint in err


@pytest.mark.slow
def test_an_expected_status_passes_only_for_the_last_curl(server: str, checkout: Path) -> None:
    # The inner curl (200) is not the one the comment speaks of; a ```console block never runs.
    nested = 'curl -s "localhost:8000/v1/$(curl -s localhost:8000/healthz >/dev/null)me"  # 401\n'
    code, _out, err = _run(f"```sh\n{nested}```\n```console\nexit 3\n```\n", server, checkout)
    assert (code, err) == (0, "")
    inner_fails = 'curl -s "localhost:8000/v1/$(curl -s localhost:8000/nope >/dev/null)me"  # 401\n'
    code, _out, err = _run(f"```sh\n{inner_fails}```\n", server, checkout)
    assert "README: HTTP 404 before the expected 401" in err


def test_commands_end_where_the_shell_ends_them() -> None:
    text = (
        'A=(-H "x: y")   # an array\n'
        'curl -s u \\\n  -d \'{"a": 1,\n   "b": 2}\'   # 409 conflict\n'
        "X=$(f \"$(g '#1')\" |\n  h)  # 200 fine\n"
        'echo "${#A[@]} ${URL%%\\?*}" # not a status\n'
    )
    commands = readme_runner.logical_commands(text)
    assert [(c.line, c.comment) for c in commands] == [
        (0, "# an array"),
        (1, "# 409 conflict"),
        (4, "# 200 fine"),
        (6, "# not a status"),
    ]
    assert [readme_runner.expected_status(c) for c in commands] == [None, "409", "200", None]
    with pytest.raises(ValueError, match="unbalanced"):
        readme_runner.logical_commands('echo "open\n')
