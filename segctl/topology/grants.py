"""Services and grants: the vocabulary of the expected relation.

:class:`ServiceMatch` is a normalized service (a protocol with destination port ranges,
or an ICMP type and code); :class:`Grant` one reason a source may open connections to a
destination. :func:`normalize_services` turns intent services into matches. The intent
analysis (:mod:`segctl.topology.analysis`) and the ordered-rule semantics
(:mod:`segctl.topology.ordered`) build on these; everything here is re-exported by
:mod:`segctl.topology.analysis`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from segctl.topology.schema import Service

__all__ = [
    "ALL_IP",
    "GRANT_SYMBOLS",
    "ICMPV6_REPLY_TYPES",
    "ICMP_REPLY_TYPES",
    "EndpointKey",
    "Grant",
    "GrantKind",
    "Proto",
    "Ranges",
    "ServiceMatch",
    "icmp_span",
    "intersect_ranges",
    "merge_ranges",
    "minus_ranges",
    "normalize_proto",
    "normalize_services",
]

GrantKind = Literal["intra-segment", "policy", "shared-service", "guardrail"]
#: ``tcp``, ``udp``, ``any`` and ``other`` cover both IP families (IPv6 where the pair may use
#: it, :func:`segctl.topology.analysis.ipv6_applies`); ``icmp`` is ICMPv4, ``icmp6`` ICMPv6.
#: ``other``: every protocol but TCP, UDP and the family's ICMP (what is left of ``any``
#: after a rule took those; it never appears in an intent).
Proto = Literal["tcp", "udp", "icmp", "icmp6", "any", "other"]
EndpointKey = tuple[str, str]

#: One letter per grant kind for the reachability matrix; ``·`` means denied.
GRANT_SYMBOLS: dict[str, str] = {
    "guardrail": "G", "intra-segment": "S", "policy": "P", "shared-service": "X", "": "·",
}  # fmt: skip

_PROTO_NUMBERS = {"1": "icmp", "6": "tcp", "17": "udp", "58": "icmp6"}

#: ICMP query types and the type of their reply (echo, timestamp, information): the
#: replies a stateful grant of the query passes (the pairs OVS conntrack tracks).
ICMP_REPLY_TYPES: dict[int, int] = {8: 0, 13: 14, 15: 16}
#: The same for ICMPv6: echo request 128 -> echo reply 129 (the query conntrack tracks).
ICMPV6_REPLY_TYPES: dict[int, int] = {128: 129}


@dataclass(frozen=True)
class ServiceMatch:
    """A normalized service: a protocol and inclusive destination port ranges, or an ICMP type.

    ``ports`` is sorted and merged (overlapping or adjacent ranges joined), or ``None``
    for all ports. ``proto="any"`` is all IP, ``other`` every protocol but TCP, UDP and the
    family's ICMP (only ordered rules leave it, :mod:`segctl.topology.ordered`); ``icmp``
    (ICMPv4) and ``icmp6`` (ICMPv6) are all of it unless ``icmp_type`` narrows it to one
    type (and ``icmp_code`` to one code of that type). Which family a pair may use is
    :func:`segctl.topology.analysis.ipv6_applies`'s question, not the service's.
    """

    proto: Proto
    ports: tuple[tuple[int, int], ...] | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None

    def __lt__(self, other: ServiceMatch) -> bool:
        return self._key() < other._key()

    def _key(self) -> tuple[str, tuple[tuple[int, int], ...], int, int]:
        every = -1  # no type/code (all of them) sorts first
        icmp_type = every if self.icmp_type is None else self.icmp_type
        return (self.proto, self.ports or (), icmp_type, every if self.icmp_code is None else self.icmp_code)

    def matches(
        self, proto: str, dst_port: int | None, *, icmp_type: int | None = None, icmp_code: int | None = None
    ) -> bool:
        """Does a packet of ``proto`` (normalized) to ``dst_port`` fall in this service?

        An ICMP packet of unknown type (``icmp_type=None``) falls only in a service that
        allows every ICMP type; likewise an unknown code against a service with a code.
        """
        if self.proto == "any":
            return True
        if self.proto == "other":
            return proto not in ("tcp", "udp", "icmp", "icmp6")
        if self.proto != proto:
            return False
        if self.icmp_type is not None and icmp_type != self.icmp_type:
            return False
        if self.icmp_code is not None and icmp_code != self.icmp_code:
            return False
        if self.ports is None:
            return True
        return dst_port is not None and any(lo <= dst_port <= hi for lo, hi in self.ports)

    def covers(self, other: ServiceMatch) -> bool:
        """Is every packet of ``other`` also in this service?"""
        if self.proto == "any" or self == other:
            return True
        if self.proto != other.proto:
            return False
        if self.ports is not None:
            return other.ports is not None and all(
                any(lo <= o_lo and o_hi <= hi for lo, hi in self.ports) for o_lo, o_hi in other.ports
            )
        if self.icmp_type is None:
            return True
        return self.icmp_type == other.icmp_type and self.icmp_code is None

    def describe(self) -> str:
        """``tcp/80,8000-8080``, ``icmp``, ``icmp/type=8`` or ``icmp/type=3,code=4``."""
        if self.icmp_type is not None:
            code = "" if self.icmp_code is None else f",code={self.icmp_code}"
            return f"{self.proto}/type={self.icmp_type}{code}"
        if self.ports is None:
            return self.proto
        return f"{self.proto}/" + ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ports)

    def to_json(self) -> dict[str, Any]:
        """``{"proto", "ports"}``, plus ``type`` (and ``code``) for one ICMP type."""
        ports = None if self.ports is None else [list(r) for r in self.ports]
        out: dict[str, Any] = {"proto": self.proto, "ports": ports}
        if self.icmp_type is not None:
            out["type"] = self.icmp_type
            if self.icmp_code is not None:
                out["code"] = self.icmp_code
        return out


@dataclass(frozen=True)
class Grant:
    """One reason why a source endpoint may open connections to a destination endpoint.

    ``name`` is the segment name (intra-segment), the policy name, or the shared
    service name. ``stateful`` means replies of an allowed connection pass.
    """

    kind: GrantKind
    name: str
    services: tuple[ServiceMatch, ...]
    stateful: bool

    def allows(
        self, proto: str, dst_port: int | None, *, icmp_type: int | None = None, icmp_code: int | None = None
    ) -> bool:
        """Does this grant allow a new packet of ``proto`` to ``dst_port`` (ICMP: of that type and code)?"""
        proto = normalize_proto(proto)
        return any(
            s.matches(proto, dst_port, icmp_type=icmp_type, icmp_code=icmp_code) for s in self.services
        )

    def describe(self) -> str:
        services = ", ".join(s.describe() for s in self.services)
        state = "" if self.stateful else " (stateless)"
        return f"{self.kind} {self.name}: {services}{state}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "services": [s.to_json() for s in self.services],
            "stateful": self.stateful,
        }


ALL_IP = (ServiceMatch("any", None),)


def normalize_proto(proto: str) -> str:
    """``"TCP"``/``"6"`` → ``"tcp"``, ``"17"`` → ``"udp"``, ``"1"`` → ``"icmp"``, ``"58"``
    → ``"icmp6"``; other protocol numbers stay as their decimal string."""
    text = str(proto).strip().lower()
    return _PROTO_NUMBERS.get(text, text)


Ranges = tuple[tuple[int, int], ...]


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> Ranges:
    """Sorted, disjoint inclusive ranges covering ``ranges`` (overlapping or adjacent joined).

    >>> merge_ranges([(5, 9), (1, 3), (4, 4), (20, 30)])
    ((1, 9), (20, 30))
    """
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def intersect_ranges(a: Ranges, b: Ranges) -> Ranges:
    """What two sets of merged ranges have in common (merged)."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def minus_ranges(a: Ranges, b: Ranges) -> Ranges:
    """``a`` without ``b`` (both merged).

    >>> minus_ranges(((0, 65535),), ((22, 22),))
    ((0, 21), (23, 65535))
    """
    out: list[tuple[int, int]] = []
    for lo, hi in a:
        for b_lo, b_hi in b:
            if b_hi < lo or b_lo > hi:
                continue
            if b_lo > lo:
                out.append((lo, b_lo - 1))
            lo = b_hi + 1
            if lo > hi:
                break
        if lo <= hi:
            out.append((lo, hi))
    return tuple(out)


def icmp_span(svc: ServiceMatch) -> tuple[int, int]:
    """An ICMP service as one range of ``type << 8 | code`` (all of ICMP: ``(0, 0xFFFF)``)."""
    if svc.icmp_type is None:
        return (0, 0xFFFF)
    base = svc.icmp_type << 8
    if svc.icmp_code is None:
        return (base, base | 0xFF)
    return (base | svc.icmp_code, base | svc.icmp_code)


def _icmp_matches(services: Iterable[Service], proto: Proto = "icmp") -> list[ServiceMatch]:
    """The ICMP (``proto`` icmp or icmp6) services, each type (and code) once, none covered by another."""
    found = {ServiceMatch(proto, None, s.type, s.code) for s in services}
    every = ServiceMatch(proto)

    def covered(m: ServiceMatch) -> bool:
        """What :meth:`ServiceMatch.covers` a typed match is all ICMP, or its type without a
        code: two set lookups per match (a hostile intent may list every type and code)."""
        if m != every and every in found:
            return True
        return m.icmp_code is not None and ServiceMatch(proto, None, m.icmp_type) in found

    return [m for m in found if not covered(m)]


def normalize_services(services: Iterable[Service]) -> tuple[ServiceMatch, ...]:
    """Turn intent services into sorted :class:`ServiceMatch` es, one per protocol (ICMP:
    one per declared type, or type and code).

    ``any`` absorbs everything; a protocol with no ports absorbs its port ranges; ``icmp``
    without a type absorbs the typed ones, a type without a code its codes.
    """
    services = list(services)
    if any(s.proto == "any" for s in services):
        return ALL_IP
    out: list[ServiceMatch] = []
    for proto in ("icmp", "icmp6", "tcp", "udp"):
        mine = [s for s in services if s.proto == proto]
        if not mine:
            continue
        if proto in ("icmp", "icmp6"):
            out += _icmp_matches(mine, proto)
        elif any(s.ports is None for s in mine):
            out.append(ServiceMatch(proto, None))
        else:
            out.append(ServiceMatch(proto, merge_ranges((r.lo, r.hi) for s in mine for r in s.ports or [])))
    return tuple(sorted(out))
