"""Validation of external networks: ``fabric.externals``, tenants' ``snat`` addresses,
endpoints' ``floating_ip`` and policies with an ``external`` peer (IPv4 only).

The rules, each problem naming its place:

* an external network has a unique name; at most :data:`MAX_EXTERNALS` of them; one to
  :data:`MAX_UPLINKS` distinct ``attach`` ports (the first that is up is active, the others
  standby), each on a known switch and not an endpoint's, a fabric link's or another
  external network's port;
* ``router.ip`` is inside ``cidr``, not its network or broadcast address; the fabric
  ``mac`` (when given) is none of the router's, a given tenant ``gateway_mac`` or an
  endpoint's MAC (the schema makes every MAC unicast); ``cidr`` overlaps no tenant
  segment (the public range is outside every tenant);
* ``snat`` names an external network; its address is inside that network's ``cidr``, not
  its network, broadcast or router address, and no other tenant's;
* a ``floating_ip`` is inside exactly one external network's ``cidr``, not its network,
  broadcast or router address, no tenant's ``snat`` address, no other endpoint's;
* an IPv6 peer leaves out the link-local prefix ``fe80::/10`` (the tenant's endpoints have
  addresses there);
* a tenant's policy peers with two different external networks share no address (its
  gateway routes an outside address toward one of them);
* a policy peer ``{external, cidr, except}`` names an external network, on one side only;
  each ``except`` prefix lies inside ``cidr``; what is left is not empty and overlaps
  none of the tenant's segments (an external grant never matches internal traffic);
* an ``allow`` to the outside has a way out: the tenant's ``snat`` there, or a floating
  IP there on every source; an ``allow`` from the outside reaches only endpoints with a
  floating IP there; both need the gateway of the inside endpoints' segments (the
  outside is routed). A ``deny`` needs neither;
* with external networks a tenant has at most :data:`MAX_SEGMENTS_WITH_EXTERNALS` segments,
  and no tenant has id :data:`OUTSIDE_ORIGIN` (4095, the outside's mark in the pipeline).
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Network

from segctl.errors import Problem
from segctl.topology.schema import ANY_IPV4, Endpoint, External, Intent, Policy, Selector, Tenant
from segctl.topology.validate_shared import duplicates, selected_endpoints

__all__ = ["MAX_EXTERNALS", "MAX_SEGMENTS_WITH_EXTERNALS", "MAX_UPLINKS", "OUTSIDE_ORIGIN", "check_externals"]

#: IPv6 link-local addresses: every IPv6 endpoint has one, so no external peer holds them.
LINK_LOCAL6 = IPv6Network("fe80::/10")
#: Uplink ports per external network: one active, the others standby.
MAX_UPLINKS = 4
#: The pipeline has one external transit context per external network, 16 in all...
MAX_EXTERNALS = 16
#: The tenant id the pipeline marks the outside's packets with (their context's ORIGIN).
OUTSIDE_ORIGIN = 0xFFF
#: ...taken from the 255 segment contexts of each tenant.
MAX_SEGMENTS_WITH_EXTERNALS = 255 - MAX_EXTERNALS


def check_externals(intent: Intent) -> list[Problem]:
    """Every problem of the intent's external networks and of what uses them."""
    externals: dict[str, External] = {}
    for x in intent.fabric.externals:
        externals.setdefault(x.name, x)  # the first of a name (a duplicate is reported)
    problems = _check_uplinks(intent) + _check_external_addresses(intent)
    problems += _check_snat(intent, externals) + _check_floating_ips(intent, externals)
    for tenant in intent.tenants:
        for policy in tenant.policies:
            problems += _check_policy(tenant, policy, externals, intent.tenants)
        problems += _check_one_way_out(tenant, externals)
        if externals and len(tenant.segments) > MAX_SEGMENTS_WITH_EXTERNALS:
            problems.append(
                Problem(
                    f"tenants[{tenant.name}].segments",
                    f"{len(tenant.segments)} segments: with external networks a tenant has at most "
                    f"{MAX_SEGMENTS_WITH_EXTERNALS} (the pipeline reserves {MAX_EXTERNALS} of its 255 "
                    "segment contexts for external transit)",
                )
            )
        if externals and tenant.id == OUTSIDE_ORIGIN:
            problems.append(
                Problem(
                    f"tenants[{tenant.name}].id",
                    f"tenant id {OUTSIDE_ORIGIN} is reserved when the fabric has external networks: the "
                    "pipeline marks what comes from the outside with it; give the tenant another id",
                )
            )
    return problems


def _check_uplinks(intent: Intent) -> list[Problem]:
    """Names, the count, and one free edge port per external network."""
    fabric = intent.fabric
    problems = [
        Problem(f"fabric.externals[{name}]", "duplicate external network name")
        for name in sorted(duplicates(x.name for x in fabric.externals))
    ]
    if len(fabric.externals) > MAX_EXTERNALS:
        problems.append(
            Problem(
                "fabric.externals",
                f"{len(fabric.externals)} external networks: at most {MAX_EXTERNALS} are supported",
            )
        )
    switches = {s.name for s in fabric.switches}
    link_ports = {(end.switch, end.port) for link in fabric.links for end in (link.a, link.b)}
    bound = {
        (ep.attach.switch, ep.attach.port): f"{t.name}/{ep.name}"
        for t in intent.tenants
        for ep in t.endpoints
    }
    uplinks: dict[tuple[str, int], str] = {}
    for x in fabric.externals:
        where = f"fabric.externals[{x.name}].attach"
        if len(x.attach) > MAX_UPLINKS:
            many = f"{len(x.attach)} uplink ports: at most {MAX_UPLINKS} (one active, the rest standby)"
            problems.append(Problem(where, many))
        for i, port in enumerate(x.attach):
            key, reason = (port.switch, port.port), None
            if port.switch not in switches:
                reason = f"unknown switch {port.switch}"
            elif key in link_ports:
                reason = f"port {port} is a fabric (inter-switch) port"
            elif key in bound:
                reason = f"port {port} is already bound to {bound[key]}"
            elif uplinks.get(key) == x.name:
                reason = f"port {port} is listed twice"
            elif key in uplinks:
                reason = f"port {port} is already the uplink of external network {uplinks[key]}"
            uplinks.setdefault(key, x.name)
            problems += [Problem(f"{where}[{i}]", reason)] if reason else []
    return problems


def _check_external_addresses(intent: Intent) -> list[Problem]:
    """The router's address, the fabric's MAC and the public range of each external network."""
    problems: list[Problem] = []
    macs = {t.gateway_mac: f"the gateway MAC of tenant {t.name}" for t in intent.tenants if t.gateway_mac}
    macs |= {ep.mac: f"the MAC of endpoint {t.name}/{ep.name}" for t in intent.tenants for ep in t.endpoints}
    for x in intent.fabric.externals:
        where = f"fabric.externals[{x.name}]"
        ip = x.router.ip
        if ip not in x.cidr:
            problems.append(Problem(f"{where}.router.ip", f"{ip} is outside the network's cidr {x.cidr}"))
        elif _edge(x.cidr, ip):
            problems.append(
                Problem(f"{where}.router.ip", f"{ip} is the network or broadcast address of {x.cidr}")
            )
        owner = {**macs, x.router.mac: "the router's MAC (router.mac)"}.get(x.mac or "")
        if owner is not None:
            problems.append(
                Problem(
                    f"{where}.mac", f"{x.mac} is also {owner}: the fabric needs its own MAC on the uplink"
                )
            )
        problems += _check_external_ipv6(intent, x)
        for tenant in intent.tenants:
            for seg in tenant.segments:
                if x.cidr.overlaps(seg.cidr):
                    problems.append(
                        Problem(
                            f"{where}.cidr",
                            f"{x.cidr} overlaps segment {tenant.name}/{seg.name} ({seg.cidr}): the public "
                            "range of an external network is outside every tenant",
                        )
                    )
    return problems


def _check_external_ipv6(intent: Intent, x: External) -> list[Problem]:
    """``router.ip6`` and ``cidr6`` together; the router's address inside the link's prefix;
    the prefix outside every tenant's ``cidr6``."""
    where = f"fabric.externals[{x.name}]"
    if (x.router.ip6 is None) != (x.cidr6 is None):
        given, missing = ("router.ip6", "cidr6") if x.cidr6 is None else ("cidr6", "router.ip6")
        return [
            Problem(
                f"{where}.{missing}", f"{given} is given: IPv6 on the uplink needs both router.ip6 and cidr6"
            )
        ]
    if x.router.ip6 is None or x.cidr6 is None:
        return []
    problems = []
    ip6, cidr6 = x.router.ip6, x.cidr6
    if ip6 not in cidr6:
        problems.append(Problem(f"{where}.router.ip6", f"{ip6} is outside the network's cidr6 {cidr6}"))
    elif ip6 == cidr6.network_address and cidr6.prefixlen < 127:
        problems.append(
            Problem(f"{where}.router.ip6", f"{ip6} is the subnet-router anycast address of {cidr6}")
        )
    for tenant in intent.tenants:
        for seg in tenant.segments:
            if seg.cidr6 is not None and cidr6.overlaps(seg.cidr6):
                problems.append(
                    Problem(
                        f"{where}.cidr6",
                        f"{cidr6} overlaps segment {tenant.name}/{seg.name} ({seg.cidr6}): the uplink's link "
                        "is outside every tenant",
                    )
                )
    return problems


def _edge(cidr: IPv4Network, address: IPv4Address) -> bool:
    return cidr.prefixlen < 31 and address in (cidr.network_address, cidr.broadcast_address)


def _public_address(x: External, address: IPv4Address) -> str | None:
    """Why ``address`` cannot be a public address of ``x`` (None: it can)."""
    if address not in x.cidr:
        return f"{address} is outside external network {x.name} ({x.cidr})"
    if _edge(x.cidr, address):
        return f"{address} is the network or broadcast address of {x.cidr}"
    if address == x.router.ip:
        return f"{address} is the router address of external network {x.name}"
    return None


def _unknown(name: str, externals: Iterable[str]) -> str:
    known = ", ".join(externals) or "none: declare it in fabric.externals"
    return f"unknown external network {name} (external networks: {known})"


def _check_snat(intent: Intent, externals: dict[str, External]) -> list[Problem]:
    problems: list[Problem] = []
    owners: dict[IPv4Address, str] = {}
    for tenant in intent.tenants:
        for name, address in tenant.snat.items():
            where = f"tenants[{tenant.name}].snat.{name}"
            if name not in externals:
                problems.append(Problem(where, _unknown(name, externals)))
                continue
            reason = _public_address(externals[name], address)
            if reason is not None:
                problems.append(Problem(where, reason))
            elif address in owners:
                problems.append(
                    Problem(
                        where,
                        f"{address} is also the snat address of tenant {owners[address]}: each tenant "
                        "needs its own (replies find their tenant by it)",
                    )
                )
            else:
                owners[address] = tenant.name
    return problems


def _check_floating_ips(intent: Intent, externals: dict[str, External]) -> list[Problem]:
    problems: list[Problem] = []
    snat = {a: t.name for t in intent.tenants for a in t.snat.values()}
    owners: dict[IPv4Address, str] = {}
    for tenant in intent.tenants:
        for ep in tenant.endpoints:
            address = ep.floating_ip
            if address is None:
                continue
            where = f"tenants[{tenant.name}].endpoints[{ep.name}].floating_ip"
            holders = [x for x in externals.values() if address in x.cidr]
            ranges = ", ".join(f"{x.name} {x.cidr}" for x in holders or externals.values()) or "none"
            reason = _public_address(holders[0], address) if len(holders) == 1 else None
            if not holders:
                reason = (
                    f"no external network holds {address}, the floating IP of {tenant.name}/{ep.name} "
                    f"(external networks: {ranges})"
                )
            elif len(holders) > 1:
                reason = f"{address} is inside several external networks ({ranges}); it must be in one"
            elif address in snat:
                reason = f"{address} is the snat address of tenant {snat[address]}"
            elif address in owners:
                reason = f"{address} is also the floating IP of {owners[address]}"
            if reason is None:
                owners[address] = f"{tenant.name}/{ep.name}"
            else:
                problems.append(Problem(where, reason))
    return problems


def _check_policy(
    tenant: Tenant, policy: Policy, externals: dict[str, External], tenants: list[Tenant]
) -> list[Problem]:
    """A policy with an external peer: the peer itself, then (an allow) the way in or out."""
    where = f"tenants[{tenant.name}].policies[{policy.name}]"
    sides = [(side, sel) for side, sel in (("from", policy.from_), ("to", policy.to)) if sel.external]
    if len(sides) == 2:
        why = "from and to are both external networks: a policy has one side inside its tenant"
        return [Problem(where, why)]
    if not sides:
        return []
    side, peer = sides[0]
    x = externals.get(peer.external or "")
    if x is None:
        return [Problem(f"{where}.{side}.external", _unknown(peer.external or "", externals))]
    if peer.family == 6 and x.cidr6 is None:
        why = f"{peer.cidr} is IPv6, and external network {x.name} has no IPv6 (give it router.ip6 and cidr6)"
        return [Problem(f"{where}.{side}.cidr", why)]
    problems = _check_peer(f"{where}.{side}", tenant, peer)
    inside = _picked(tenant, policy.to if side == "from" else policy.from_)
    if problems or policy.action != "allow" or inside is None:
        return problems
    if peer.family == 6:
        return _check_ipv6_way(where, tenant, inside, x, tenants)
    lacking = [ep for ep in inside if ep.floating_ip is None or ep.floating_ip not in x.cidr]
    if side == "to" and x.name not in tenant.snat and lacking:
        problems.append(
            Problem(
                where,
                f"{_names(lacking)} {_have(lacking)} no way out to external network {x.name}: give tenant "
                f"{tenant.name} a snat address there (snat: {{{x.name}: ADDRESS}}) or "
                f"{_them(lacking)} a floating_ip in {x.cidr}",
            )
        )
    elif side == "from" and lacking:
        problems.append(
            Problem(
                where,
                f"{_names(lacking)} {_have(lacking)} no floating IP on external network {x.name}: the "
                f"outside reaches an endpoint only through its floating IP; give {_them(lacking)} a "
                f"floating_ip in {x.cidr}",
            )
        )
    return problems + _check_gateways(where, tenant, inside, x.name)


def _check_ipv6_way(
    where: str, tenant: Tenant, inside: list[Endpoint], x: External, tenants: list[Tenant]
) -> list[Problem]:
    """An IPv6 allow with the outside: each inside endpoint has a global address routed by its
    segment's ``gateway6`` (it leaves, and is reached, untranslated), and those segments'
    ``cidr6`` belong to no other tenant (the outside's packets are routed by destination)."""
    segments = {seg.name: seg for seg in tenant.segments}
    lacking = [ep for ep in inside if ep.ipv6 is None or segments[ep.segment].gateway6 is None]
    problems = []
    if lacking:
        problems.append(
            Problem(
                where,
                f"{_names(lacking)} {_have(lacking)} no routed IPv6 address: IPv6 with external network "
                f"{x.name} goes from and to an endpoint's own global address, routed by its segment's "
                f"gateway6; give {_them(lacking)} an ipv6 in a segment with a gateway6",
            )
        )
    used = {ep.segment for ep in inside if ep not in lacking}
    for name in sorted(used):
        cidr6 = segments[name].cidr6
        for other in tenants:
            for seg in other.segments if other.name != tenant.name else ():
                if cidr6 is not None and seg.cidr6 is not None and cidr6.overlaps(seg.cidr6):
                    problems.append(
                        Problem(
                            where,
                            f"segment {name} ({cidr6}) overlaps segment {other.name}/{seg.name} "
                            f"({seg.cidr6}): IPv6 from external network {x.name} is routed by destination, "
                            "so a tenant reaching it over IPv6 needs prefixes of its own",
                        )
                    )
    return problems


def _check_one_way_out(tenant: Tenant, externals: dict[str, External]) -> list[Problem]:
    """A tenant's gateway routes an outside address toward one external network: the peers of
    its policies with two different external networks (either direction: replies are routed
    too) share no address."""
    seen: list[tuple[str, str, Policy, list[IPv4Network | IPv6Network]]] = []
    problems = []
    for policy in tenant.policies:
        side, peer = ("to", policy.to) if policy.to.external else ("from", policy.from_)
        if peer.external not in externals or (policy.from_.external and policy.to.external):
            continue
        mine = peer.outside
        for name, other_side, other, prefixes in seen:
            if name != peer.external and any(a.overlaps(b) for a in mine for b in prefixes):
                other_peer = other.to if other_side == "to" else other.from_
                problems.append(
                    Problem(
                        f"tenants[{tenant.name}].policies[{policy.name}].{side}",
                        f"{peer.describe()} shares addresses with policy {other.name} "
                        f"({other_peer.describe()}): tenant {tenant.name} routes an outside address toward "
                        "one external network; narrow one of them with except",
                    )
                )
                break
        seen.append((peer.external or "", side, policy, mine))
    return problems


def _check_peer(where: str, tenant: Tenant, peer: Selector) -> list[Problem]:
    """``except`` inside ``cidr``; the rest not empty and outside the tenant's segments."""
    cidr: IPv4Network | IPv6Network = peer.cidr or ANY_IPV4
    problems = []
    for i, cut in enumerate(peer.except_ or []):
        if not cut.overlaps(cidr):
            problems.append(Problem(f"{where}.except[{i}]", f"{cut} is outside {cidr}: it excludes nothing"))
        elif not cut.subnet_of(cidr):  # type: ignore[arg-type]  # one family: the schema says so
            problems.append(
                Problem(f"{where}.except[{i}]", f"{cut} is wider than {cidr}: give a prefix inside it")
            )
    if problems:
        return problems
    if not peer.outside:
        return [Problem(where, f"except covers all of {cidr}: the peer has no address left")]
    for seg in tenant.segments:
        own = seg.cidr6 if peer.family == 6 else seg.cidr
        if own is not None and any(prefix.overlaps(own) for prefix in peer.outside):
            fix = (
                f"add {own} to except"
                if own.subnet_of(cidr)  # type: ignore[arg-type]  # one family
                else f"narrow cidr to leave out {own}"
            )
            problems.append(
                Problem(
                    where,
                    f"{peer.describe()} includes segment {seg.name} ({own}) of tenant {tenant.name}: "
                    f"{fix} (an external peer is outside the tenant)",
                )
            )
    if peer.family == 6 and any(prefix.overlaps(LINK_LOCAL6) for prefix in peer.outside):
        # every IPv6 endpoint has a link-local address there: the gateway would route a
        # packet for a neighbour's link-local address out of the uplink
        inside = isinstance(cidr, IPv6Network) and LINK_LOCAL6.subnet_of(cidr)
        fix = f"add {LINK_LOCAL6} to except" if inside else f"narrow cidr to leave out {LINK_LOCAL6}"
        problems.append(
            Problem(
                where,
                f"{peer.describe()} includes the link-local prefix {LINK_LOCAL6}, where the tenant's "
                f"endpoints have addresses too: {fix} (an external peer is outside the tenant)",
            )
        )
    return problems


def _picked(tenant: Tenant, selector: Selector) -> list[Endpoint] | None:
    """What the inside selector picks; None when it names what the tenant lacks (reported
    by :mod:`segctl.topology.validate`) or is external too."""
    known = {
        "endpoint": {ep.name for ep in tenant.endpoints},
        "group": {g.name for g in tenant.groups},
        "segment": {s.name for s in tenant.segments},
        "address_set": {a.name for a in tenant.address_sets},
    }
    if selector.external is not None or any(name not in known[kind] for kind, name in selector.names()):
        return None
    return selected_endpoints(tenant, selector)


def _check_gateways(where: str, tenant: Tenant, inside: list[Endpoint], external: str) -> list[Problem]:
    """Traffic to and from the outside is routed: the inside endpoints' segments need a gateway."""
    gateways = {seg.name: seg.gateway for seg in tenant.segments}
    missing: dict[str, Endpoint] = {}
    for ep in inside:
        if ep.segment in gateways and gateways[ep.segment] is None:
            missing.setdefault(ep.segment, ep)
    return [
        Problem(
            where,
            f"segment {segment} has no gateway, so {ep.name} cannot exchange traffic with external network "
            f"{external} (it is routed through the gateway); give segment {segment} a gateway",
        )
        for segment, ep in missing.items()
    ]


def _names(endpoints: list[Endpoint]) -> str:
    return ", ".join(ep.name for ep in endpoints)


def _have(endpoints: list[Endpoint]) -> str:
    return "has" if len(endpoints) == 1 else "have"


def _them(endpoints: list[Endpoint]) -> str:
    return "it" if len(endpoints) == 1 else "each"
