"""Intent-level analysis: who may reach whom, on which services, and why.

This is the *expected* reachability relation, computed from the intent alone. The
compiler implements it and the verifier checks the data plane against it, so it is
written straight from the semantics (``docs/intent.md``) with no cleverness:

* **intra-segment**: two different endpoints of one tenant in the same segment that is
  not ``strict`` may exchange any IP traffic, both directions.
* **policy**: ``from`` endpoints may open connections to ``to`` endpoints of the same
  tenant on the listed services; replies pass only when the policy is ``stateful``.
* **shared-service**: consumer endpoints may open connections to the provider
  endpoints on the listed services; always stateful. The only cross-tenant grant.
* Everything else is denied, including traffic from an endpoint to itself.

IPv6 goes only between two endpoints that both declare ``ipv6``, of one tenant in one
segment, or in two segments with a ``gateway6`` each (routed, global addresses only; across
tenants that is a shared service's consumer and provider) (:func:`ipv6_applies`):
neighbour discovery between segment peers always (:data:`NEIGHBOUR_DISCOVERY`, as ARP),
and what their grants allow, through conntrack as IPv4 (``tcp``/``udp``/``any`` cover
both families, ``icmp6`` is ICMPv6); never the ICMPv6 messages only a router may send
(:data:`ROUTER_ONLY_ICMPV6`).

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

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv6Address
from types import MappingProxyType

from segctl.topology.network import EndpointInfo, Network

__all__ = [
    "ALL_IP",
    "GRANT_SYMBOLS",
    "ICMPV6_REPLY_TYPES",
    "ICMP_REPLY_TYPES",
    "NEIGHBOUR_DISCOVERY",
    "NEIGHBOUR_SOLICITATION",
    "ROUTER_ONLY_ICMPV6",
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
    "ipv6_addresses",
    "ipv6_applies",
    "ipv6_routed",
    "ipv6_segments",
    "normalize_proto",
    "normalize_services",
    "pair_grants",
    "reachability_matrix",
    "reply_allowed",
]

from segctl.topology.grants import (
    ALL_IP,
    GRANT_SYMBOLS,
    ICMP_REPLY_TYPES,
    ICMPV6_REPLY_TYPES,
    EndpointKey,
    Grant,
    GrantKind,
    ServiceMatch,
    normalize_proto,
    normalize_services,
)
from segctl.topology.ordered import Decider, guardrail_applies, is_ordered

Reachability = dict[tuple[EndpointKey, EndpointKey], tuple[Grant, ...]]


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
    tenants (a grant left with no source is dropped).

    Under ordered rules (guardrails or deny policies) a declared allow is no longer a
    product of its sources and destinations; the sets are then what the allows decide,
    per source: one set per (source, grant) with the destinations it reaches by it."""
    if is_ordered(network):
        return _decided_sets(network, tenants)
    return _declared_sets(network, tenants)


def _decided_sets(network: Network, tenants: Container[str] | None) -> list[GrantSet]:
    by_source: dict[tuple[EndpointKey, Grant], list[EndpointInfo]] = {}
    for (src, dst), grants in _ordered_reachability(network, tenants).items():
        for grant in grants:
            by_source.setdefault((src, grant), []).append(network.endpoint(*dst))
    return [
        GrantSet(
            grant,
            dsts[0].tenant if grant.kind == "shared-service" else src[0],
            (network.endpoint(*src),),
            tuple(dsts),
        )
        for (src, grant), dsts in by_source.items()
    ]


def _declared_sets(network: Network, tenants: Container[str] | None = None) -> list[GrantSet]:
    """The declared grants as sets (every rule an allow)."""
    out: list[GrantSet] = []
    for seg in network.segments:
        if seg.strict or (tenants is not None and seg.tenant not in tenants):
            continue
        members = tuple(network.segment_endpoints(seg.tenant, seg.name))
        out.append(GrantSet(Grant("intra-segment", seg.name, ALL_IP, True), seg.tenant, members, members))
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
    if is_ordered(network):
        return _ordered_reachability(network, tenants)
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


def _ordered_reachability(network: Network, tenants: Container[str] | None) -> Reachability:
    """:func:`expected_reachability` under ordered rules: the candidate pairs are those of
    the allows (grant sets and same-tenant guardrail allows); each pair's grants are what
    its allows decide (:func:`segctl.topology.ordered.decide`), pairs left with none dropped."""
    decider = Decider.of(network)
    pairs: dict[tuple[EndpointKey, EndpointKey], tuple[EndpointInfo, EndpointInfo]] = {}
    for item in _declared_sets(network, tenants):
        for src in item.sources:
            for dst in item.destinations:
                pairs.setdefault((src.key, dst.key), (src, dst))
    for rail in network.guardrails:
        if rail.action != "allow":
            continue
        dsts: dict[str, list[EndpointInfo]] = {}
        for dst in network.peer_select(rail.to):
            dsts.setdefault(dst.tenant, []).append(dst)
        for src in network.peer_select(rail.from_):
            if tenants is not None and src.tenant not in tenants:
                continue
            for dst in dsts.get(src.tenant, ()):  # an allow never crosses tenants
                if guardrail_applies(rail, src, dst):
                    pairs.setdefault((src.key, dst.key), (src, dst))
    position = {ep.key: i for i, ep in enumerate(network.endpoints)}
    out: Reachability = {}
    for key in sorted(pairs, key=lambda k: (position[k[0]], position[k[1]])):
        src, dst = pairs[key]
        grants = decider.grants(src, dst)
        if grants:
            out[key] = grants
    return out


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
    family: int = 4,
) -> tuple[Grant, ...]:
    """The grants that allow ``src`` to send a NEW packet of ``proto`` to ``dst``.

    ``proto`` is ``tcp``, ``udp``, ``icmp``, ``icmp6`` or another protocol number as a
    string; ``dst_port`` is the transport destination port for tcp/udp (``None`` matches
    only services without ports); ``icmp_type``/``icmp_code`` those of an ICMP packet
    (``None`` matches only services without a type/code). ``family`` 6 asks for an IPv6
    packet: none unless :func:`ipv6_applies`, and never a router-only ICMPv6 message.
    Empty when the packet is denied.
    """
    if family == 6 and (
        not ipv6_applies(src, dst) or (normalize_proto(proto) == "icmp6" and icmp_type in ROUTER_ONLY_ICMPV6)
    ):
        return ()
    grants = pair_grants(network, src, dst)
    if normalize_proto(proto) == ("icmp" if family == 6 else "icmp6"):
        # the other family's ICMP is one more protocol here: only "any" (or "other") covers it
        return tuple(g for g in grants if any(s.proto in ("any", "other") for s in g.services))
    return tuple(g for g in grants if g.allows(proto, dst_port, icmp_type=icmp_type, icmp_code=icmp_code))


def pair_grants(network: Network, src: EndpointInfo, dst: EndpointInfo) -> tuple[Grant, ...]:
    """All grants from ``src`` to ``dst`` (any service), computed for this one pair.

    Same rules and order as :func:`expected_reachability`, without building the whole relation.
    """
    if src.key == dst.key:
        return ()
    if is_ordered(network):
        return Decider.of(network).grants(src, dst)
    grants: list[Grant] = []
    if src.tenant == dst.tenant and src.segment == dst.segment:
        seg = network.segment(src.tenant, src.segment)
        if not seg.strict:
            grants.append(Grant("intra-segment", seg.name, ALL_IP, True))
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
    family: int = 4,
) -> bool:
    """May ``dst`` reply to a connection ``src`` opened with ``proto``/``dst_port`` (ICMP: ``icmp_type``)?

    True when some *stateful* grant allows the connection (conntrack passes its replies).
    """
    grants = allowed_grants(network, src, dst, proto, dst_port, icmp_type=icmp_type, family=family)
    return any(g.stateful for g in grants)


#: ICMPv6 types only a router may send (RFC 4861): an endpoint never sends them, whatever
#: the segment (RA guard). Router Solicitations (133) and Neighbour Discovery (135, 136)
#: are endpoint messages and stay allowed.
ROUTER_ONLY_ICMPV6: Mapping[int, str] = MappingProxyType({134: "router advertisement", 137: "redirect"})


#: ICMPv6 neighbour discovery between endpoints (RFC 4861): solicitation 135 and
#: advertisement 136. It goes between two IPv6 endpoints of one segment whatever their
#: grants and whether the segment is strict (IPv6's ARP), and never through conntrack.
NEIGHBOUR_DISCOVERY: Mapping[int, str] = MappingProxyType(
    {135: "neighbour solicitation", 136: "neighbour advertisement"}
)
#: The ICMPv6 type of a neighbour solicitation (the gateway answers one for its ``gateway6``).
NEIGHBOUR_SOLICITATION = 135


def ipv6_applies(src: EndpointInfo, dst: EndpointInfo) -> bool:
    """May IPv6 go from ``src`` to ``dst`` at all: two different endpoints, both with ipv6,
    of one tenant in one segment, or routed (both segments have a ``gateway6``; across
    tenants only a shared service grants anything)? Then their grants carry IPv6 as well as
    IPv4."""
    if src.key == dst.key or src.ipv6 is None or dst.ipv6 is None:
        return False
    if src.tenant == dst.tenant and src.segment == dst.segment:
        return True
    return src.ipv6_gateway is not None and dst.ipv6_gateway is not None


def ipv6_routed(src: EndpointInfo, dst: EndpointInfo) -> bool:
    """Does IPv6 from ``src`` to ``dst`` go through the gateway (:func:`ipv6_applies` across
    two segments, of one tenant or two)? Then only global addresses: a link-local one is
    never routed."""
    return (src.tenant, src.segment) != (dst.tenant, dst.segment) and ipv6_applies(src, dst)


def ipv6_addresses(ep: EndpointInfo, routed6: bool) -> tuple[IPv6Address, ...]:
    """``ep``'s IPv6 addresses a peer may use: global and link-local in its segment, the
    global one only when routed (:func:`ipv6_routed`)."""
    if routed6:
        return () if ep.ipv6 is None else (ep.ipv6,)
    return ep.ipv6_sources


def ipv6_segments(network: Network) -> list[tuple[str, str, list[EndpointInfo]]]:
    """(tenant, segment, endpoints with ipv6) of every segment where IPv6 goes
    (:func:`ipv6_applies`): two or more IPv6 endpoints, or a ``gateway6`` and a routed peer
    (another segment of the tenant with one and an IPv6 endpoint, or a shared service's
    consumer or provider in such a segment). In a non-strict segment all of it between its
    members (the intra-segment grant); in a strict one neighbour discovery and what
    policies allow; routed, what policies and shared services allow."""
    members = {
        seg.key: [ep for ep in network.segment_endpoints(seg.tenant, seg.name) if ep.ipv6 is not None]
        for seg in network.segments
    }
    routed: dict[str, int] = {}
    for seg in network.segments:
        if seg.gateway6 is not None and members[seg.key]:
            routed[seg.tenant] = routed.get(seg.tenant, 0) + 1
    shared = _shared_ipv6_segments(network)
    out = []
    for seg in network.segments:
        eps = members[seg.key]
        routes = seg.gateway6 is not None and (routed.get(seg.tenant, 0) >= 2 or seg.key in shared)
        if len(eps) >= 2 or (eps and routes):
            out.append((seg.tenant, seg.name, eps))
    return out


def _shared_ipv6_segments(network: Network) -> set[tuple[str, str]]:
    """The segments of a shared service's consumers and providers that reach each other in
    IPv6 (both segments have a ``gateway6``)."""
    out: set[tuple[str, str]] = set()
    for svc in network.shared_services:
        # ipv6_gateway is set only on an endpoint with ipv6 in a segment with a gateway6
        providers = {
            (z.tenant, z.segment) for z in network.shared_providers(svc) if z.ipv6_gateway is not None
        }
        consumers = {
            (c.tenant, c.segment) for c in network.shared_consumers(svc) if c.ipv6_gateway is not None
        }
        if providers and consumers:
            out |= providers | consumers
    return out


def grant_symbol(grants: Iterable[Grant]) -> str:
    """The matrix letters for a pair: ``G``/``S``/``P``/``X`` per kind present (in that
    order), ``·`` if none."""
    kinds = {g.kind for g in grants}
    order = ("guardrail", "intra-segment", "policy", "shared-service")
    letters = "".join(GRANT_SYMBOLS[k] for k in order if k in kinds)
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
