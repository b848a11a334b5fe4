"""IP networks as they are configured (`AUTORENEW_TRUSTED_PROXIES`): an address or a CIDR.

Below both `settings.py` (which checks the configured proxies at startup) and
`client_ip.py` (which matches peers against them), so neither imports the other.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def network_problem(value: str) -> str | None:
    """Why this text is not an address or network, or None (for the startup checks)."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return "is not an IP address or CIDR network"
    return None


@lru_cache(maxsize=16)
def parse_networks(values: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)
