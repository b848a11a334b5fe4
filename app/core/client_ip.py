"""The client's IP address, for evidence (mandate acceptance) and rate limits.

X-Forwarded-For is written by whoever sends it, so it is believed only when the TCP peer is
one of `AUTORENEW_TRUSTED_PROXIES`; then the client is the right-most address in the header
that is not itself a trusted proxy (every proxy appends the peer it saw).
"""

from __future__ import annotations

import ipaddress

from starlette.requests import Request

from app.core.networks import Network, network_problem, parse_networks
from app.core.settings import Settings


def _is_trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(request: Request, settings: Settings) -> str | None:
    peer = request.client.host if request.client else None
    networks = parse_networks(tuple(settings.trusted_proxies))
    if peer is None or not networks or not _is_trusted(peer, networks):
        return peer
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, networks):
            return hop if network_problem(hop) is None else peer
    return hops[0] if hops else peer
