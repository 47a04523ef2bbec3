"""The intent's policies toward and from external networks, in the tenant tier's order: the
one model the compiler's routes and NAT, the verifier's properties, ``segctl trace``'s
verdict and ``segctl show``'s external grants are built on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import TypeVar

from segctl.topology.grants import ServiceMatch, normalize_services
from segctl.topology.network import EndpointInfo, ExternalInfo, Network
from segctl.topology.schema import Policy

Address = TypeVar("Address", IPv4Address, IPv6Address)
Prefix = IPv4Network | IPv6Network

#: Outside server addresses tried first (documentation and benchmarking ranges).
_SERVER_CANDIDATES = tuple(IPv4Address(a) for a in ("203.0.113.5", "192.0.2.5", "198.18.0.5"))

__all__ = [
    "ExternalGrant",
    "external_decision",
    "external_grants",
    "outside_server",
    "outside_server6",
    "public_source",
    "public_source6",
]


@dataclass(frozen=True)
class ExternalGrant:
    """A policy with an external peer: ``direction`` ``out`` (endpoints to the outside) or
    ``in``; ``endpoints`` its tenant side; ``outside`` the peer's prefixes (one family:
    :attr:`family`); ``policy`` the intent's policy itself (set by :func:`external_grants`;
    not compared)."""

    name: str
    tenant: str
    external: str
    direction: str
    endpoints: tuple[EndpointInfo, ...]
    outside: tuple[IPv4Network | IPv6Network, ...]
    services: tuple[ServiceMatch, ...]
    allow: bool
    rank: tuple[int, int, int]  # tenant-tier precedence: priority, deny first, document order
    stateful: bool = True
    policy: Policy | None = field(default=None, compare=False, repr=False)
    family: int = 4


def external_grants(network: Network) -> list[ExternalGrant]:
    """Every policy with an external peer, in tenant-tier precedence within each tenant."""
    out = []
    for tenant in network.tenants:
        for index, pol in enumerate(network.policies(tenant.name)):
            peer = pol.to if pol.to.external is not None else pol.from_
            if peer.external is None:
                continue
            direction = "out" if peer is pol.to else "in"
            side = pol.from_ if direction == "out" else pol.to
            priority = pol.priority
            out.append(
                ExternalGrant(
                    f"policy {tenant.name}/{pol.name}", tenant.name, peer.external, direction,
                    tuple(network.select(tenant.name, side)), tuple(peer.outside),
                    normalize_services(pol.services), pol.action == "allow",
                    (priority, 0 if pol.action == "deny" else 1, index), pol.stateful, pol, peer.family,
                )
            )  # fmt: skip
    return sorted(out, key=lambda g: (g.tenant, g.rank))


def public_source(network: Network, ep: EndpointInfo, external: str) -> IPv4Address | None:
    """The source ``ep`` leaves ``external`` with: its floating IP there, else its tenant's
    SNAT address there (None: it has no way out there)."""
    if ep.floating_ip is not None and ep.floating_external == external:
        return ep.floating_ip
    return network.tenant(ep.tenant).snat_address(external)


def public_source6(network: Network, ep: EndpointInfo, external: str) -> IPv6Address | None:
    """The IPv6 source ``ep`` leaves ``external`` with: its own global address, untranslated,
    when it has one routed by its segment's ``gateway6`` and the external network has IPv6
    (None otherwise: no IPv6 way out there)."""
    if ep.ipv6 is None or ep.ipv6_gateway is None or network.external(external).cidr6 is None:
        return None
    return ep.ipv6


def external_decision(
    network: Network,
    ep: EndpointInfo,
    direction: str,
    address: IPv4Address | IPv6Address,
    proto: str,
    port: int | None = None,
    *,
    external: str | None = None,
    icmp_type: int | None = None,
    icmp_code: int | None = None,
) -> ExternalGrant | None:
    """The policy that decides one packet between ``ep`` and the outside: ``direction``
    ``out`` (``ep`` sends to ``address``) or ``in`` (``address`` sends to ``ep``'s floating
    IP, or over IPv6 to its own global address); the first grant of ``ep``'s tenant, in
    tenant-tier precedence, whose peer holds ``address`` and whose services take the packet
    (``allow`` says which way it decides). None when no policy takes it, or when ``ep`` has no
    public address of that family there (IPv4: a floating IP for ``in``; IPv6:
    :func:`public_source6`): the outside reaches nothing else. ``external`` restricts it to
    one external network."""
    for g in external_grants(network):
        if g.tenant != ep.tenant or g.direction != direction or ep not in g.endpoints:
            continue
        if external is not None and g.external != external:
            continue
        if address.version == 6 and public_source6(network, ep, g.external) is None:
            continue
        if direction == "in" and address.version == 4 and ep.floating_external != g.external:
            continue
        if not any(address in p for p in g.outside):
            continue
        if any(s.matches(proto, port, icmp_type=icmp_type, icmp_code=icmp_code) for s in g.services):
            return g
    return None


def outside_server(network: Network, ext: ExternalInfo) -> IPv4Address:
    """An address behind ``ext`` that the most allowing egress policies toward it reach (an
    outside "server" for live probes): the documentation ranges first, then the 6th address
    of each granted prefix of length 8 or more; never on the uplink's own link or inside a
    tenant's segment. The first candidate when no policy reaches any."""
    grants = _egress_toward(network, ext, 4)
    candidates = list(_SERVER_CANDIDATES)
    candidates += [
        p.network_address + 5
        for g in grants
        for p in g.outside
        if isinstance(p, IPv4Network) and p.prefixlen >= 8 and p.num_addresses > 6
    ]
    return _most_reached(candidates, grants, [ext.cidr, *(seg.cidr for seg in network.segments)])


def _egress_toward(network: Network, ext: ExternalInfo, family: int) -> list[ExternalGrant]:
    """The allowing egress grants of one family toward ``ext``."""
    return [
        g for g in external_grants(network)
        if g.external == ext.name and g.direction == "out" and g.allow and g.family == family
    ]  # fmt: skip


def _most_reached(candidates: list[Address], grants: list[ExternalGrant], taken: Sequence[Prefix]) -> Address:
    """The first of ``candidates`` outside ``taken`` that the most ``grants`` reach (the first
    candidate when none is usable)."""
    usable = [a for a in candidates if not any(a in c for c in taken)]
    scored = [(sum(any(a in p for p in g.outside) for g in grants), -i, a) for i, a in enumerate(usable)]
    return max(scored)[2] if scored else candidates[0]


#: IPv6 outside server addresses tried first (the documentation range).
_SERVER6_CANDIDATES = tuple(IPv6Address(a) for a in ("2001:db8:5::5", "2001:db8:a0::5", "3fff::5"))


def outside_server6(network: Network, ext: ExternalInfo) -> IPv6Address | None:
    """:func:`outside_server` for IPv6 (None when ``ext`` has no IPv6): an address that the
    most allowing IPv6 egress policies toward it reach, documentation range first, then the
    6th address of each granted prefix; never on the uplink's link or in a tenant's prefix."""
    if ext.cidr6 is None:
        return None
    grants = _egress_toward(network, ext, 6)
    candidates = list(_SERVER6_CANDIDATES)
    candidates += [p.network_address + 5 for g in grants for p in g.outside if isinstance(p, IPv6Network)]
    taken = [ext.cidr6, *(seg.cidr6 for seg in network.segments if seg.cidr6 is not None)]
    return _most_reached(candidates, grants, taken)
