"""Which addresses URL context may connect to: the public internet, minus this host's own addresses.

`is_public_address` is a property of the address alone (loopback, private, link-local, reserved… are not public,
also when an IPv4 address is wrapped in IPv6). `LocalAddresses` adds what only the machine knows: the addresses
assigned to its own interfaces. A public address of this host is still this host: a service bound to 0.0.0.0 "for
loopback only" answers on it, so reaching it is as much a request forgery as reaching 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NON_PUBLIC = tuple(ipaddress.ip_network(net) for net in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4", "240.0.0.0/4",
    "::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "fc00::/7", "fe80::/10", "fec0::/10",
    "ff00::/8",
))
# IPv6 ranges whose last 32 bits are an IPv4 address that the connection reaches: NAT64 (RFC 6052) and
# IPv4-translated (SIIT, RFC 2765). IPv4-mapped (::ffff:0:0/96) and 6to4 have their own properties in `ipaddress`.
_EMBEDDING_V4 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::ffff:0:0:0/96"))


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, IPv4-translated, 6to4, NAT64), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    embedded = ip.ipv4_mapped or ip.sixtofour
    if embedded is None and any(ip in net for net in _EMBEDDING_V4):
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return embedded


def is_public_address(ip: IPAddress) -> bool:
    """Whether an address is on the public internet: not loopback, private (RFC 1918, ULA), link-local (cloud
    metadata), CGNAT, multicast, reserved, documentation or unspecified — also when wrapped in IPv6 (IPv4-mapped,
    IPv4-translated, 6to4, NAT64)."""
    embedded = embedded_ipv4(ip)
    if embedded is not None:
        return is_public_address(embedded)
    return ip.is_global and not ip.is_multicast and not any(ip in net for net in _NON_PUBLIC)


def interface_addresses() -> frozenset[IPAddress]:
    """The IPv4 and IPv6 addresses assigned to this host's network interfaces (zone indexes dropped)."""
    found: set[IPAddress] = set()
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6) and address.address:
                try:
                    found.add(ipaddress.ip_address(address.address.split("%", 1)[0]))
                except ValueError:
                    continue
    return frozenset(found)


class LocalAddresses:
    """This host's own addresses, read again at most every `refresh_s` seconds: interfaces change (DHCP, VPNs,
    containers), but enumerating them for every URL would cost a netlink round trip each time. If they cannot be
    read, the last known set stays in force."""

    def __init__(self, refresh_s: float = 5.0) -> None:
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._addresses: frozenset[IPAddress] = frozenset()
        self._read_at = float("-inf")

    def current(self) -> frozenset[IPAddress]:
        with self._lock:
            now = time.monotonic()
            if now - self._read_at >= self.refresh_s:
                try:
                    self._addresses = interface_addresses()
                except OSError as exc:
                    log.warning("URL context: cannot list this host's addresses (%s); keeping the last ones", exc)
                self._read_at = now
            return self._addresses

    def contains(self, ip: IPAddress) -> bool:
        """Whether a connection to `ip` would reach this host through one of its interface addresses (also
        through an IPv6 form that embeds a local IPv4 address)."""
        local = self.current()
        embedded = embedded_ipv4(ip)
        return ip in local or (embedded is not None and embedded in local)


def normalize_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


@dataclass(frozen=True)
class HostPatterns:
    """`allow_hosts`/`deny_hosts` patterns: exact names, `*.suffix` wildcards, and IP addresses or networks."""

    names: frozenset[str]
    suffixes: tuple[str, ...]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, patterns: Iterable[str]) -> HostPatterns:
        names: set[str] = set()
        suffixes: list[str] = []
        networks: list[IPNetwork] = []
        for raw in patterns:
            pattern = normalize_host(raw)
            try:
                networks.append(ipaddress.ip_network(pattern, strict=False))
            except ValueError:
                if pattern.startswith("*."):
                    suffixes.append(pattern[1:])
                elif pattern:
                    names.add(pattern)
        return cls(frozenset(names), tuple(suffixes), tuple(networks))

    def match_name(self, host: str) -> bool:
        return host in self.names or host.endswith(self.suffixes)

    def match_address(self, ip: IPAddress) -> bool:
        """Whether `ip`, or the IPv4 address it embeds (`::ffff:169.254.169.254`), is in one of the networks."""
        embedded = embedded_ipv4(ip)
        return any(ip in net or (embedded is not None and embedded in net) for net in self.networks)
