"""Intent-level analysis: who may reach whom, on which services, and why.

This is the *expected* reachability relation, computed from the intent alone. The
compiler implements it and the verifier checks the data plane against it, so it is
written straight from the semantics (``docs/intent.md``) with no cleverness:

* **intra-segment**: two different endpoints of one tenant in the same segment that is
  not ``strict`` may exchange any IPv4 traffic, both directions.
* **policy**: ``from`` endpoints may open connections to ``to`` endpoints of the same
  tenant on the listed services; replies pass only when the policy is ``stateful``.
* **shared-service**: consumer endpoints may open connections to the provider
  endpoints on the listed services; always stateful. The only cross-tenant grant.
* Everything else is denied, including traffic from an endpoint to itself.

IPv6 is delivered only inside a non-strict segment between endpoints that both declare
``ipv6`` (see :func:`ipv6_allowed`); policies and shared services are IPv4 only.

Examples
--------
>>> from segctl.topology.schema import Intent
>>> from segctl.topology.network import resolve
>>> net = resolve(Intent.model_validate({
...     "fabric": {"switches": [{"name": "s1", "dpid": 1}]},
...     "tenants": [{"name": "t", "segments": [{"name": "lan", "cidr": "10.0.0.0/24"}],
...                  "endpoints": [
...         {"name": "a", "segment": "lan", "mac": "02:00:00:00:00:01", "ip": "10.0.0.2",
...          "attach": "s1:1"},
...         {"name": "b", "segment": "lan", "mac": "02:00:00:00:00:02", "ip": "10.0.0.3",
...          "attach": "s1:2"}]}]}))
>>> sorted(expected_reachability(net))
[(('t', 'a'), ('t', 'b')), (('t', 'b'), ('t', 'a'))]
>>> a, b = net.endpoint("t", "a"), net.endpoint("t", "b")
>>> [g.kind for g in allowed_grants(net, a, b, "udp", 53)]
['intra-segment']
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from segctl.topology.network import EndpointInfo, Network
from segctl.topology.schema import Service

__all__ = [
    "GRANT_SYMBOLS",
    "ICMP_REPLY_TYPES",
    "EndpointKey",
    "Grant",
    "GrantKind",
    "GrantSet",
    "Reachability",
    "ServiceMatch",
    "allowed_grants",
    "expected_reachability",
    "grant_sets",
    "grant_symbol",
    "ipv6_allowed",
    "normalize_proto",
    "normalize_services",
    "pair_grants",
    "reachability_matrix",
    "reply_allowed",
]

GrantKind = Literal["intra-segment", "policy", "shared-service"]
Proto = Literal["tcp", "udp", "icmp", "any"]
EndpointKey = tuple[str, str]
Reachability = dict[tuple[EndpointKey, EndpointKey], tuple["Grant", ...]]

#: One letter per grant kind for the reachability matrix; ``·`` means denied.
GRANT_SYMBOLS: dict[str, str] = {"intra-segment": "S", "policy": "P", "shared-service": "X", "": "·"}

_PROTO_NUMBERS = {"1": "icmp", "6": "tcp", "17": "udp"}

#: ICMP query types and the type of their reply (echo, timestamp, information): the
#: replies a stateful grant of the query passes (the pairs OVS conntrack tracks).
ICMP_REPLY_TYPES: dict[int, int] = {8: 0, 13: 14, 15: 16}


@dataclass(frozen=True)
class ServiceMatch:
    """A normalized service: a protocol and inclusive destination port ranges, or an ICMP type.

    ``ports`` is sorted and merged (overlapping or adjacent ranges joined), or ``None``
    for all ports. ``proto="any"`` is all IPv4; ``icmp`` is all ICMP unless ``icmp_type``
    narrows it to one type (and ``icmp_code`` to one code of that type).
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


ALL_IPV4 = (ServiceMatch("any", None),)


def normalize_proto(proto: str) -> str:
    """``"TCP"``/``"6"`` → ``"tcp"``, ``"17"`` → ``"udp"``, ``"1"`` → ``"icmp"``; other
    IPv4 protocol numbers stay as their decimal string."""
    text = str(proto).strip().lower()
    return _PROTO_NUMBERS.get(text, text)


def _merge(ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _icmp_matches(services: Iterable[Service]) -> list[ServiceMatch]:
    """The ICMP services, each type (and code) once, none covered by another."""
    found = {ServiceMatch("icmp", None, s.type, s.code) for s in services}
    every = ServiceMatch("icmp")

    def covered(m: ServiceMatch) -> bool:
        """What :meth:`ServiceMatch.covers` a typed match is all ICMP, or its type without a
        code: two set lookups per match (a hostile intent may list every type and code)."""
        if m != every and every in found:
            return True
        return m.icmp_code is not None and ServiceMatch("icmp", None, m.icmp_type) in found

    return [m for m in found if not covered(m)]


def normalize_services(services: Iterable[Service]) -> tuple[ServiceMatch, ...]:
    """Turn intent services into sorted :class:`ServiceMatch` es, one per protocol (ICMP:
    one per declared type, or type and code).

    ``any`` absorbs everything; a protocol with no ports absorbs its port ranges; ``icmp``
    without a type absorbs the typed ones, a type without a code its codes.
    """
    services = list(services)
    if any(s.proto == "any" for s in services):
        return ALL_IPV4
    out: list[ServiceMatch] = []
    for proto in ("icmp", "tcp", "udp"):
        mine = [s for s in services if s.proto == proto]
        if not mine:
            continue
        if proto == "icmp":
            out += _icmp_matches(mine)
        elif any(s.ports is None for s in mine):
            out.append(ServiceMatch(proto, None))
        else:
            out.append(ServiceMatch(proto, _merge((r.lo, r.hi) for s in mine for r in s.ports or [])))
    return tuple(sorted(out))


@dataclass(frozen=True)
class GrantSet:
    """One declared grant with every source and destination it covers (document order).

    The relation it contributes is every ``(source, destination)`` pair with
    ``source != destination``: an intra-segment grant has the segment's endpoints on both
    sides, a policy its ``from`` and ``to`` selections, a shared service its consumers and
    providers. :func:`expected_reachability` expands these products; the intent-graph
    analysis (:mod:`segctl.topology.exposure`) works on them unexpanded.
    """

    grant: Grant
    tenant: str  # the tenant that declares it (a shared service: the provider's)
    sources: tuple[EndpointInfo, ...]
    destinations: tuple[EndpointInfo, ...]


def grant_sets(network: Network, tenants: Container[str] | None = None) -> list[GrantSet]:
    """Every grant of the intent with its sources and destinations, in the order of
    :func:`expected_reachability`: intra-segment grants (non-strict segments), policies,
    shared services, each in document order. With ``tenants``, only the sources of those
    tenants (a grant left with no source is dropped)."""
    out: list[GrantSet] = []
    for seg in network.segments:
        if seg.strict or (tenants is not None and seg.tenant not in tenants):
            continue
        members = tuple(network.segment_endpoints(seg.tenant, seg.name))
        out.append(GrantSet(Grant("intra-segment", seg.name, ALL_IPV4, True), seg.tenant, members, members))
    for tenant in network.tenants:
        if tenants is not None and tenant.name not in tenants:
            continue
        for policy in network.policies(tenant.name):
            grant = Grant("policy", policy.name, normalize_services(policy.services), policy.stateful)
            sources = tuple(network.select(tenant.name, policy.from_))
            out.append(GrantSet(grant, tenant.name, sources, tuple(network.select(tenant.name, policy.to))))
    for svc in network.shared_services:
        grant = Grant("shared-service", svc.name, normalize_services(svc.services), True)
        consumers = network.shared_consumers(svc)
        if tenants is not None:
            consumers = [c for c in consumers if c.tenant in tenants]
            if not consumers:
                continue
        out.append(
            GrantSet(grant, svc.provider.tenant, tuple(consumers), tuple(network.shared_providers(svc)))
        )
    return out


def expected_reachability(network: Network, tenants: Container[str] | None = None) -> Reachability:
    """Every (source, destination) endpoint-key pair with at least one grant, and its grants.

    Grants of a pair come in a fixed order: intra-segment, then policies in document
    order, then shared services in document order. A source never equals its destination.
    With ``tenants``, only the pairs whose source belongs to one of them (exactly those
    pairs of the whole relation: a pair's grants never depend on other pairs).
    """
    result: dict[tuple[EndpointKey, EndpointKey], list[Grant]] = {}
    for item in grant_sets(network, tenants):
        grant = item.grant
        for src in item.sources:
            for dst in item.destinations:
                if src.key == dst.key:
                    continue
                grants = result.setdefault((src.key, dst.key), [])
                if grant not in grants:
                    grants.append(grant)
    position = {ep.key: i for i, ep in enumerate(network.endpoints)}  # document order
    ordered = sorted(result.items(), key=lambda item: (position[item[0][0]], position[item[0][1]]))
    return {pair: tuple(_sorted_grants(grants)) for pair, grants in ordered}


def _sorted_grants(grants: list[Grant]) -> list[Grant]:
    rank = {"intra-segment": 0, "policy": 1, "shared-service": 2}
    return sorted(grants, key=lambda g: rank[g.kind])  # stable: document order inside a kind


def allowed_grants(
    network: Network,
    src: EndpointInfo,
    dst: EndpointInfo,
    proto: str,
    dst_port: int | None = None,
    *,
    icmp_type: int | None = None,
    icmp_code: int | None = None,
) -> tuple[Grant, ...]:
    """The grants that allow ``src`` to send a NEW IPv4 packet of ``proto`` to ``dst``.

    ``proto`` is ``tcp``, ``udp``, ``icmp`` or another IPv4 protocol number as a string;
    ``dst_port`` is the transport destination port for tcp/udp (``None`` matches only
    services without ports); ``icmp_type``/``icmp_code`` those of an ICMP packet (``None``
    matches only services without a type/code). Empty when the packet is denied.
    """
    grants = pair_grants(network, src, dst)
    return tuple(g for g in grants if g.allows(proto, dst_port, icmp_type=icmp_type, icmp_code=icmp_code))


def pair_grants(network: Network, src: EndpointInfo, dst: EndpointInfo) -> tuple[Grant, ...]:
    """All grants from ``src`` to ``dst`` (any service), computed for this one pair.

    Same rules and order as :func:`expected_reachability`, without building the whole relation.
    """
    if src.key == dst.key:
        return ()
    grants: list[Grant] = []
    if src.tenant == dst.tenant and src.segment == dst.segment:
        seg = network.segment(src.tenant, src.segment)
        if not seg.strict:
            grants.append(Grant("intra-segment", seg.name, ALL_IPV4, True))
    if src.tenant == dst.tenant:
        for policy in network.policies(src.tenant):
            if src in network.select(src.tenant, policy.from_) and dst in network.select(
                src.tenant, policy.to
            ):
                grant = Grant("policy", policy.name, normalize_services(policy.services), policy.stateful)
                if grant not in grants:
                    grants.append(grant)
    for svc in network.shared_services:
        if src in network.shared_consumers(svc) and dst in network.shared_providers(svc):
            grant = Grant("shared-service", svc.name, normalize_services(svc.services), True)
            if grant not in grants:
                grants.append(grant)
    return tuple(grants)


def reply_allowed(
    network: Network,
    src: EndpointInfo,
    dst: EndpointInfo,
    proto: str,
    dst_port: int | None = None,
    *,
    icmp_type: int | None = None,
) -> bool:
    """May ``dst`` reply to a connection ``src`` opened with ``proto``/``dst_port`` (ICMP: ``icmp_type``)?

    True when some *stateful* grant allows the connection (conntrack passes its replies).
    """
    grants = allowed_grants(network, src, dst, proto, dst_port, icmp_type=icmp_type)
    return any(g.stateful for g in grants)


def ipv6_allowed(network: Network, src: EndpointInfo, dst: EndpointInfo) -> bool:
    """IPv6 goes only between two different endpoints of one non-strict segment, both with ipv6."""
    if src.key == dst.key or src.tenant != dst.tenant or src.segment != dst.segment:
        return False
    if src.ipv6 is None or dst.ipv6 is None:
        return False
    return not network.segment(src.tenant, src.segment).strict


def grant_symbol(grants: Iterable[Grant]) -> str:
    """The matrix letters for a pair: ``S``/``P``/``X`` per kind present (in that order), ``·`` if none."""
    kinds = {g.kind for g in grants}
    letters = "".join(GRANT_SYMBOLS[k] for k in ("intra-segment", "policy", "shared-service") if k in kinds)
    return letters or GRANT_SYMBOLS[""]


def reachability_matrix(
    network: Network, reach: Reachability | None = None
) -> list[tuple[EndpointInfo, list[str]]]:
    """Rows for display: each source endpoint with one symbol per destination endpoint.

    Columns follow ``network.endpoints`` (document order); the diagonal is ``·``.
    """
    reach = expected_reachability(network) if reach is None else reach
    return [
        (src, [grant_symbol(reach.get((src.key, dst.key), ())) for dst in network.endpoints])
        for src in network.endpoints
    ]
