"""External networks: the routes between a tenant's endpoints and an uplink, and conntrack
NAT at the uplink's switch (``docs/pipeline.md``, "External networks").

Out: the source's gateway (table 40) routes what a tenant's external policies name (the
longest prefix first) into the tenant's **transit context** of that external network
(metadata segment :func:`transit_segment`, its own fabric VLAN), which forwarding (table
50) carries to the uplink's switch; there ``nat_out`` (52) translates the source in the
tenant's **NAT zone** (:func:`nat_zone`) to the endpoint's floating IP or the tenant's SNAT
address, and ``uplink_out`` (53) sends it to the upstream router, public sources only.
In: the uplink port admits IPv4 to the public range (table 0) into the external's **uplink
context** (tenant 0, the transit segment); ``nat_in`` (46) answers the router's ARP for
the public addresses, translates a floating IP to its endpoint (committing the DNAT) and a
reply to an SNAT address back (``ct(nat)``: only an existing connection is translated);
``uplink_in`` (47) routes what now has a private destination in a tenant's NAT zone to that
endpoint's context, on to forwarding and the endpoint's own policy (table 70).

Every function returns rules; :mod:`segctl.flows.compiler` assembles them per switch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Address, IPv6Network, collapse_addresses

from segctl.flows.pipeline import (
    CLASSIFY,
    CT_DST,
    FORWARD,
    META_SEGMENT_MASK,
    META_SEGMENT_SHIFT,
    META_WRITE_MASK,
    NAT_IN,
    NAT_OUT,
    ND_OPTION_TLL,
    PRIO_DEFAULT,
    PRIO_ENDPOINT,
    PRIO_EXTERNAL_ROUTE,
    PRIO_GUARD,
    PRIO_RESPONDER,
    PRIO_SPECIFIC,
    ROUTE,
    UPLINK_IN,
    UPLINK_OUT,
    metadata_value,
)
from segctl.flows.rules import Rule
from segctl.openflow.cookies import Kind, make_cookie
from segctl.openflow.ofctl import (
    IN_PORT,
    Action,
    Ct,
    DecTtl,
    Drop,
    GotoTable,
    Nat,
    Output,
    PopVlan,
    PushVlan,
    SetField,
    WriteMetadata,
    mac_int,
)
from segctl.topology.model import FabricPaths
from segctl.topology.network import EndpointInfo, ExternalInfo, Network
from segctl.topology.outside import external_grants, public_source, public_source6
from segctl.topology.validate_external import OUTSIDE_ORIGIN

__all__ = [
    "NAT_ZONE_BASE",
    "OUTSIDE",
    "ExternalPlan",
    "external_classify",
    "external_forward",
    "external_routes",
    "nat_in_stage",
    "nat_out_stage",
    "nat_zone",
    "plan_externals",
    "transit_segment",
    "uplink_in_stage",
    "uplink_out_stage",
]

#: Conntrack zone of a tenant's translations: ``NAT_ZONE_BASE | tenant id`` (tenant zones
#: are the ids themselves, 1..4095): the NAT entry of a connection never meets its policy
#: entry, even when the endpoint sits on the uplink's switch.
NAT_ZONE_BASE = 0x1000
#: The ORIGIN of what comes from the outside, at its endpoint (a tenant id no tenant has:
#: validation keeps it free when externals exist).
OUTSIDE = OUTSIDE_ORIGIN
_CTX = 0xFFFF_FFFF  # the whole context (tenant, segment, origin)
_UNTAGGED = ("vlan_tci", "0x0000/0x1fff")


def transit_segment(ext: ExternalInfo) -> int:
    """The metadata segment of external network ``ext``'s contexts: 255, 254, ... by index
    (validation keeps tenants below 240 segments when externals exist)."""
    return 0xFF - (ext.index - 1)


def nat_zone(tenant_id: int) -> int:
    return NAT_ZONE_BASE | tenant_id


@dataclass
class ExternalPlan:
    """What one compilation knows about one external network.

    ``users``: the tenants that send to it or are reached from it, in id order; ``snat``:
    their SNAT addresses there; ``floating``: their endpoints with a floating IP there; ``vlan``:
    each user's transit VLAN; ``routes``: the prefixes a user's gateway routes there
    (its external policies' peers, both directions, merged); ``inbound``: the endpoints
    ``uplink_in`` routes to (sources of egress policies, destinations of ingress ones,
    floating-IP holders), ``inbound6`` those of IPv6 policies; ``forward[switch][tenant]``:
    the port toward the uplink (0 at the uplink's switch); ``admit[switch][port]``: the
    tenants whose transit VLAN a fabric port takes.
    """

    ext: ExternalInfo
    users: list[str] = field(default_factory=list)
    tid: dict[str, int] = field(default_factory=dict)
    vlan: dict[str, int] = field(default_factory=dict)
    routes: dict[str, list[IPv4Network | IPv6Network]] = field(default_factory=dict)
    inbound: dict[str, list[EndpointInfo]] = field(default_factory=dict)
    #: per user, the endpoints that exchange IPv6 with the outside (their own global
    #: addresses, routed: :func:`~segctl.topology.outside.public_source6`)
    inbound6: dict[str, list[EndpointInfo]] = field(default_factory=dict)
    #: the endpoints an IPv6 ingress policy opens to the outside (their connections are
    #: committed in the NAT zone as they come in, so the replies going out are tracked)
    opened6: set[tuple[str, str]] = field(default_factory=set)
    floating: dict[str, list[EndpointInfo]] = field(default_factory=dict)
    snat: dict[str, int] = field(default_factory=dict)
    forward: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    admit: dict[str, dict[int, set[str]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(set))
    )

    def transit(self, tenant: str) -> int:
        """The metadata of ``tenant``'s transit context."""
        return metadata_value(self.tid[tenant], transit_segment(self.ext))

    @property
    def uplink_context(self) -> int:
        return metadata_value(0, transit_segment(self.ext))

    def cookie(self, stage: int, tenant: str | None = None) -> int:
        return make_cookie(stage, Kind.EXTERNAL, self.tid[tenant] if tenant else 0, self.ext.index)


def plan_externals(network: Network, paths: FabricPaths) -> list[ExternalPlan]:
    """One :class:`ExternalPlan` per external network (transit VLANs are taken from the top
    of the VLAN range down, skipping the segments'), from the intent's external grants
    (:func:`~segctl.topology.outside.external_grants`, allow and deny alike)."""
    taken = {seg.vlan for seg in network.segments}
    free = (v for v in range(4094, 1, -1) if v not in taken)
    tid = {t.name: t.id for t in network.tenants}
    grants = external_grants(network)
    plans = []
    for ext in network.externals:
        plan = ExternalPlan(ext, tid=tid)
        routes: dict[str, list[IPv4Network | IPv6Network]] = defaultdict(list)
        inbound: dict[str, dict[tuple[str, str], EndpointInfo]] = defaultdict(dict)
        inbound6: dict[str, dict[tuple[str, str], EndpointInfo]] = defaultdict(dict)
        for g in (g for g in grants if g.external == ext.name):
            routes[g.tenant] += g.outside
            if g.family == 6:
                routed = [ep for ep in g.endpoints if public_source6(network, ep, ext.name) is not None]
                inbound6[g.tenant].update((ep.key, ep) for ep in routed)
                if g.direction == "in":
                    plan.opened6.update(ep.key for ep in routed)
            else:
                inbound[g.tenant].update((ep.key, ep) for ep in g.endpoints)
        for ep in network.endpoints:
            if ep.floating_external == ext.name:
                plan.floating.setdefault(ep.tenant, []).append(ep)
                inbound[ep.tenant][ep.key] = ep
        plan.snat = {
            t.name: int(address) for t in network.tenants if (address := t.snat_address(ext.name)) is not None
        }
        plan.users = [
            t.name
            for t in network.tenants
            if {t.name} & (inbound.keys() | inbound6.keys() | plan.snat.keys())
        ]
        for user in plan.users:
            plan.vlan[user] = next(free)
            mine = routes.get(user, [])
            plan.routes[user] = [
                *collapse_addresses(p for p in mine if isinstance(p, IPv4Network)),
                *collapse_addresses(p for p in mine if isinstance(p, IPv6Network)),
            ]
            plan.inbound[user] = sorted(inbound.get(user, {}).values(), key=lambda e: e.key)
            plan.inbound6[user] = sorted(inbound6.get(user, {}).values(), key=lambda e: e.key)
        _plan_transit(plan, network, paths)
        plans.append(plan)
    return plans


def _plan_transit(plan: ExternalPlan, network: Network, paths: FabricPaths) -> None:
    """Forwarding of each user's transit context from its endpoints' switches to the uplink."""
    uplink = plan.ext.switch
    hops = paths.next_hops(uplink)
    for tenant in plan.users:
        plan.forward[uplink][tenant] = 0
        for start in sorted({ep.switch for ep in network.tenant_endpoints(tenant)}):
            node = start
            while node != uplink and node in hops and tenant not in plan.forward[node]:
                port = hops[node]
                plan.forward[node][tenant] = port
                peer, peer_port = paths.ports[node][port]
                plan.admit[peer][peer_port].add(tenant)
                node = peer


# ------------------------------------------------------------------ rules per stage


def external_classify(plans: list[ExternalPlan], switch: str) -> list[Rule]:
    """Table 0: the uplink port (IPv4 to the public range, the router's ARP requests for it)
    and the fabric ports that carry a transit VLAN."""
    t = CLASSIFY.id
    rules: list[Rule] = []
    for plan in plans:
        ext = plan.ext
        if ext.switch == switch:
            write = WriteMetadata(plan.uplink_context, META_WRITE_MASK)
            base = [("in_port", str(ext.port)), _UNTAGGED]
            rules.append(Rule.make(t, PRIO_ENDPOINT, plan.cookie(t), [*base, ("proto", "ip"),
                                   ("nw_dst", str(ext.cidr))], [write, GotoTable(NAT_IN.id)]))  # fmt: skip
            arp = [*base, ("proto", "arp"), ("arp_op", "1"), ("arp_tpa", str(ext.cidr))]
            rules.append(Rule.make(t, PRIO_ENDPOINT, plan.cookie(t), arp, [write, GotoTable(NAT_IN.id)]))
            for ep in (e for user in plan.users for e in plan.inbound6[user]):
                # IPv6 to an endpoint's own global address, and the router's solicitation for it
                to_ep = [*base, ("proto", "ipv6"), ("ipv6_dst", str(ep.ipv6))]
                ns = [*base, ("proto", "icmp6"), ("icmp_type", "135"), ("nd_target", str(ep.ipv6))]
                rules.append(
                    Rule.make(
                        t, PRIO_ENDPOINT, plan.cookie(t, ep.tenant), to_ep, [write, GotoTable(NAT_IN.id)]
                    )
                )
                rules.append(
                    Rule.make(t, PRIO_SPECIFIC, plan.cookie(t, ep.tenant), ns, [write, GotoTable(NAT_IN.id)])
                )
        for port, tenants in sorted(plan.admit.get(switch, {}).items()):
            for tenant in sorted(tenants, key=plan.tid.__getitem__):
                tag = ("vlan_tci", f"{0x1000 | plan.vlan[tenant]:#06x}/0x1fff")
                for proto in _families(plan, tenant):
                    match = [("in_port", str(port)), tag, ("proto", proto)]
                    write = WriteMetadata(plan.transit(tenant), META_WRITE_MASK)
                    rules.append(Rule.make(t, PRIO_ENDPOINT, plan.cookie(t, tenant), match,
                                           [PopVlan(), write, GotoTable(FORWARD.id)]))  # fmt: skip
    return rules


def _families(plan: ExternalPlan, tenant: str) -> tuple[str, ...]:
    """The protocols a user's transit context carries: IPv4, and IPv6 where it has IPv6
    policies with the outside."""
    return ("ip", "ipv6") if plan.inbound6.get(tenant) else ("ip",)


def external_routes(plans: list[ExternalPlan], tenants: list[str], gw_mac: dict[str, str]) -> list[Rule]:
    """Table 40: each local tenant's routes to its external networks, longest prefix first
    (below the host and provider routes, above the gateway's unknown-destination drop)."""
    t = ROUTE.id
    rules: list[Rule] = []
    for plan in plans:
        for tenant in (u for u in plan.users if u in tenants):
            tenant_only = ("metadata", f"{plan.tid[tenant]:#x}/{0xFFF0_0FFF:#x}")  # tenant, origin 0
            actions: list[Action] = [
                SetField("eth_dst", mac_int(plan.ext.router_mac)),
                DecTtl(),
                WriteMetadata(plan.transit(tenant), META_WRITE_MASK),
                GotoTable(FORWARD.id),
            ]
            for prefix in plan.routes[tenant]:
                family = ("proto", "ipv6"), ("ipv6_dst", str(prefix))
                if prefix.version == 4:
                    family = ("proto", "ip"), ("nw_dst", str(prefix))
                match = [tenant_only, ("dl_dst", gw_mac[tenant]), *family]
                priority = PRIO_EXTERNAL_ROUTE + prefix.prefixlen
                rules.append(Rule.make(t, priority, plan.cookie(t, tenant), match, actions))
    return rules


def external_forward(plans: list[ExternalPlan], switch: str, network: Network) -> list[Rule]:
    """Table 50: a transit context toward its uplink: tagged out of the next hop's port, or
    (at the uplink's switch) on to ``nat_out``; and what comes from the outside (source MAC
    the external network's) for a local endpoint: its context gets ORIGIN :data:`OUTSIDE`,
    so only the tenant's ingress policies (that domain) may take it, never the
    intra-segment allow or a policy between endpoints, whatever source address it claims."""
    t = FORWARD.id
    rules: list[Rule] = []
    for plan in plans:
        for tenant in plan.users:
            marked = [(e, "ip") for e in plan.inbound[tenant]] + [(e, "ipv6") for e in plan.inbound6[tenant]]
            for ep, proto in ((e, p) for e, p in marked if e.switch == switch):
                seg = network.segment(ep.tenant, ep.segment).index
                tid = plan.tid[tenant]
                match = [("metadata", f"{metadata_value(tid, seg):#x}/{_CTX:#x}"), ("dl_dst", ep.mac),
                         ("dl_src", plan.ext.mac), ("proto", proto)]  # fmt: skip
                write = WriteMetadata(metadata_value(tid, seg, OUTSIDE), META_WRITE_MASK)
                rules.append(
                    Rule.make(t, PRIO_SPECIFIC, plan.cookie(t, tenant), match, [write, GotoTable(CT_DST.id)])
                )
    for plan in plans:
        for tenant, port in sorted(plan.forward.get(switch, {}).items(), key=lambda kv: plan.tid[kv[0]]):
            match = [("metadata", f"{plan.transit(tenant):#x}/{_CTX:#x}"), ("dl_dst", plan.ext.router_mac)]
            out: list[Action] = (
                [PushVlan(), SetField("vlan_vid", plan.vlan[tenant]), Output(port)]
                if port
                else [GotoTable(NAT_OUT.id)]
            )
            for proto in _families(plan, tenant):
                rules.append(
                    Rule.make(t, PRIO_ENDPOINT, plan.cookie(t, tenant), [*match, ("proto", proto)], out)
                )
    return rules


#: The cookie of an endpoint's own rule in a stage (:meth:`CompilePlan.ep_cookie`).
EpCookie = Callable[[int, EndpointInfo], int]


def nat_out_stage(
    plans: list[ExternalPlan], switch: str, network: Network, ep_cookie: EpCookie
) -> list[Rule]:
    """Table 52 (the uplink's switch): per endpoint that may leave, its source becomes its
    floating IP, else its tenant's SNAT address, committed in the tenant's NAT zone (a reply
    of a connection the outside opened to a floating IP is translated back by the same
    lookup). One rule per endpoint, never a tenant-wide one: each translation's commit then
    names the one source it serves (what the verifier's NAT model reads, docs/verification.md §2a)."""
    t = NAT_OUT.id
    rules = _table_miss(t, plans, switch)
    for plan in (p for p in plans if p.ext.switch == switch):
        for tenant in plan.users:
            ctx = ("metadata", f"{plan.transit(tenant):#x}/{_CTX:#x}")
            zone = nat_zone(plan.tid[tenant])
            for ep in plan.inbound[tenant]:
                public = public_source(network, ep, plan.ext.name)
                if public is None:
                    continue  # no floating IP and no SNAT address: it never leaves
                nat = Ct(True, zone, UPLINK_OUT.id, _single("src", int(public)))
                match = [ctx, ("proto", "ip"), ("nw_src", str(ep.ip))]
                rules.append(Rule.make(t, PRIO_ENDPOINT, ep_cookie(t, ep), match, [nat]))
            for ep in plan.inbound6[tenant]:  # IPv6 leaves from its own address: tracked only
                match = [ctx, ("proto", "ipv6"), ("ipv6_src", str(ep.ipv6))]
                rules.append(
                    Rule.make(t, PRIO_ENDPOINT, ep_cookie(t, ep), match, [Ct(True, zone, UPLINK_OUT.id)])
                )
    return rules


def uplink_out_stage(plans: list[ExternalPlan], switch: str) -> list[Rule]:
    """Table 53: translated packets (a public source, a tracked connection) leave to the
    router; anything else drops (the uplink's own egress guard)."""
    t = UPLINK_OUT.id
    rules = _table_miss(t, plans, switch)
    for plan in (p for p in plans if p.ext.switch == switch):
        ext = plan.ext
        seg = transit_segment(ext) << META_SEGMENT_SHIFT
        match = [("metadata", f"{seg:#x}/{META_SEGMENT_MASK:#x}"), ("ct_state", "+trk-inv"), ("proto", "ip"),
                 ("nw_src", str(ext.cidr))]  # fmt: skip
        out: list[Action] = [
            SetField("eth_src", mac_int(ext.mac)),
            SetField("eth_dst", mac_int(ext.router_mac)),
            Output(ext.port),
        ]
        rules.append(Rule.make(t, PRIO_ENDPOINT, plan.cookie(t), match, out))
        for ep in (e for user in plan.users for e in plan.inbound6[user]):  # its own global address
            v6 = [match[0], match[1], ("proto", "ipv6"), ("ipv6_src", str(ep.ipv6))]
            rules.append(Rule.make(t, PRIO_ENDPOINT, plan.cookie(t, ep.tenant), v6, out))
    return rules


def nat_in_stage(plans: list[ExternalPlan], switch: str, ep_cookie: EpCookie) -> list[Rule]:
    """Table 46 (the uplink's switch): the router's ARP for a public address answered; a
    floating IP translated to its endpoint (DNAT committed in the tenant's NAT zone); an
    SNAT address looked up with ``nat`` (a reply is translated back, nothing else is)."""
    t = NAT_IN.id
    rules = _table_miss(t, plans, switch)
    for plan in (p for p in plans if p.ext.switch == switch):
        ext = plan.ext
        ctx = ("metadata", f"{plan.uplink_context:#x}/{_CTX:#x}")
        if any(plan.inbound6.values()):
            # neighbour discovery from the outside never enters the fabric (it would pass the
            # endpoints' conntrack and policies, as ND inside a segment does): the fabric
            # answers the router's solicitations itself (the responders above these)
            for nd_type in _NEIGHBOUR_DISCOVERY:
                nd = [ctx, ("proto", "icmp6"), ("icmp_type", str(nd_type))]
                rules.append(Rule.make(t, PRIO_SPECIFIC, plan.cookie(t), nd, [Drop()]))
        for tenant in plan.users:
            zone = nat_zone(plan.tid[tenant])
            snat = _snat(plan, tenant)
            public: list[tuple[int, int]] = []
            if snat is not None:
                lookup = Ct(False, zone, UPLINK_IN.id, Nat())
                rules.append(Rule.make(t, PRIO_GUARD, plan.cookie(t, tenant), [ctx, ("proto", "ip"),
                                       ("nw_dst", _text(snat))], [lookup]))  # fmt: skip
                public.append((snat, plan.cookie(t, tenant)))
            for ep in plan.floating.get(tenant, []):
                assert ep.floating_ip is not None
                dnat = Ct(True, zone, UPLINK_IN.id, _single("dst", int(ep.ip)))
                rules.append(Rule.make(t, PRIO_ENDPOINT, ep_cookie(t, ep), [ctx, ("proto", "ip"),
                                       ("nw_dst", str(ep.floating_ip))], [dnat]))  # fmt: skip
                public.append((int(ep.floating_ip), ep_cookie(t, ep)))
            for address, cookie in public:
                rules.append(Rule.make(t, PRIO_RESPONDER, cookie, *_arp_reply(ext, ctx, address)))
            for ep in plan.inbound6[tenant]:
                assert ep.ipv6 is not None
                # a connection the outside opens is committed here (its reply's lookup on the
                # way out must find it); an endpoint only reached by replies just looks up
                lookup = Ct(ep.key in plan.opened6, zone, UPLINK_IN.id)
                rules.append(Rule.make(t, PRIO_ENDPOINT, ep_cookie(t, ep), [ctx, ("proto", "ipv6"),
                                       ("ipv6_dst", str(ep.ipv6))], [lookup]))  # fmt: skip
                rules.append(
                    Rule.make(t, PRIO_RESPONDER, ep_cookie(t, ep), *_neighbour_advert(ext, ctx, int(ep.ipv6)))
                )
    return rules


def uplink_in_stage(
    plans: list[ExternalPlan], switch: str, network: Network, ep_cookie: EpCookie
) -> list[Rule]:
    """Table 47 (the uplink's switch): a packet whose destination is now a tenant's
    endpoint (found by the NAT zone: tenants share private addresses) is routed to that
    endpoint's context like the gateway routes (TTL, destination MAC), its source MAC the
    external network's: the endpoint's switch knows by it that the packet comes from the
    outside (:func:`external_forward`)."""
    t = UPLINK_IN.id
    rules = _table_miss(t, plans, switch)
    for plan in (p for p in plans if p.ext.switch == switch):
        ctx = ("metadata", f"{plan.uplink_context:#x}/{_CTX:#x}")
        for tenant in plan.users:
            info = network.tenant(tenant)
            zone = nat_zone(info.id)
            for ep in plan.inbound[tenant]:
                seg = network.segment(ep.tenant, ep.segment)
                match = [ctx, ("ct_zone", str(zone)), ("ct_state", "+trk-inv"), ("proto", "ip"),
                         ("nw_dst", str(ep.ip))]  # fmt: skip
                route: list[Action] = [
                    SetField("eth_src", mac_int(plan.ext.mac)),  # from the outside: see external_forward
                    SetField("eth_dst", mac_int(ep.mac)),
                    DecTtl(),
                    WriteMetadata(metadata_value(info.id, seg.index), META_WRITE_MASK),
                    GotoTable(FORWARD.id),
                ]
                rules.append(Rule.make(t, PRIO_ENDPOINT, ep_cookie(t, ep), match, route))
            for ep in plan.inbound6[tenant]:
                seg = network.segment(ep.tenant, ep.segment)
                match = [ctx, ("ct_zone", str(zone)), ("ct_state", "+trk-inv"), ("proto", "ipv6"),
                         ("ipv6_dst", str(ep.ipv6))]  # fmt: skip
                route = [
                    SetField("eth_src", mac_int(plan.ext.mac)),
                    SetField("eth_dst", mac_int(ep.mac)),
                    DecTtl(),
                    WriteMetadata(metadata_value(info.id, seg.index), META_WRITE_MASK),
                    GotoTable(FORWARD.id),
                ]
                rules.append(Rule.make(t, PRIO_ENDPOINT, ep_cookie(t, ep), match, route))
                advert = [ctx, ("proto", "icmp6"), ("icmp_type", "136"), ("nd_target", str(ep.ipv6))]
                tll: list[Action] = [SetField("nd_tll", mac_int(plan.ext.mac)), Output(IN_PORT)]
                rules.append(Rule.make(t, PRIO_RESPONDER, ep_cookie(t, ep), advert, tll))
    return rules


# ------------------------------------------------------------------ helpers


def _table_miss(table: int, plans: list[ExternalPlan], switch: str) -> list[Rule]:
    """The explicit drop of an uplink table, on a switch that has an uplink (the tables are
    empty elsewhere, and a fabric without external networks compiles as it always did)."""
    if not any(p.ext.switch == switch for p in plans):
        return []
    return [Rule.make(table, PRIO_DEFAULT, make_cookie(table, Kind.PIPELINE, 0, 0), [], [Drop()])]


def _snat(plan: ExternalPlan, tenant: str) -> int | None:
    return plan.snat.get(tenant)


def _single(kind: str, address: int) -> Nat:
    return Nat(kind, 4, address, address)


def _text(address: int) -> str:
    return f"{address >> 24}.{address >> 16 & 0xFF}.{address >> 8 & 0xFF}.{address & 0xFF}"


#: The all-nodes group (RFC 4291) and its MAC: where the fabric's neighbour advertisements go.
_ALL_NODES, _ALL_NODES_MAC = 0xFF02 << 112 | 1, "33:33:00:00:00:01"
#: ICMPv6 router solicitation/advertisement, neighbour solicitation/advertisement, redirect.
_NEIGHBOUR_DISCOVERY = (133, 134, 135, 136, 137)
#: Override only: an unsolicited-form advertisement (to a group, solicited must be 0).
_NA_OVERRIDE = 0x20000000


def _neighbour_advert(
    ext: ExternalInfo, ctx: tuple[str, str], address: int
) -> tuple[list[tuple[str, str]], list[Action]]:  # fmt: skip
    """The router's solicitation for an endpoint's global ``address`` turned into the fabric's
    advertisement of it (first stage; :func:`uplink_in_stage` writes the link-layer address
    and sends it back out). It goes to all nodes with override set and solicited clear: the
    solicitation's source is not known to a rule (no field copy here), and a node takes such
    an advertisement for an incomplete entry (RFC 4861 7.2.5)."""
    match = [ctx, ("proto", "icmp6"), ("icmp_type", "135"), ("dl_src", ext.router_mac),
             ("nd_target", str(IPv6Address(address)))]  # fmt: skip
    actions: list[Action] = [
        SetField("eth_dst", mac_int(_ALL_NODES_MAC)),
        SetField("eth_src", mac_int(ext.mac)),
        SetField("ipv6_src", address),
        SetField("ipv6_dst", _ALL_NODES),
        SetField("icmpv6_type", 136),
        SetField("nd_reserved", _NA_OVERRIDE),
        SetField("nd_options_type", ND_OPTION_TLL),
        GotoTable(UPLINK_IN.id),
    ]
    return match, actions


def _arp_reply(
    ext: ExternalInfo, ctx: tuple[str, str], address: int
) -> tuple[list[tuple[str, str]], list[Action]]:
    """The router's request for ``address`` (from its MAC) rewritten into our reply, sent back
    out of the uplink."""
    # Any sender address: a router asks from the address of the packet it answers (Linux's
    # arp_announce=0), which may be any of its own; the reply goes to its IP on the link.
    match = [ctx, ("proto", "arp"), ("arp_op", "1"), ("arp_sha", ext.router_mac), ("arp_tpa", _text(address))]
    ours = mac_int(ext.mac)
    actions: list[Action] = [
        SetField("eth_dst", mac_int(ext.router_mac)),
        SetField("eth_src", ours),
        SetField("arp_op", 2),
        SetField("arp_sha", ours),
        SetField("arp_spa", address),
        SetField("arp_tha", mac_int(ext.router_mac)),
        SetField("arp_tpa", int(ext.router_ip)),
        Output(IN_PORT),
    ]
    return match, actions
