"""The SSRF guard's policy: which endpoint URLs are acceptable, and which addresses may be connected to.

An integration's URL is typed by an admin, but its host name resolves to whatever its DNS says, on every
connection (a name that resolved to a public address at registration can resolve to 127.0.0.1 or to the cloud
metadata service at 169.254.169.254 later: DNS rebinding). So the address is checked where the connection is
made (``adapters/http_sender.py``), with :func:`refusal`: private, loopback, link-local, CGNAT, multicast,
reserved and unspecified addresses are refused, and so are the IPv6 forms that reach them (IPv4-mapped
``::ffff:a.b.c.d``, IPv4-compatible ``::a.b.c.d``, 6to4 ``2002::/16`` of a refused address, NAT64
``64:ff9b::/96`` and ``64:ff9b:1::/48``, Teredo), unless the address is inside one of the networks of
``UPGESTAO_WEBHOOK_ALLOWED_NETWORKS`` (:class:`AllowedNetworks`, empty by default; tests and local runs list
``127.0.0.0/8``).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_IETF_ASSIGNMENTS = ipaddress.IPv4Network("192.0.0.0/24")  # Python counts some of it global; no endpoint is there
_V6_SPECIAL: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (ipaddress.IPv6Network("64:ff9b::/96"), "NAT64 address"),
    (ipaddress.IPv6Network("64:ff9b:1::/48"), "NAT64 address"),
    (ipaddress.IPv6Network("2001::/32"), "Teredo address"),
    (ipaddress.IPv6Network("fec0::/10"), "site-local address"),
    (ipaddress.IPv6Network("fc00::/7"), "unique local (private) address"),
    (ipaddress.IPv6Network("ff00::/8"), "multicast address"),
    (ipaddress.IPv6Network("fe80::/10"), "link-local address"),
    (ipaddress.IPv6Network("100::/64"), "discard-only address"),
    (ipaddress.IPv6Network("2001:db8::/32"), "documentation address"),
)
_V6_6TO4 = ipaddress.IPv6Network("2002::/16")


@dataclass(frozen=True)
class AllowedNetworks:
    """Networks whose addresses may be connected to although not public (``UPGESTAO_WEBHOOK_ALLOWED_NETWORKS``)."""

    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, raw: str | None) -> AllowedNetworks:
        """Comma- and/or space-separated CIDRs (a bare address is its /32 or /128); ValueError names a bad item."""
        networks: list[IPNetwork] = []
        for item in re.split(r"[\s,]+", (raw or "").strip()):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"UPGESTAO_WEBHOOK_ALLOWED_NETWORKS: {item[:64]!r} is not a CIDR network") from None
        return cls(tuple(networks))

    def __contains__(self, ip: object) -> bool:
        if not isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(candidate.version == network.version and candidate in network
                   for candidate in candidates for network in self.networks)

    def __iter__(self) -> Iterator[IPNetwork]:
        return iter(self.networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __str__(self) -> str:
        return ",".join(str(network) for network in self.networks)


def _v4_refusal(ip: ipaddress.IPv4Address) -> str | None:
    if ip in _THIS_NETWORK:
        return "unspecified address (0.0.0.0/8)"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address (cloud metadata lives there)"
    if ip.is_multicast:
        return "multicast address"
    if ip in _CGNAT:
        return "shared address space (CGNAT 100.64.0.0/10)"
    if ip.is_reserved:
        return "reserved address"
    if ip in _IETF_ASSIGNMENTS:
        return "IETF protocol assignment (192.0.0.0/24)"
    if ip.is_private:
        return "private address"
    if not ip.is_global:
        return "not a public address"
    return None


def _v6_refusal(ip: ipaddress.IPv6Address) -> str | None:
    if ip.ipv4_mapped is not None:
        inner = _v4_refusal(ip.ipv4_mapped)
        return None if inner is None else f"IPv4-mapped {inner}"
    if ip.is_unspecified:
        return "unspecified address (::)"
    if ip.is_loopback:
        return "loopback address"
    if int(ip) >> 32 == 0:
        return "IPv4-compatible address (::/96)"
    for network, reason in _V6_SPECIAL:
        if ip in network:
            return reason
    if ip in _V6_6TO4:
        embedded = ip.sixtofour
        inner = None if embedded is None else _v4_refusal(embedded)
        if inner is not None:
            return f"6to4 form of a {inner}"
        return None
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if ip.is_reserved:
        return "reserved address"
    if ip.is_private:
        return "private address"
    if not ip.is_global:
        return "not a public address"
    return None


def refusal(ip: IPAddress, allowed: AllowedNetworks) -> str | None:
    """Why a connection to ``ip`` is refused, or None when it is allowed (public, or in an allowed network)."""
    if ip in allowed:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "scoped IPv6 address"
        return _v6_refusal(ip)
    return _v4_refusal(ip)


@dataclass(frozen=True)
class Target:
    """Where a URL sends a request: ``host`` is the ASCII (IDNA) name or the bare IP literal."""

    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line

    @property
    def default_port(self) -> bool:
        return self.port == (443 if self.scheme == "https" else 80)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.default_port else f"{host}:{self.port}"


def parse_target(url: str) -> Target:
    """The request target of an endpoint URL; ValueError naming the problem (never quoting the URL: it may
    embed a token)."""
    if not isinstance(url, str) or not url:
        raise ValueError("the URL is empty")
    return _parse_target(url)


@functools.lru_cache(maxsize=1024)  # the same few endpoints, parsed on every delivery
def _parse_target(url: str) -> Target:
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("the URL's port is not a number from 1 to 65535 (or the host is malformed)") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("the URL's scheme must be https (or http outside production)")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("the URL must not carry a user name or password (use the signing secret)")
    if parts.fragment or url.endswith("#"):
        raise ValueError("the URL must not have a fragment")
    host = parts.hostname or ""
    if not host:
        raise ValueError("the URL has no host")
    if port is not None and not 1 <= port <= 65535:
        raise ValueError("the URL's port is not a number from 1 to 65535")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        ascii_host = str(literal)
    else:
        try:
            ascii_host = host.encode("idna").decode("ascii").lower().rstrip(".")
        except UnicodeError:
            raise ValueError("the URL's host is not a valid domain name") from None
        if not ascii_host or not re.fullmatch(r"[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*",
                                              ascii_host):
            raise ValueError("the URL's host is not a valid domain name")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme, ascii_host, port or (443 if scheme == "https" else 80), path)


def check_url(url: str, production: bool) -> None:
    """An endpoint URL's acceptability when registered: ValueError naming the problem. In production the
    scheme must be https. (The address it resolves to is checked on every connection, not here.)"""
    target = parse_target(url)
    if production and target.scheme != "https":
        raise ValueError("the URL's scheme must be https in production")
