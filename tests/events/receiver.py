"""A real webhook receiver for tests: an HTTP server on 127.0.0.1 (free port), in a thread.

It answers each request with the next planned behaviour (a status code, or "hang" to hold
the connection open until the test ends) and records what arrived. `verify` is an
independent Standard Webhooks verifier, written from the spec rather than with the code
under test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Behaviour = int | str | tuple[int, bytes]  # a status (and body), or "hang"


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self, *plan: Behaviour) -> None:
        self.plan: deque[Behaviour] = deque(plan)
        self.received: list[Received] = []
        self.arrived = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.received.append(
                        Received({k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    behaviour = receiver.plan.popleft() if receiver.plan else 200
                receiver.arrived.set()
                if behaviour == "hang":
                    # Bounded: the test's exit releases it at the latest after 30 s.
                    receiver._release.wait(timeout=30)
                    return
                if isinstance(behaviour, tuple):
                    status, payload = behaviour
                else:
                    assert isinstance(behaviour, int)
                    status, payload = behaviour, b"x" * 5000 if behaviour >= 500 else b"ok"
                try:
                    self.send_response(status)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        # The stdlib's listen backlog is 5: four dispatchers sending at once on a loaded
        # machine could be refused a connection, which is a failed delivery retried later
        # (never, under a frozen clock) rather than the race the tests look at.
        server_class = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 128})
        self.server = server_class(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


class SignatureError(Exception):
    pass


def verify(
    secret: str,
    received: Received,
    *,
    now: datetime,
    tolerance: timedelta = timedelta(minutes=5),
) -> Any:
    """Standard Webhooks: HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed with the base64
    part of `whsec_…`; any one `v1,` signature matching is enough."""
    headers = received.headers
    try:
        msg_id = headers["webhook-id"]
        timestamp = headers["webhook-timestamp"]
        signatures = headers["webhook-signature"]
    except KeyError as exc:
        raise SignatureError(f"missing header {exc}") from None
    sent_at = datetime.fromtimestamp(int(timestamp), UTC)
    if abs(sent_at - now) > tolerance:
        raise SignatureError("timestamp outside tolerance")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in signatures.split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return json.loads(received.body)
    raise SignatureError("no matching signature")
