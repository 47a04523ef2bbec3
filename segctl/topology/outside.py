"""The intent's policies toward and from external networks, in the tenant tier's order: the
one model the compiler's routes and NAT, the verifier's properties, ``segctl trace``'s
verdict and ``segctl show``'s external grants are built on."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from segctl.topology.grants import ServiceMatch, normalize_services
from segctl.topology.network import EndpointInfo, Network
from segctl.topology.schema import Policy

__all__ = ["ExternalGrant", "external_grants", "public_source"]


@dataclass(frozen=True)
class ExternalGrant:
    """A policy with an external peer: ``direction`` ``out`` (endpoints to the outside) or
    ``in``; ``endpoints`` its tenant side; ``outside`` the peer's prefixes; ``policy`` the
    intent's policy itself (set by :func:`external_grants`; not compared)."""

    name: str
    tenant: str
    external: str
    direction: str
    endpoints: tuple[EndpointInfo, ...]
    outside: tuple[IPv4Network, ...]
    services: tuple[ServiceMatch, ...]
    allow: bool
    rank: tuple[int, int, int]  # tenant-tier precedence: priority, deny first, document order
    stateful: bool = True
    policy: Policy | None = field(default=None, compare=False, repr=False)


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
                    (priority, 0 if pol.action == "deny" else 1, index), pol.stateful, pol,
                )
            )  # fmt: skip
    return sorted(out, key=lambda g: (g.tenant, g.rank))


def public_source(network: Network, ep: EndpointInfo, external: str) -> IPv4Address | None:
    """The source ``ep`` leaves ``external`` with: its floating IP there, else its tenant's
    SNAT address there (None: it has no way out there)."""
    if ep.floating_ip is not None and ep.floating_external == external:
        return ep.floating_ip
    return network.tenant(ep.tenant).snat_address(external)
