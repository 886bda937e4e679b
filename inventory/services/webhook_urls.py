"""Where the worker may POST: the one rule for webhook URLs, used when a subscription is created
and again, against a fresh resolution, right before every delivery.

A URL must be http(s) and carry no credentials. Unless Settings.webhook_allow_private, every
address its host resolves to must be public: not loopback, private, link-local, multicast or
reserved, and not an IPv6 address that carries a refused IPv4 address inside it (IPv4-mapped and
-compatible, NAT64 64:ff9b::/96, 6to4 2002::/16, Teredo 2001::/32), since a gateway on the path
would turn it back into that IPv4 address. 64:ff9b:1::/48 is refused whole: it is the local-use
NAT64 prefix (RFC 8215), and where it puts the IPv4 address depends on the operator's prefix.

`vet` returns the addresses it approved; the delivery connects to one of those and does not ask
DNS again, so a name cannot be re-pointed (DNS rebinding) between the check and the connection.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

Resolver = Callable[[str], list[str]]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def resolve_host(host: str) -> list[str]:
    """Every address `host` resolves to (empty when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address stands for on some path (none for a plain one)."""
    found = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address in IPV4_COMPATIBLE or address in NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)  # (server, client)
    return found


def address_problem(address: Address) -> str | None:
    """Why nothing may be sent to `address`, or None if it is a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in NAT64_LOCAL:
            return "a local-use NAT64 address (64:ff9b:1::/48)"
        for inner in embedded_ipv4(address):
            if problem := address_problem(inner):
                return f"an IPv6 form of {inner}, {problem}"
    if not address.is_global or address.is_multicast:
        return "a loopback, private, link-local or reserved address"
    return None


@dataclass(frozen=True)
class Target:
    """A vetted URL: where to connect (`addresses`, in the resolver's order), and the host name
    for the Host header, TLS SNI and certificate check."""

    url: str
    parts: SplitResult
    host: str
    port: int
    addresses: tuple[str, ...]


def vet(
    url: str, *, allow_private: bool, resolve: Resolver | None = None, connect: bool = True
) -> Target | str:
    """The `Target` for `url`, or why the worker must not POST to it. With `allow_private` and
    not `connect` (checking a URL, not about to send), the name need not resolve yet."""
    resolve = resolve or resolve_host
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"{url!r} is not a URL"
    if parts.scheme not in ("http", "https"):
        return "the URL must start with http:// or https://"
    if parts.username is not None or parts.password is not None:
        return "the URL must not carry credentials (user:password@); authenticate by the signature"
    host = parts.hostname
    if not host:
        return "the URL has no host"
    port = port or (443 if parts.scheme == "https" else 80)
    if allow_private and not connect:
        return Target(url, parts, host, port, ())
    try:
        addresses: list[Address] = [ipaddress.ip_address(host)]
        how = "is"
    except ValueError:
        addresses = [ipaddress.ip_address(a.split("%")[0]) for a in resolve(host)]
        how = "resolves to"
        if not addresses:
            return f"the host {host} does not resolve"
    if not allow_private:
        for address in addresses:
            if problem := address_problem(address):
                return (
                    f"the host {host} {how} {address}, {problem}; "
                    "webhooks go to public endpoints only"
                )
    return Target(url, parts, host, port, tuple(str(a) for a in addresses))


def url_problem(url: str, *, allow_private: bool, resolve: Resolver | None = None) -> str | None:
    """Why the worker must not POST to `url`, or None if it may."""
    vetted = vet(url, allow_private=allow_private, resolve=resolve, connect=False)
    return vetted if isinstance(vetted, str) else None
