"""Who is on the other end: the client's address, through the proxies the gateway trusts.

Behind an ingress every TCP peer is the ingress, so the peer's address alone would make every client
one (one client's bad logins locked everyone out: issue 11, finding 3). ``X-Forwarded-For`` says more,
but anyone can send it: it is believed only as far as it was written by a proxy the operator named
(``GATEWAY_TRUSTED_PROXIES``, networks in CIDR form).

:func:`client_address` takes the peer's address unless the peer is a trusted proxy; then it walks
``X-Forwarded-For`` from the right (each proxy appends the address it received the request from),
skipping trusted proxies, and takes the first address that is not one. What a client wrote itself is
always to the left of what its first trusted proxy appended, so it is never reached. An entry that is
not an address stops the walk: the last good address is the answer (whoever wrote that entry is not to
be believed further). The walk is bounded (:data:`MAX_HOPS`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HOPS = 32  # entries of X-Forwarded-For looked at, from the right; a longer chain stops there


class InvalidNetworks(ValueError):
    """A list of networks that cannot be read; the message says which entry and why."""


def parse_networks(raw: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 192.168.1.7"`` -> networks (a bare address is its own /32 or /128).

    Host bits set (``10.0.0.1/8``) are refused: such a list says something other than it means."""
    networks: list[Network] = []
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=True))
        except ValueError as exc:
            raise InvalidNetworks(f"{entry!r} is not a network in CIDR form (e.g. 10.0.0.0/8): {exc}") from None
    return tuple(networks)


def parse_address(raw: str) -> IPAddress | None:
    """An address as proxies write it (``203.0.113.7``, ``203.0.113.7:4711``, ``2001:db8::1``,
    ``[2001:db8::1]:4711``); an IPv4-mapped IPv6 address is its IPv4 address. None if not an address."""
    text = raw.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (text[end + 1:] and not _is_port(text[end + 1:])):
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port
        text, port = text.split(":")
        if not _is_port(":" + port):
            return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_port(suffix: str) -> bool:
    digits = suffix[1:]
    return (suffix.startswith(":") and digits.isascii() and digits.isdigit() and len(digits) <= 5
            and int(digits) <= 65535)


def is_trusted(address: IPAddress, trusted: Iterable[Network]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str | None:
    """The client's address (see the module docstring); None when the peer is not an IP address."""
    address = parse_address(peer) if peer else None
    if address is None:
        return None
    if not forwarded_for or not is_trusted(address, trusted):
        return str(address)
    for entry in reversed(forwarded_for.split(",")[-MAX_HOPS:]):
        hop = parse_address(entry)
        if hop is None:
            break
        address = hop
        if not is_trusted(hop, trusted):
            break
    return str(address)
