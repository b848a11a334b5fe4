"""Where a webhook may be sent: one reading of every way an address can be written, one
rule for which addresses are allowed, and the address a delivery then connects to.

The service must not become a probe of its own network (SSRF). A host can name loopback in
many spellings that a naive check misses and a resolver or socket still understands:
`2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1` (inet_aton's forms), full-width digits
and ideographic full stops (which IDNA maps to ASCII), names that resolve inward (/etc/hosts,
DNS), and IPv6 addresses that carry an IPv4 one (`::ffff:127.0.0.1`, NAT64 `64:ff9b::/96`,
6to4 `2002::/16`, IPv4-compatible `::127.0.0.1`). `host_addresses` reads them all;
`allowed` judges the address underneath. The same check runs at registration and at each
send, and the send connects to the address it checked (`pinned`), so a name that resolves
elsewhere a second time (DNS rebinding) cannot slip between the check and the connection.

Allowed: public unicast addresses, plus `AUTORENEW_WEBHOOK_ALLOWED_NETWORKS` (by default
loopback in development, nothing in production).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.core.networks import Network, parse_networks
from app.core.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Dots that IDNA (UTS 46) maps to "." in a host name.
_DOTS = ("\u3002", "\uff0e", "\uff61")
_LOOPBACK = ("127.0.0.0/8", "::1/128")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Local-use NAT64 (RFC 8215): the IPv4 side is the operator's own; never followed.
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_HEX = re.compile(r"0[xX][0-9a-fA-F]*")
_OCTAL = re.compile(r"0[0-7]*")
_DECIMAL = re.compile(r"[1-9][0-9]*")
RESOLVE_TIMEOUT_SECONDS = 2.0


class Refused(ValueError):
    """A destination that may not be used; `code` is the problem code for the API."""

    def __init__(self, detail: str, code: str = "webhook_url_not_allowed") -> None:
        super().__init__(detail)
        self.code = code


@dataclass(frozen=True)
class Pinned:
    """Where a delivery connects: the checked address, and the name for Host and TLS."""

    url: str  # the URL with the checked address in place of the name
    host_header: str
    sni_hostname: str | None


def normalise_host(host: str) -> str:
    """The host as a resolver reads it: NFKC (full-width digits), IDNA's dots, lower case,
    without the root's trailing dot."""
    host = unicodedata.normalize("NFKC", host)
    for dot in _DOTS:
        host = host.replace(dot, ".")
    return host.lower().rstrip(".")


def _ipv4_part(part: str) -> int | None:
    if _HEX.fullmatch(part):
        return int(part[2:] or "0", 16)
    if _OCTAL.fullmatch(part):
        return int(part, 8)
    if _DECIMAL.fullmatch(part):
        return int(part)
    return None


def _loose_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any form inet_aton accepts (1 to 4 parts, each decimal, octal or
    hex, the last filling the bytes left), or None when `host` is not written as one."""
    parts = host.split(".")
    values = [_ipv4_part(part) for part in parts]
    if len(parts) > 4 or any(value is None for value in values):
        return None
    *head, last = [value for value in values if value is not None]
    if any(value > 255 for value in head) or last >= 256 ** (4 - len(head)):
        raise Refused(f"{host!r} is not a valid IPv4 address.", "invalid_webhook_url")
    number = sum(value << (8 * (3 - index)) for index, value in enumerate(head)) + last
    return ipaddress.IPv4Address(number)


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as an address stands for; None for a name. `localhost`
    and its subdomains count as loopback written out (RFC 6761), whatever resolves them."""
    host = normalise_host(host)
    if host == "localhost" or host.endswith(".localhost"):
        return ipaddress.IPv4Address("127.0.0.1")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)  # a zone (`%eth0`) is refused here too
        except ValueError:
            raise Refused(f"{host!r} is not a valid IPv6 address.", "invalid_webhook_url") from None
    return _loose_ipv4(host)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def allowed_networks(settings: Settings) -> tuple[Network, ...]:
    configured = settings.webhook_allowed_networks
    if configured is None:
        configured = list(_LOOPBACK) if settings.env == "development" else []
    return parse_networks(tuple(configured))


def allowed(ip: IPAddress, networks: Sequence[Network]) -> bool:
    """A public unicast address (the IPv4 one underneath, for IPv6 forms that carry one),
    or one inside the configured networks."""
    if any(ip in network for network in networks):
        return True
    target: IPAddress = ip
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _LOCAL_NAT64 or ip.teredo is not None:
            return False  # the IPv4 host behind it cannot be judged from here
        target = _embedded_ipv4(ip) or ip
        if target is not ip and any(target in network for network in networks):
            return True
    if any(target in network for network in _SPECIAL_PURPOSE):
        return False
    return target.is_global and not target.is_multicast and not target.is_reserved


# Global by Python's reckoning, but nobody's web server: IANA's protocol assignments
# (192.0.0.0/24, e.g. the DS-Lite dummy 192.0.0.8) and the old 6to4 relay anycast range.
_SPECIAL_PURPOSE = (
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("192.88.99.0/24"),
)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


async def host_addresses(url: str, *, strict: bool) -> list[IPAddress]:
    """Every address the URL's host stands for: itself if written as an address, else what
    it resolves to. Unresolvable: [] (at registration) or Refused (`strict`, at send)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    name = normalise_host(host)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            return await _resolve(name, port)
    except (OSError, TimeoutError, UnicodeError) as exc:
        if strict:
            raise Refused(f"{name} does not resolve: {type(exc).__name__}") from None
        return []


def _check(addresses: Sequence[IPAddress], settings: Settings) -> None:
    networks = allowed_networks(settings)
    refused = sorted({str(ip) for ip in addresses if not allowed(ip, networks)})
    if refused:
        raise Refused(
            "Webhook URLs may not point at loopback, private, link-local or other "
            f"non-public addresses ({', '.join(refused)})."
        )


async def check_destination(url: str, settings: Settings) -> None:
    """At registration: the host, however written, and whatever it resolves to now, must be
    allowed. A name that does not resolve yet is accepted: each send checks again."""
    _check(await host_addresses(url, strict=False), settings)


async def pinned(url: str, settings: Settings) -> Pinned:
    """At send time: resolve, check every address, and connect to the first one checked."""
    addresses = await host_addresses(url, strict=True)
    _check(addresses, settings)
    parts = urlsplit(url)
    host = parts.hostname or ""
    address = addresses[0]
    shown = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    netloc = shown if parts.port is None else f"{shown}:{parts.port}"
    literal = literal_address(host) is not None
    try:
        name = normalise_host(host).encode("idna").decode("ascii")
    except UnicodeError:
        raise Refused(f"{host!r} is not a valid host name.", "invalid_webhook_url") from None
    host_header = name if parts.port is None else f"{name}:{parts.port}"
    if literal:
        host_header = netloc
    return Pinned(
        url=parts._replace(netloc=netloc).geturl(),
        host_header=host_header,
        # TLS checks the certificate against the name the URL gave, not the address.
        sni_hostname=name if parts.scheme == "https" and not literal else None,
    )
