"""The client's address, as the rate limit on failed authentications keys it.

The peer of the connection, unless that peer is a configured trusted proxy
(PANTHEON_TRUSTED_PROXIES): then the rightmost `X-Forwarded-For` hop that is not itself a trusted
proxy. Hops left of it were written by the client and could be anything, so they are never read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network

from starlette.requests import HTTPConnection

Networks = Sequence[IPv4Network | IPv6Network]


def client_address(connection: HTTPConnection, trusted: Networks) -> str:
    peer = connection.client.host if connection.client else "unknown"
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    forwarded = ",".join(connection.headers.getlist("x-forwarded-for"))
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    address = peer
    for hop in reversed(hops):
        if _parse(hop) is None:
            break  # not an address a proxy writes: trust stops at the last good hop
        address = hop
        if not _is_trusted(hop, trusted):
            break
    return address


def _is_trusted(address: str, trusted: Networks) -> bool:
    parsed = _parse(address)
    return parsed is not None and any(parsed in network for network in trusted)


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None
