"""Safe by default in production (issue 15, "Deployment defaults"): no sandbox gateway, an
image that will not start on the public development secrets, client IPs that only the
configured proxies can vouch for, metrics behind a token when asked."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi import FastAPI
from pydantic import SecretStr

from app.core.settings import ConfigurationError, Settings
from app.core.settings_checks import check_settings
from tests.processes import STARTUP_SECONDS, autorenew_server, free_port, stop
from tests.security.conftest import Auth, client_for
from tests.test_settings import SAFE

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = {"gateway": "sandbox", "gateway_api_key": SecretStr("sk_test_x")}


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({**SANDBOX, "sandbox_mounted": True}, "AUTORENEW_SANDBOX_MOUNTED"),
        (
            {**SANDBOX, "sandbox_mounted": False, "gateway_base_url": "http://sandbox:8100"},
            "AUTORENEW_GATEWAY=sandbox",
        ),
        # Saying it is a drill does not make a mounted sandbox acceptable.
        ({**SANDBOX, "sandbox_mounted": True, "allow_sandbox_gateway": True}, "MOUNTED"),
    ],
)
def test_production_refuses_the_sandbox_gateway(overrides: dict[str, object], named: str) -> None:
    base = {k: v for k, v in SAFE.items() if not k.startswith("gateway")}
    with pytest.raises(ConfigurationError, match=named):
        check_settings(Settings(env="production", **{**base, **overrides}))


def test_a_drill_may_run_production_against_a_sandbox_process() -> None:
    base = {k: v for k, v in SAFE.items() if not k.startswith("gateway")}
    drill = {"sandbox_mounted": False, "gateway_base_url": "http://sandbox:8100"}
    check_settings(
        Settings(env="production", **base, **SANDBOX, **drill, allow_sandbox_gateway=True)
    )


def _image_environment() -> dict[str, str]:
    """The ENV lines of the Dockerfile's final stage, as the container starts with them."""
    final_stage = (ROOT / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    env: dict[str, str] = {}
    for block in re.findall(r"^ENV (.+?)(?<!\\)$", final_stage, re.M | re.S):
        for pair in block.replace("\\\n", " ").split():
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def _cli(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    path = {"PATH": os.environ["PATH"], "HOME": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env={**path, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_image_refuses_to_start_until_real_settings_are_given(tmp_path: Path) -> None:
    env = _image_environment()
    assert env["AUTORENEW_ENV"] == "production"
    env["AUTORENEW_DATABASE_URL"] = f"sqlite:///{tmp_path / 'a.db'}"
    refused = _cli(env, "migrate", cwd=tmp_path)
    assert refused.returncode == 2
    for variable in (
        "AUTORENEW_JWT_SECRET",
        "AUTORENEW_ENCRYPTION_KEY",
        "AUTORENEW_SEPA_CREDITOR_ID",
        "AUTORENEW_SEPA_CREDITOR_IBAN",
        "AUTORENEW_SANDBOX_MOUNTED",
    ):
        assert variable in refused.stderr
    # The documented override for a local try.
    allowed = _cli({**env, "AUTORENEW_ENV": "development"}, "token", "--sub", "x", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr


def test_the_image_and_the_recipe_serve_with_autorenew_serve() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "exec autorenew serve --host 0.0.0.0" in dockerfile
    assert "--proxy-headers" not in dockerfile
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    assert compose["services"]["app"]["command"][:2] == ["autorenew", "serve"]


@contextmanager
def plain_uvicorn(tmp_path: Path, **settings: str) -> Iterator[str]:
    """`uvicorn app.main:app` as someone starts it by hand, with uvicorn's defaults (which
    trust X-Forwarded-For from 127.0.0.1)."""
    port = free_port()
    log = tmp_path / "uvicorn.log"
    env = {
        "AUTORENEW_DATABASE_URL": f"sqlite:///{tmp_path / 'autorenew.db'}",
        "AUTORENEW_SANDBOX_DATABASE_URL": f"sqlite:///{tmp_path / 'sandbox.db'}",
        "AUTORENEW_SCHEDULER_ENABLED": "false",
        **settings,
    }
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)],
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 3 * STARTUP_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(log.read_text()[-4000:])
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        stop([process])


def _evidence_ip(url: str, token: str) -> str:
    """A mandate accepted with a forged X-Forwarded-For: the IP kept as its evidence."""
    headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": "203.0.113.9"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        sepa = {"iban": "DE89370400440532013000", "account_holder_name": "Eve"}
        created = client.post(
            "/v1/payment-methods", json={"type": "sepa_debit", "sepa_debit": sepa}
        )
        assert created.status_code == 201, created.text
        method = created.json()["id"]
        accepted = {"mandate": {"accepted": True, "signer_name": "Eve"}}
        assert client.post(f"/v1/payment-methods/{method}/validate", json=accepted).is_success
        signer_ip: str = client.get(f"/v1/payment-methods/{method}/mandate").json()["signer_ip"]
        return signer_ip


def _token(tmp_path: Path) -> str:
    minted = _cli({}, "token", "--sub", "cus_evidence", cwd=tmp_path)
    assert minted.returncode == 0, minted.stderr
    return minted.stdout.strip()


def test_plain_uvicorn_believes_x_forwarded_for_only_from_the_trusted_proxies(
    tmp_path: Path,
) -> None:
    token = _token(tmp_path)
    (tmp_path / "untrusted").mkdir()
    (tmp_path / "trusted").mkdir()
    with plain_uvicorn(tmp_path / "untrusted") as url:
        assert _evidence_ip(url, token) == "127.0.0.1"
    with plain_uvicorn(
        tmp_path / "trusted", AUTORENEW_TRUSTED_PROXIES=json.dumps(["127.0.0.1"])
    ) as url:
        assert _evidence_ip(url, token) == "203.0.113.9"


def test_autorenew_serve_ignores_a_forged_x_forwarded_for(tmp_path: Path) -> None:
    with autorenew_server(tmp_path) as (url, _log):
        assert _evidence_ip(url, _token(tmp_path)) == "127.0.0.1"


async def test_metrics_can_require_a_bearer_token(
    make_app: Callable[..., FastAPI], auth: Auth
) -> None:
    async with client_for(make_app, metrics_token=SecretStr("scrape-me-0123456789")) as client:
        assert (await client.get("/metrics")).status_code == 401
        wrong = {"Authorization": "Bearer scrape-me-0123456780"}
        assert (await client.get("/metrics", headers=wrong)).status_code == 401
        # A customer's token is not the scraper's.
        assert (await client.get("/metrics", headers=auth("cus_1"))).status_code == 401
        right = {"Authorization": "Bearer scrape-me-0123456789"}
        scraped = await client.get("/metrics", headers=right)
        assert scraped.status_code == 200 and "autorenew_" in scraped.text
