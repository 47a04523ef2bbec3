"""``segctl show``'s external networks: the uplinks, each tenant's ``snat`` addresses, each
endpoint's floating IP and the grants to and from the outside (docs/intent.md, "External
networks"). Shown only when the intent has external networks: the output of an intent
without them is unchanged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segctl.topology.grants import Grant
    from segctl.topology.network import EndpointInfo, ExternalInfo, Network, TenantInfo
    from segctl.topology.outside import ExternalGrant
    from segctl.topology.schema import Policy, Selector

__all__ = [
    "ExternalReach",
    "external_documents",
    "external_grant_documents",
    "external_grant_lines",
    "external_reach",
    "external_section",
    "floating_document",
    "floating_text",
    "snat_document",
    "snat_text",
    "uplink_text",
]

Section = tuple[str, list[str], list[list[object]]]
HasTenant = Callable[[str], bool]


def external_section(network: Network) -> Section:
    """The external networks: uplink (and standby uplinks), upstream router, public range,
    the fabric's MAC there (and the router's IPv6 address and the link's prefix, when one
    has IPv6)."""
    head = ["EXTERNAL", "UPLINK", "ROUTER IP", "ROUTER MAC", "CIDR", "FABRIC MAC"]
    rows: list[list[object]] = [
        [x.name, uplink_text(x), x.router_ip, x.router_mac, x.cidr, x.mac] for x in network.externals
    ]
    if any(x.cidr6 is not None for x in network.externals):
        head += ["ROUTER IP6", "CIDR6"]
        for row, x in zip(rows, network.externals, strict=True):
            row += [x.router_ip6 or "-", x.cidr6 or "-"]
    return ("External networks", head, rows)


def external_documents(network: Network) -> list[dict[str, Any]]:
    """``show -o json``'s ``externals``."""
    return [
        {
            "name": x.name,
            "index": x.index,
            "switch": x.switch,
            "port": x.port,
            "standby": [f"{switch}:{port}" for switch, port in x.standby],
            "router_ip": str(x.router_ip),
            "router_mac": x.router_mac,
            "cidr": str(x.cidr),
            "mac": x.mac,
            **({"router_ip6": str(x.router_ip6), "cidr6": str(x.cidr6)} if x.cidr6 is not None else {}),
        }
        for x in network.externals
    ]


def uplink_text(x: ExternalInfo) -> str:
    """The active uplink, then each standby one: ``edge2:48 (standby edge1:48)``."""
    standby = ", ".join(f"{switch}:{port}" for switch, port in x.standby)
    return f"{x.switch}:{x.port}" + (f" (standby {standby})" if standby else "")


def snat_text(tenant: TenantInfo) -> str | None:
    """``198.51.100.10 on internet`` per external network the tenant has a snat address on."""
    return ", ".join(f"{address} on {name}" for name, address in tenant.snat) or None


def floating_text(ep: EndpointInfo) -> str | None:
    return None if ep.floating_ip is None else f"{ep.floating_ip} on {ep.floating_external}"


def snat_document(network: Network, tenant: TenantInfo) -> dict[str, Any]:
    """A tenant's ``snat`` in ``show -o json`` (nothing for an intent without external networks)."""
    return {"snat": {name: str(address) for name, address in tenant.snat}} if network.externals else {}


def floating_document(network: Network, ep: EndpointInfo) -> dict[str, Any]:
    """An endpoint's floating IP in ``show -o json`` (nothing without external networks)."""
    if not network.externals:
        return {}
    address = None if ep.floating_ip is None else str(ep.floating_ip)
    return {"floating_ip": address, "floating_external": ep.floating_external}


@dataclass(frozen=True)
class ExternalReach:
    """What one endpoint may open to an external peer (``egress``) or the peer to it, and
    the allow policies that say so; ``narrowed_by`` names the deny policies evaluated
    before them that drop some of it."""

    egress: bool
    endpoint: EndpointInfo
    external: str
    peer: Selector
    grants: tuple[Grant, ...]
    narrowed_by: tuple[str, ...]


def external_reach(network: Network, has_tenant: HasTenant) -> list[ExternalReach]:
    """Every endpoint's grants to and from the outside (the intent's external grants,
    :func:`~segctl.topology.outside.external_grants`, per endpoint): egress first, then
    ingress, each in endpoint order, one per (endpoint, peer) with its allow policies in
    document order."""
    from segctl.topology.outside import external_grants

    # each tenant's in document order: the order allows are merged in and denies named
    grants = sorted(
        (g for g in external_grants(network) if has_tenant(g.tenant)), key=lambda g: (g.tenant, g.rank[2])
    )
    found: dict[tuple[bool, tuple[str, str], str], tuple[EndpointInfo, Selector, list[Grant], list[str]]] = {}
    for allow in (g for g in grants if g.allow):
        peer = _peer(allow)
        for ep in allow.endpoints:
            key = (allow.direction == "out", ep.key, peer.describe())
            _, _, allows, denies = found.setdefault(key, (ep, peer, [], []))
            allows.append(_grant(allow))
            denies += [n for n in _denies(grants, allow, ep) if n not in denies]
    position = {ep.key: i for i, ep in enumerate(network.endpoints)}
    reach = [
        ExternalReach(egress, ep, peer.external or "", peer, tuple(allows), tuple(denies))
        for (egress, _, _), (ep, peer, allows, denies) in found.items()
    ]
    return sorted(reach, key=lambda r: (not r.egress, position[r.endpoint.key]))


def _policy(grant: ExternalGrant) -> Policy:
    if grant.policy is None:
        raise ValueError(f"{grant.name}: an external grant without its policy")
    return grant.policy


def _peer(grant: ExternalGrant) -> Selector:
    """The external side of the grant's policy, as written."""
    policy = _policy(grant)
    return policy.to if grant.direction == "out" else policy.from_


def _grant(allow: ExternalGrant) -> Grant:
    from segctl.topology.grants import Grant

    return Grant("policy", _policy(allow).name, allow.services, allow.stateful)


def _denies(grants: list[ExternalGrant], allow: ExternalGrant, ep: EndpointInfo) -> list[str]:
    """The deny policies evaluated before ``allow`` (the tenant tier's order: a lower
    priority, or the same: a deny first) on the same external network, direction and
    endpoint, whose addresses meet its own."""
    return [
        _policy(deny).name
        for deny in grants
        if not deny.allow
        and (deny.tenant, deny.external, deny.direction) == (allow.tenant, allow.external, allow.direction)
        and deny.rank < allow.rank
        and any(a.overlaps(b) for a in deny.outside for b in allow.outside)
        and ep in deny.endpoints
    ]


def _why(grant: ExternalReach) -> str:
    why = "; ".join(g.describe() for g in grant.grants)
    if grant.narrowed_by:
        why += f" (narrowed by deny policy {', '.join(grant.narrowed_by)})"
    return why


def external_grant_lines(network: Network, has_tenant: HasTenant) -> list[str]:
    """The allowed list's lines to and from the outside."""
    out = []
    for grant in external_reach(network, has_tenant):
        ep = grant.endpoint
        if grant.egress:
            out.append(f"  {ep.qualified} -> {grant.peer.describe()}: {_why(grant)}")
        else:
            at = f"own address {ep.ipv6}" if grant.peer.family == 6 else f"floating {ep.floating_ip}"
            out.append(f"  {grant.peer.describe()} -> {ep.qualified} ({at}): {_why(grant)}")
    return out


def external_grant_documents(network: Network, has_tenant: HasTenant) -> list[dict[str, Any]]:
    """``show -o json``'s ``external_reachability``: per endpoint and external peer, the
    direction, the peer's prefixes, the public address the outside sees and the grants."""
    from segctl.topology.outside import public_source, public_source6
    from segctl.topology.schema import ANY_IPV4

    out = []
    for grant in external_reach(network, has_tenant):
        ep, peer = grant.endpoint, grant.peer
        floating = ep.floating_ip if ep.floating_external == grant.external else None
        address: object = public_source(network, ep, grant.external) if grant.egress else floating
        if peer.family == 6:  # its own global address, both ways
            address = public_source6(network, ep, grant.external)
        out.append(
            {
                "direction": "egress" if grant.egress else "ingress",
                "endpoint": ep.qualified,
                "external": grant.external,
                "peer": peer.describe(),
                "cidr": str(peer.cidr or ANY_IPV4),
                "except": [str(n) for n in peer.except_ or []],
                "prefixes": [str(n) for n in peer.outside],
                "public_address": None if address is None else str(address),
                "grants": [g.to_json() for g in grant.grants],
                "narrowed_by": list(grant.narrowed_by),
            }
        )
    return out
