"""Keep the ASGI server from believing `X-Forwarded-For` on its own.

Uvicorn rewrites the client address from `X-Forwarded-For` whenever the TCP peer is in its
`--forwarded-allow-ips` (127.0.0.1 and ::1 by default), before the app sees the request:
any local process, or a local proxy that passes the header on, could then choose the IP
kept as mandate evidence. The app decides instead (`client_ip.py`, from
`AUTORENEW_TRUSTED_PROXIES` only), so the server must hand it the real peer:
`autorenew serve` and the Dockerfile start uvicorn with `proxy_headers=False`, and a plain
`uvicorn app.main:app` gets the same from `disable_uvicorn_proxy_headers()`, called while
uvicorn loads the app (its Config wraps the app in the proxy middleware only after the
import returns).
"""

from __future__ import annotations

import sys


def disable_uvicorn_proxy_headers() -> bool:
    """Switch off proxy headers on the uvicorn Config that is loading this app, if any.
    Returns whether one was found."""
    config_class = getattr(sys.modules.get("uvicorn.config"), "Config", None)
    if config_class is None:
        return False
    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, config_class):
            candidate.proxy_headers = False
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False
