"""Differential reachability between two intents, at the intent level (no tables).

Like Batfish's differential reachability: for every (source, destination) endpoint pair,
the traffic the old and the new intent allow (:func:`segctl.topology.analysis.expected_reachability`)
is compared per protocol and port range (ICMP: per type and code), in two kinds: **new
connections** the source may open, and **replies** that come back (stateful grants only).
Each difference is one :class:`Change`: opened or closed, the services, the grants behind
it, whether it crosses tenants. Endpoints match by ``tenant/name``; an endpoint only one
side has opens or closes everything it is granted.

>>> from segctl.topology.analysis import Grant, ServiceMatch
>>> a = Allowed.of([])
>>> b = Allowed.of([Grant("policy", "p", (ServiceMatch("tcp", ((80, 80),)),), True)])
>>> [s for s in b.minus(a).describe()]
['tcp/80']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from segctl.topology.analysis import Grant, expected_reachability
from segctl.topology.grants import Ranges, icmp_span, merge_ranges, minus_ranges
from segctl.topology.network import Network

__all__ = ["Allowed", "Change", "reachability_changes"]

ALL_PORTS: Ranges = ((0, 65535),)
#: ICMP as ranges over ``type * 256 + code`` (so the port arithmetic applies): all of it.
ALL_ICMP: Ranges = ((0, 0xFFFF),)


def _icmp_items(ranges: Ranges) -> list[str]:
    """``type=8``, ``type=0-7``, ``type=3,code=4`` or ``type=3,code=0-3`` per piece of ``ranges``."""
    out: list[str] = []
    for lo, hi in ranges:
        while lo <= hi:
            icmp_type, code = divmod(lo, 256)
            if code == 0 and hi >= lo + 0xFF:
                last = (hi + 1) // 256 - 1
                out.append(f"type={icmp_type}" + (f"-{last}" if last > icmp_type else ""))
                lo = (last + 1) << 8
            else:
                end = min(hi, lo | 0xFF)
                out.append(f"type={icmp_type},code={code}" + (f"-{end & 0xFF}" if end > lo else ""))
                lo = end + 1
    return out


def _icmp_text(ranges: Ranges) -> list[str]:
    """``["icmp"]``, ``["icmp/type=8", "icmp/type=3,code=4"]``, or ``["icmp except type=8"]``
    when what is left out is the shorter list."""
    if not ranges:
        return []
    if ranges == ALL_ICMP:
        return ["icmp"]
    items, missing = _icmp_items(ranges), _icmp_items(minus_ranges(ALL_ICMP, ranges))
    if len(missing) < len(items):
        return ["icmp except " + ", ".join(missing)]
    return [f"icmp/{item}" for item in items]


def _ports_text(ranges: Ranges) -> str:
    if ranges == ALL_PORTS:
        return ""
    return "/" + ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)


@dataclass(frozen=True)
class Allowed:
    """What a pair allows: tcp and udp port ranges, ICMP types and codes (:data:`ALL_ICMP`),
    and the other IPv4 protocols."""

    tcp: Ranges = ()
    udp: Ranges = ()
    icmp: Ranges = ()
    other: bool = False

    @classmethod
    def of(cls, grants: Iterable[Grant], *, replies: bool = False) -> Allowed:
        """The union of ``grants`` (with ``replies``: of their stateful ones only)."""
        tcp: list[tuple[int, int]] = []
        udp: list[tuple[int, int]] = []
        icmp: list[tuple[int, int]] = []
        other = False
        for g in grants:
            if replies and not g.stateful:
                continue
            for svc in g.services:
                ports = list(svc.ports or ALL_PORTS)
                if svc.proto in ("any", "tcp"):
                    tcp += ports if svc.proto == "tcp" else ALL_PORTS
                if svc.proto in ("any", "udp"):
                    udp += ports if svc.proto == "udp" else ALL_PORTS
                if svc.proto in ("any", "icmp"):
                    icmp.append(icmp_span(svc))
                other = other or svc.proto in ("any", "other")
        return cls(merge_ranges(tcp), merge_ranges(udp), merge_ranges(icmp), other)

    def minus(self, other: Allowed) -> Allowed:
        return Allowed(
            minus_ranges(self.tcp, other.tcp),
            minus_ranges(self.udp, other.udp),
            minus_ranges(self.icmp, other.icmp),
            self.other and not other.other,
        )

    def __bool__(self) -> bool:
        return bool(self.tcp or self.udp or self.icmp or self.other)

    def describe(self) -> list[str]:
        """``["tcp/80,443", "udp", "icmp/type=8", "other IPv4 protocols"]``; ``["any IPv4"]`` for all."""
        if self.tcp == ALL_PORTS and self.udp == ALL_PORTS and self.icmp == ALL_ICMP and self.other:
            return ["any IPv4"]
        out = [f"{p}{_ports_text(r)}" for p, r in (("tcp", self.tcp), ("udp", self.udp)) if r]
        out += _icmp_text(self.icmp) + ["other IPv4 protocols"] * self.other
        return out


@dataclass(frozen=True)
class Change:
    """One difference for one ordered pair: services ``opened`` or ``closed``, for new
    ``connections`` from ``src``, for the ``replies`` coming back, or both."""

    src: str
    dst: str
    change: str  # opened | closed
    services: tuple[str, ...]
    connections: bool
    replies: bool
    grants: tuple[str, ...]  # the grants (of NEW when opened, of OLD when closed)
    cross_tenant: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "src": self.src,
            "dst": self.dst,
            "change": self.change,
            "services": list(self.services),
            "connections": self.connections,
            "replies": self.replies,
            "grants": list(self.grants),
            "cross_tenant": self.cross_tenant,
        }

    def __str__(self) -> str:
        sign = "+" if self.change == "opened" else "-"
        services = ", ".join(self.services)
        if self.connections:
            what = services + (" with replies" if self.replies else " (no replies)")
        else:
            what = f"replies of {services}"
        cross = "  CROSS-TENANT" if self.cross_tenant and self.change == "opened" else ""
        why = f"  ({'; '.join(self.grants)})" if self.grants else ""
        return f"{sign} {self.src} -> {self.dst}: {what}{cross}{why}"


def _by_name(network: Network) -> dict[tuple[str, str], Sequence[Grant]]:
    reach = expected_reachability(network)
    return {(f"{s[0]}/{s[1]}", f"{d[0]}/{d[1]}"): grants for (s, d), grants in reach.items()}


def _names(grants: Sequence[Grant]) -> tuple[str, ...]:
    return tuple(f"{g.kind} {g.name}" for g in grants)


def reachability_changes(old: Network, new: Network) -> list[Change]:
    """Every opened or closed (source, destination, service) between ``old`` and ``new``.

    In the new intent's endpoint order (then the old one's, for removed endpoints):
    per pair, connections before replies, opened before closed.
    """
    before, after = _by_name(old), _by_name(new)
    order = [ep.qualified for ep in new.endpoints] + [ep.qualified for ep in old.endpoints]
    rank = {name: i for i, name in reversed(list(enumerate(order)))}
    pairs = sorted(set(before) | set(after), key=lambda p: (rank[p[0]], rank[p[1]]))
    out: list[Change] = []
    for src, dst in pairs:
        was, now = before.get((src, dst), ()), after.get((src, dst), ())
        cross = src.split("/")[0] != dst.split("/")[0]
        conns = (Allowed.of(was), Allowed.of(now))
        replies = (Allowed.of(was, replies=True), Allowed.of(now, replies=True))
        for change, grants, i, j in (("opened", now, 1, 0), ("closed", was, 0, 1)):
            conn, reply = conns[i].minus(conns[j]), replies[i].minus(replies[j])
            names = _names(grants)
            if conn:
                both = conn.describe() == reply.describe()
                out.append(Change(src, dst, change, tuple(conn.describe()), True, both, names, cross))
                if both:
                    continue
            if reply:
                out.append(Change(src, dst, change, tuple(reply.describe()), False, True, names, cross))
    return out
