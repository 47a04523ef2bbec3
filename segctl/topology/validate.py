"""Semantic checks of an intent: references, addresses, ports and VLAN ids.

:func:`validate_intent` returns *every* problem at once, each with the place in the
document (``tenants[acme].endpoints[web1].ip``) and the reason. Overlapping CIDRs
between tenants are valid: isolation never rests on IP addresses.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from ipaddress import IPv4Network, IPv6Network

from segctl.errors import IntentError, Problem
from segctl.topology.schema import (
    Endpoint,
    Guardrail,
    GuardrailPeer,
    Intent,
    Policy,
    Selector,
    Tenant,
)
from segctl.topology.sets import address_in, in_address_set
from segctl.topology.validate_external import check_externals
from segctl.topology.validate_segment import check_segment
from segctl.topology.validate_shared import check_shared_services, duplicates, selected_endpoints

__all__ = ["VLAN_RANGE", "check_intent", "validate_intent"]

#: Fabric VLAN ids segctl may allocate to segments that do not pin one.
VLAN_RANGE = range(2, 4095)
MAX_TENANTS = 4095
#: Where an endpoint's link-local address must be (what Linux uses on an Ethernet link).
LINK_LOCAL = IPv6Network("fe80::/64")


def check_intent(intent: Intent) -> None:
    """Raise :class:`IntentError` with every problem if the intent is not valid."""
    problems = validate_intent(intent)
    if problems:
        raise IntentError(problems)


def validate_intent(intent: Intent) -> list[Problem]:
    """Return every semantic problem of a shape-valid intent (empty when valid)."""
    problems: list[Problem] = []
    problems += _check_fabric(intent)
    problems += _check_tenants(intent)
    problems += _check_service_sets(intent)
    owners = _owners(intent)
    for tenant in intent.tenants:
        problems += _check_tenant(intent, tenant, owners)
    problems += check_shared_services(intent)
    problems += check_externals(intent)
    problems += _check_guardrails(intent)
    problems += _check_vlans(intent)
    return problems


def _check_guardrails(intent: Intent) -> list[Problem]:
    """Guardrail names are unique; a peer names a tenant and a segment that exist (a segment
    alone: some tenant has one so named; with a tenant: that tenant has it)."""
    problems = [
        Problem(f"guardrails[{name}]", "duplicate guardrail name")
        for name in sorted(duplicates(g.name for g in intent.guardrails))
    ]
    segments = {t.name: {s.name for s in t.segments} for t in intent.tenants}
    every_segment = {name for names in segments.values() for name in names}
    address_sets = {t.name: {a.name for a in t.address_sets} for t in intent.tenants}
    for rail in intent.guardrails:
        for side, peer in (("from", rail.from_), ("to", rail.to)):
            where = f"guardrails[{rail.name}].{side}"
            if peer.address_set is not None and peer.tenant is None:
                problems.append(
                    Problem(where, f"address set {peer.address_set} needs a tenant (sets are per tenant)")
                )
            elif peer.address_set is not None and peer.address_set not in address_sets.get(
                peer.tenant or "", ()
            ):
                problems.append(
                    Problem(where, f"unknown address set {peer.address_set} of tenant {peer.tenant}")
                )
            if peer.tenant is not None and peer.tenant not in segments:
                problems.append(Problem(where, f"unknown tenant {peer.tenant}"))
            elif peer.segment is not None and peer.segment not in (
                every_segment if peer.tenant is None else segments[peer.tenant]
            ):
                owner = "any tenant" if peer.tenant is None else f"tenant {peer.tenant}"
                problems.append(Problem(where, f"unknown segment {peer.segment} (not in {owner})"))
        if rail.action == "allow":
            problems += _guardrail_gateways(intent, rail)
    return problems


def _peer_endpoints(intent: Intent, peer: GuardrailPeer) -> list[tuple[Tenant, Endpoint]]:
    """What a peer selects, before resolution (as ``Network.peer_select`` does after it)."""
    out = []
    for t in intent.tenants:
        if peer.tenant not in (None, t.name):
            continue
        aset = next((a for a in t.address_sets if a.name == peer.address_set), None)
        for ep in t.endpoints:
            if peer.segment not in (None, ep.segment) or (
                peer.cidr is not None and not address_in(peer.cidr, ep.ip, ep.ipv6)
            ):
                continue
            if peer.address_set is not None and (
                aset is None or not in_address_set(aset, ep.name, ep.ip, ep.ipv6)
            ):
                continue
            out.append((t, ep))
    return out


def _guardrail_gateways(intent: Intent, rail: Guardrail) -> list[Problem]:
    """An allow between segments is routed, and so are its replies: both segments need a
    gateway (as for a tenant policy), or the guardrail would verify yet carry nothing."""
    sources, destinations = _peer_endpoints(intent, rail.from_), _peer_endpoints(intent, rail.to)
    missing: dict[tuple[str, str], str] = {}
    for tenant, src in sources:
        gateways = {seg.name: seg.gateway for seg in tenant.segments}
        for other, dst in destinations:
            if other.name != tenant.name or src.segment == dst.segment:
                continue
            for seg, peer in ((src.segment, dst), (dst.segment, src)):
                if gateways.get(seg, "") is None and (tenant.name, seg) not in missing:
                    missing[(tenant.name, seg)] = (
                        f"segment {tenant.name}/{seg} has no gateway, so the allow between it and "
                        f"{peer.name} in segment {peer.segment} carries nothing (traffic between "
                        f"segments is routed through the gateways); give it a gateway"
                    )
    return [Problem(f"guardrails[{rail.name}]", message) for message in missing.values()]


def _check_fabric(intent: Intent) -> list[Problem]:
    problems: list[Problem] = []
    switches = {s.name for s in intent.fabric.switches}
    for name in sorted(duplicates(s.name for s in intent.fabric.switches)):
        problems.append(Problem(f"fabric.switches[{name}]", "duplicate switch name"))
    dpids = Counter(s.dpid for s in intent.fabric.switches)
    for sw in intent.fabric.switches:
        if dpids[sw.dpid] > 1:
            problems.append(
                Problem(f"fabric.switches[{sw.name}].dpid", f"datapath id {sw.dpid:#x} is used twice")
            )
    used: dict[tuple[str, int], str] = {}
    for index, link in enumerate(intent.fabric.links):
        where = f"fabric.links[{index}]"
        if link.a.switch == link.b.switch:
            problems.append(Problem(where, f"{link} joins switch {link.a.switch} to itself"))
        for end in (link.a, link.b):
            if end.switch not in switches:
                problems.append(Problem(where, f"{link}: unknown switch {end.switch}"))
                continue
            key = (end.switch, end.port)
            if key in used:
                problems.append(Problem(where, f"port {end} is already used by {used[key]}"))
            else:
                used[key] = f"fabric.links[{index}] ({link})"
    return problems


def _check_service_sets(intent: Intent) -> list[Problem]:
    """Set names are unique; every ``service_sets`` entry names a set."""
    problems = [
        Problem(f"service_sets[{name}]", "duplicate service set name")
        for name in sorted(duplicates(s.name for s in intent.service_sets))
    ]
    known = {s.name for s in intent.service_sets}
    users = [
        *(
            (f"tenants[{t.name}].policies[{p.name}]", p.service_sets)
            for t in intent.tenants
            for p in t.policies
        ),
        *((f"shared_services[{s.name}]", s.service_sets) for s in intent.shared_services),
        *((f"guardrails[{g.name}]", g.service_sets) for g in intent.guardrails),
    ]
    for where, names in users:
        for name in names:
            if name not in known:
                problems.append(Problem(f"{where}.service_sets", f"unknown service set {name}"))
        for name in sorted(duplicates(names)):
            problems.append(Problem(f"{where}.service_sets", f"{name} is listed twice"))
    return problems


def _check_address_sets(base: str, tenant: Tenant) -> list[Problem]:
    """An address set names the tenant's endpoints; each CIDR meets one of its segments."""
    problems = [
        Problem(f"{base}.address_sets[{name}]", "duplicate name in address_sets")
        for name in sorted(duplicates(a.name for a in tenant.address_sets))
    ]
    endpoint_names = {ep.name for ep in tenant.endpoints}
    for aset in tenant.address_sets:
        where = f"{base}.address_sets[{aset.name}]"
        for name in aset.endpoints or []:
            if name not in endpoint_names:
                problems.append(
                    Problem(f"{where}.endpoints", f"unknown endpoint {name} in tenant {tenant.name}")
                )
        for cidr in aset.cidrs or []:
            prefixes = [seg.cidr6 if cidr.version == 6 else seg.cidr for seg in tenant.segments]
            if not any(p is not None and cidr.overlaps(p) for p in prefixes):
                problems.append(
                    Problem(
                        f"{where}.cidrs",
                        f"{cidr} meets none of tenant {tenant.name}'s segments: it would select nothing "
                        "(an address set names the tenant's own endpoints)",
                    )
                )
    return problems


def _check_tenants(intent: Intent) -> list[Problem]:
    problems: list[Problem] = []
    for name in sorted(duplicates(t.name for t in intent.tenants)):
        problems.append(Problem(f"tenants[{name}]", "duplicate tenant name"))
    ids = Counter(t.id for t in intent.tenants if t.id is not None)
    for tenant in intent.tenants:
        if tenant.id is not None and ids[tenant.id] > 1:
            problems.append(Problem(f"tenants[{tenant.name}].id", f"tenant id {tenant.id} is used twice"))
    if len(intent.tenants) > MAX_TENANTS:
        problems.append(Problem("tenants", f"at most {MAX_TENANTS} tenants fit in a conntrack zone"))

    fabric_ports = {(end.switch, end.port) for link in intent.fabric.links for end in (link.a, link.b)}
    switches = {s.name for s in intent.fabric.switches}
    bound: dict[tuple[str, int], str] = {}
    for tenant in intent.tenants:
        for ep in tenant.endpoints:
            where = f"tenants[{tenant.name}].endpoints[{ep.name}].attach"
            key = (ep.attach.switch, ep.attach.port)
            if ep.attach.switch not in switches:
                problems.append(Problem(where, f"unknown switch {ep.attach.switch}"))
            elif key in fabric_ports:
                problems.append(Problem(where, f"port {ep.attach} is a fabric (inter-switch) port"))
            elif key in bound:
                problems.append(Problem(where, f"port {ep.attach} is already bound to {bound[key]}"))
            else:
                bound[key] = f"{tenant.name}/{ep.name}"
    return problems


def _segment_of(tenant: Tenant, name: str) -> IPv4Network | None:
    for seg in tenant.segments:
        if seg.name == name:
            return seg.cidr
    return None


def _owners(intent: Intent) -> dict[tuple[str, str], list[str]]:
    """``(kind, name) -> tenants`` having an endpoint, group or segment of that name."""
    owners: dict[tuple[str, str], list[str]] = defaultdict(list)
    for t in intent.tenants:
        kinds = (
            ("endpoint", t.endpoints),
            ("group", t.groups),
            ("segment", t.segments),
            ("address_set", t.address_sets),
        )
        for kind, items in kinds:
            for item in items:
                owners[(kind, item.name)].append(t.name)
    return owners


def _check_tenant(
    intent: Intent, tenant: Tenant, owners: Mapping[tuple[str, str], list[str]]
) -> list[Problem]:
    base = f"tenants[{tenant.name}]"
    problems: list[Problem] = []
    for kind, items in (
        ("segments", tenant.segments),
        ("endpoints", tenant.endpoints),
        ("groups", tenant.groups),
        ("policies", tenant.policies),
    ):
        for name in sorted(duplicates(item.name for item in items)):
            problems.append(Problem(f"{base}.{kind}[{name}]", f"duplicate name in {kind}"))

    segments = tenant.segments
    for i, seg in enumerate(segments):
        where = f"{base}.segments[{seg.name}]"
        for other in segments[i + 1 :]:
            if seg.cidr.overlaps(other.cidr):
                problems.append(
                    Problem(f"{where}.cidr", f"{seg.cidr} overlaps segment {other.name} ({other.cidr})")
                )
            if seg.cidr6 is not None and other.cidr6 is not None and seg.cidr6.overlaps(other.cidr6):
                problems.append(
                    Problem(f"{where}.cidr6", f"{seg.cidr6} overlaps segment {other.name} ({other.cidr6})")
                )
        problems += check_segment(where, seg)

    seg_by_name = {s.name: s for s in segments}
    macs: dict[str, str] = {}
    ips: dict[str, str] = {}
    for ep in tenant.endpoints:
        where = f"{base}.endpoints[{ep.name}]"
        ep_seg = seg_by_name.get(ep.segment)
        if ep_seg is None:
            problems.append(Problem(f"{where}.segment", f"unknown segment {ep.segment}"))
        else:
            if ep.ip not in ep_seg.cidr:
                problems.append(
                    Problem(f"{where}.ip", f"{ep.ip} is outside segment {ep_seg.name} ({ep_seg.cidr})")
                )
            elif ep_seg.cidr.prefixlen < 31 and ep.ip in (
                ep_seg.cidr.network_address,
                ep_seg.cidr.broadcast_address,
            ):
                problems.append(
                    Problem(f"{where}.ip", f"{ep.ip} is the network or broadcast address of {ep_seg.cidr}")
                )
            if ep_seg.gateway is not None and ep.ip == ep_seg.gateway:
                problems.append(Problem(f"{where}.ip", f"{ep.ip} is the gateway of segment {ep_seg.name}"))
            if ep.ipv6 is not None and ep.ipv6 == ep_seg.gateway6:
                problems.append(
                    Problem(f"{where}.ipv6", f"{ep.ipv6} is the gateway6 of segment {ep_seg.name}")
                )
            if ep.ipv6 is not None:
                if ep_seg.cidr6 is None:
                    problems.append(
                        Problem(f"{where}.ipv6", f"segment {ep_seg.name} has no cidr6 for {ep.ipv6}")
                    )
                elif ep.ipv6 not in ep_seg.cidr6:
                    problems.append(
                        Problem(
                            f"{where}.ipv6", f"{ep.ipv6} is outside segment {ep_seg.name} ({ep_seg.cidr6})"
                        )
                    )
        if ep.mac in macs:
            problems.append(Problem(f"{where}.mac", f"{ep.mac} is also the MAC of {macs[ep.mac]}"))
        else:
            macs[ep.mac] = ep.name
        problems += _check_link_local(where, ep)
        for field, addr in (("ip", ep.ip), ("ipv6", ep.ipv6), ("ipv6_link_local", ep.link_local)):
            if addr is None:
                continue
            if str(addr) in ips:
                what = str(addr)
                if field == "ipv6_link_local" and ep.ipv6_link_local is None:
                    field, what = "mac", f"its link-local address {addr} (from its MAC)"
                owner = ips[str(addr)]
                problems.append(Problem(f"{where}.{field}", f"{what} is also the address of {owner}"))
            else:
                ips[str(addr)] = ep.name
        if tenant.gateway_mac is not None and ep.mac == tenant.gateway_mac:
            problems.append(Problem(f"{where}.mac", f"{ep.mac} is the tenant's gateway MAC"))

    problems += _check_address_sets(base, tenant)
    problems += _check_references(base, tenant, owners, set(seg_by_name))
    return problems


def _check_link_local(where: str, ep: Endpoint) -> list[Problem]:
    declared = ep.ipv6_link_local
    if declared is None:
        return []
    if ep.ipv6 is None:
        why = "needs ipv6 (IPv6 goes only between endpoints that declare one)"
        return [Problem(f"{where}.ipv6_link_local", why)]
    if declared not in LINK_LOCAL:
        return [Problem(f"{where}.ipv6_link_local", f"{declared} is not a link-local address ({LINK_LOCAL})")]
    return []


def _check_references(
    base: str, tenant: Tenant, owners: Mapping[tuple[str, str], list[str]], segments: set[str]
) -> list[Problem]:
    """Group members and policy selectors name this tenant's objects; policies between
    segments have the gateways they route through."""
    problems: list[Problem] = []
    endpoint_names = {ep.name for ep in tenant.endpoints}
    group_names = {g.name for g in tenant.groups}
    for group in tenant.groups:
        for member in group.members or []:
            if member not in endpoint_names:
                problems.append(Problem(f"{base}.groups[{group.name}].members", f"unknown endpoint {member}"))
    known = {
        "endpoint": endpoint_names,
        "group": group_names,
        "segment": segments,
        "address_set": {a.name for a in tenant.address_sets},
    }
    for policy in tenant.policies:
        where = f"{base}.policies[{policy.name}]"
        found = [
            p for side, sel in (("from", policy.from_), ("to", policy.to))
            for p in _check_selector(f"{where}.{side}", sel, tenant.name, known, owners)
        ]  # fmt: skip
        problems += found or _check_gateways(where, tenant, policy)
    return problems


def _check_selector(
    where: str,
    selector: Selector,
    tenant: str,
    known: Mapping[str, set[str]],
    owners: Mapping[tuple[str, str], list[str]],
) -> list[Problem]:
    field = "endpoints" if selector.endpoints is not None else None
    problems: list[Problem] = []
    for kind, name in selector.names():
        place = f"{where}.{field or kind}"
        owner, slash, short = name.rpartition("/")
        if slash and owner == tenant:
            problems.append(
                Problem(
                    place,
                    f"{name}: a policy names its own tenant's objects without the prefix; write {short}",
                )
            )
        elif slash:
            problems.append(
                Problem(
                    place,
                    f"{name} is {'an' if kind == 'endpoint' else 'a'} {kind} of tenant {owner}: "
                    "a policy stays inside its tenant; "
                    "cross-tenant traffic is declared in shared_services",
                )
            )
        elif name not in known[kind]:
            elsewhere = ", ".join(owners.get((kind, name), []))
            problems.append(
                Problem(
                    place,
                    f"unknown {kind} {name}"
                    + (
                        f" in tenant {tenant} (tenant {elsewhere} has one: a policy stays inside its "
                        "tenant; cross-tenant traffic is declared in shared_services)"
                        if elsewhere
                        else ""
                    ),
                )
            )
    for name in sorted(duplicates(selector.endpoints or [])):
        problems.append(Problem(f"{where}.endpoints", f"{name} is listed twice"))
    return problems


def _check_gateways(where: str, tenant: Tenant, policy: Policy) -> list[Problem]:
    """A policy across segments routes through the segment gateways: the sender's always,
    the receiver's for the replies of a stateful policy. Without one no one answers the
    hosts' ARP for their route, so the policy would verify yet carry nothing."""
    gateway = {seg.name: seg.gateway for seg in tenant.segments}
    missing: dict[str, str] = {}
    for src in selected_endpoints(tenant, policy.from_):
        for dst in selected_endpoints(tenant, policy.to):
            if src.segment == dst.segment or src.segment not in gateway or dst.segment not in gateway:
                continue
            if gateway[src.segment] is None and src.segment not in missing:
                missing[src.segment] = (
                    f"segment {src.segment} has no gateway, so {src.name} cannot reach {dst.name} in "
                    f"segment {dst.segment} (traffic between segments is routed through the gateway); "
                    f"give segment {src.segment} a gateway"
                )
            if policy.stateful and gateway[dst.segment] is None and dst.segment not in missing:
                missing[dst.segment] = (
                    f"segment {dst.segment} has no gateway, so {dst.name} cannot reply to {src.name} in "
                    f"segment {src.segment} (replies are routed through the gateway); "
                    f"give segment {dst.segment} a gateway"
                )
    return [Problem(where, message) for message in missing.values()]


def _check_vlans(intent: Intent) -> list[Problem]:
    problems: list[Problem] = []
    owners: dict[int, list[str]] = defaultdict(list)
    count = 0
    for tenant in intent.tenants:
        for seg in tenant.segments:
            count += 1
            if seg.vlan is not None:
                owners[seg.vlan].append(f"tenants[{tenant.name}].segments[{seg.name}].vlan")
    for vlan, places in owners.items():
        if len(places) > 1:
            for place in places[1:]:
                problems.append(Problem(place, f"VLAN {vlan} is already used by {places[0]}"))
    if count > len(VLAN_RANGE):
        problems.append(
            Problem(
                "tenants",
                f"{count} segments need fabric VLAN ids but only {len(VLAN_RANGE)} exist "
                f"({VLAN_RANGE.start}..{VLAN_RANGE.stop - 1})",
            )
        )
    return problems
