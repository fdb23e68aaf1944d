"""The relay server's allow-list: which destinations a client may reach. Deny by default.

Rules are strings, as in the ``[relay] allow`` TOML list:

* ``"127.0.0.1:5201"``: one IPv4 address and port;
* ``"10.0.0.0/8:*"``: a network, any port; ``"192.168.1.0/24:8000-8080"``: a port range;
* ``"[::1]:*"``, ``"[fd00::/8]:443"``: IPv6 in brackets;
* ``"db.internal:5432"``: a host name, matched exactly (case-insensitive, trailing dot ignored).

An empty list allows nothing: the server is never an open proxy unless a rule says so
explicitly (``"0.0.0.0/0:*"``, which :attr:`AllowList.is_open` reports so the edge can warn).
There is no host wildcard (``"*:*"`` is rejected).

A destination given as an IP literal is matched against the network rules. A host name is
allowed at once by a matching name rule; otherwise the edge resolves it and keeps only the
addresses the network rules allow (:meth:`AllowList.permitted_addresses`), so a name cannot be
used to reach an address outside the list. IPv4-mapped IPv6 addresses match as IPv4.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from .protocol import AddressType, Destination

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AllowRuleError(ValueError):
    """An allow-list rule that cannot be parsed."""


@dataclass(frozen=True, slots=True)
class AllowRule:
    """One rule: a network or a host name, and a port range (inclusive)."""

    text: str
    network: IPNetwork | None
    hostname: str | None
    port_min: int
    port_max: int

    def port_matches(self, port: int) -> bool:
        """True if ``port`` is in the rule's range."""
        return self.port_min <= port <= self.port_max

    def address_matches(self, address: IPAddress, port: int) -> bool:
        """True for an address inside the rule's network and a matching port."""
        return (self.network is not None and address.version == self.network.version
                and address in self.network and self.port_matches(port))

    def name_matches(self, name: str, port: int) -> bool:
        """True for the rule's host name and a matching port."""
        return self.hostname is not None and self.hostname == name and self.port_matches(port)


def _normal_name(name: str) -> str:
    return name.rstrip(".").lower()


def _normal_address(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _parse_ports(text: str, rule: str) -> tuple[int, int]:
    if text == "*":
        return 1, 65535
    low, sep, high = text.partition("-")
    if not low.isdigit() or (sep and not high.isdigit()):
        raise AllowRuleError(f"rule {rule!r}: port must be N, N-M or *")
    pmin = int(low)
    pmax = int(high) if sep else pmin
    if not 1 <= pmin <= pmax <= 65535:
        raise AllowRuleError(f"rule {rule!r}: ports must be within 1-65535 and ordered")
    return pmin, pmax


def parse_rule(text: str) -> AllowRule:
    """Parse one rule string (see the module docstring)."""
    if not isinstance(text, str) or not text.strip():
        raise AllowRuleError("rule must be a non-empty string")
    rule = text.strip()
    if rule.startswith("["):
        host, sep, ports = rule[1:].partition("]:")
        if not sep:
            raise AllowRuleError(f"rule {rule!r}: expected [IPV6]:PORT")
        try:
            network: IPNetwork = ipaddress.IPv6Network(host, strict=False)
        except ValueError:
            raise AllowRuleError(f"rule {rule!r}: {host!r} is not an IPv6 address or network") from None
        pmin, pmax = _parse_ports(ports, rule)
        return AllowRule(rule, network, None, pmin, pmax)
    host, sep, ports = rule.rpartition(":")
    if not sep or not host:
        raise AllowRuleError(f"rule {rule!r}: expected HOST:PORT, NETWORK:PORT or [IPV6]:PORT")
    if ":" in host:
        raise AllowRuleError(f"rule {rule!r}: write IPv6 as [ADDR]:PORT")
    pmin, pmax = _parse_ports(ports, rule)
    if "*" in host:
        raise AllowRuleError(
            f"rule {rule!r}: host wildcards are not supported (use a network such as 10.0.0.0/8)")
    try:
        network = ipaddress.IPv4Network(host, strict=False)
    except ValueError:
        if "/" in host or host.replace(".", "").isdigit():
            raise AllowRuleError(f"rule {rule!r}: {host!r} is not a valid IPv4 address or network") from None
        name = _normal_name(host)
        if not name or len(name) > 253 or not all(c.isalnum() or c in "-._" for c in name):
            raise AllowRuleError(f"rule {rule!r}: {host!r} is not a valid host name") from None
        return AllowRule(rule, None, name, pmin, pmax)
    return AllowRule(rule, network, None, pmin, pmax)


@dataclass(frozen=True, slots=True)
class Allowed:
    """Connect to ``host`` (an allowed IP literal, or a name allowed by a name rule)."""

    host: str


@dataclass(frozen=True, slots=True)
class Denied:
    """Refuse, for ``reason``."""

    reason: str


@dataclass(frozen=True, slots=True)
class ResolveFirst:
    """A host name without a name rule: resolve it, then keep :meth:`AllowList.permitted_addresses`."""

    name: str


AllowDecision = Allowed | Denied | ResolveFirst


@dataclass(frozen=True, slots=True)
class AllowList:
    """An ordered tuple of rules; nothing is allowed unless a rule matches."""

    rules: tuple[AllowRule, ...] = ()

    @classmethod
    def parse(cls, texts: Iterable[str]) -> AllowList:
        """Build from rule strings (raises :class:`AllowRuleError`)."""
        return cls(tuple(parse_rule(t) for t in texts))

    @property
    def is_open(self) -> bool:
        """True if some rule allows every IPv4 or every IPv6 address."""
        return any(r.network is not None and r.network.prefixlen == 0 for r in self.rules)

    def allows_address(self, address: str | IPAddress, port: int) -> bool:
        """True if an IP address and port are allowed."""
        try:
            ip = _normal_address(ipaddress.ip_address(address))
        except ValueError:
            return False
        return any(r.address_matches(ip, port) for r in self.rules)

    def decide(self, dest: Destination) -> AllowDecision:
        """What to do with a requested destination (see the module docstring)."""
        if dest.address_type != AddressType.NAME:
            if self.allows_address(dest.host, dest.port):
                return Allowed(dest.host)
            return Denied(f"{dest} is not in the allow-list")
        name = _normal_name(dest.host)
        if any(r.name_matches(name, dest.port) for r in self.rules):
            return Allowed(dest.host)
        if not any(r.network is not None and r.port_matches(dest.port) for r in self.rules):
            return Denied(f"{dest} is not in the allow-list")
        return ResolveFirst(dest.host)

    def permitted_addresses(self, addresses: Iterable[str], port: int) -> tuple[str, ...]:
        """The resolved ``addresses`` of a name that the network rules allow, in order."""
        return tuple(a for a in addresses if self.allows_address(a, port))
