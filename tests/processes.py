"""Real processes for tests that prove what several replicas do: the sandbox gateway and
renewal workers, each started with `python -m app.cli …`, bounded in time, always stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

STARTUP_SECONDS = 20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(args: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    # The child gets its own copy of the descriptor; ours is closed right away.
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def wait_until_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process exited early:\n{log.read_text()[-4000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listened on {port} within {STARTUP_SECONDS}s")


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def sandbox_gateway(tmp_path: Path, *, name: str, ledger: Path, **settings: str) -> Iterator[str]:
    """A sandbox gateway process on a free port; yields its base URL."""
    port = free_port()
    log = tmp_path / f"{name}.log"
    env = {"AUTORENEW_SANDBOX_DATABASE_URL": f"sqlite:///{ledger}", **settings}
    process = start(["sandbox-gateway", "--port", str(port)], env, log)
    try:
        wait_until_listening(process, port, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop([process])


@contextmanager
def autorenew_server(
    tmp_path: Path, *, cwd: Path | None = None, port: int | None = None, **settings: str
) -> Iterator[tuple[str, Path]]:
    """`autorenew serve` as an operator starts it, on a free port (or `port`): SQLite files
    under `tmp_path`, the sandbox gateway mounted, the scheduler off unless asked. Yields
    the base URL and the server's log."""
    port = port or free_port()
    log = tmp_path / "server.log"
    env = {
        "AUTORENEW_DATABASE_URL": f"sqlite:///{tmp_path / 'autorenew.db'}",
        "AUTORENEW_SANDBOX_DATABASE_URL": f"sqlite:///{tmp_path / 'autorenew-sandbox.db'}",
        "AUTORENEW_SCHEDULER_ENABLED": "false",
        "AUTORENEW_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        **settings,
    }
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
    try:
        wait_until_serving(process, log)
        yield f"http://127.0.0.1:{port}", log
    finally:
        stop([process])


def wait_until_serving(process: subprocess.Popen[bytes], log: Path) -> None:
    """Until `autorenew serve` says it serves (after migrations and startup), the line the
    tests that start it also check."""
    # Migrations and startup on a loaded 2-core machine can take a while; a healthy start
    # returns as soon as the line is there.
    deadline = time.monotonic() + 3 * STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited early:\n{log.read_text()[-4000:]}")
        if b"autorenew: serving on " in log.read_bytes():
            return
        time.sleep(0.05)
    raise RuntimeError(f"the server did not start within {3 * STARTUP_SECONDS}s")
