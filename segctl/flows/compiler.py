"""The compiler: a resolved :class:`~segctl.topology.network.Network` → rules per switch.

Pure (no I/O) and deterministic: the same network gives byte-identical output. The
pipeline it targets is :mod:`segctl.flows.pipeline` (documented in ``docs/pipeline.md``).

Forwarding works per *context* ``(tenant, segment)``: the context of a frame is set by
its edge port (spoof guard) or by its fabric VLAN, and changes only when the
distributed gateway routes it. For each context the compiler knows its destinations
(the segment's endpoints and the shared-service providers its endpoints consume) and
the switches that may send into it; the shortest-path next hops toward each
destination (planned on the networkx topology model, :class:`~segctl.topology.model.FabricPaths`)
give the fabric output ports, and the ingress ends of those hops are
exactly the fabric ports that admit the context's VLAN.

>>> from segctl.topology.network import load_network
>>> programs = compile_network(load_network("examples/two-tenants.yaml"))  # doctest: +SKIP
>>> sorted(programs)  # doctest: +SKIP
['s1']
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from segctl.errors import CompileError
from segctl.flows.conjunctions import check_conjunctions
from segctl.flows.guardrails import ordered_grants
from segctl.flows.meters import MeterSpec, endpoint_meter
from segctl.flows.pipeline import (
    ARP,
    CLASSIFY,
    CONTROLLER_METER,
    CT_DST,
    CT_SRC,
    EGRESS,
    FORWARD,
    LOG_MAX_LEN,
    META_ORIGIN_MASK,
    META_SEGMENT_MASK,
    META_TENANT_MASK,
    META_WRITE_MASK,
    POLICY_DST,
    POLICY_SRC,
    PRIO_CT_ESTABLISHED,
    PRIO_CT_INVALID,
    PRIO_DEFAULT,
    PRIO_DENY_SPECIFIC,
    PRIO_ENDPOINT,
    PRIO_GUARD,
    PRIO_INTRA_SEGMENT,
    PRIO_PASS,
    PRIO_RESPONDER,
    PRIO_SPECIFIC,
    ROUTE,
    SHARED_REPLY,
    metadata_value,
)
from segctl.flows.policy import Grant, GrantCache, grant_rules
from segctl.flows.rules import Rule, rules_text
from segctl.openflow.cookies import Kind, make_cookie
from segctl.openflow.ofctl import (
    IN_PORT,
    Action,
    Conjunction,
    Controller,
    Ct,
    DecTtl,
    Drop,
    GotoTable,
    Meter,
    Output,
    PopVlan,
    PushVlan,
    SetField,
    WriteMetadata,
    mac_int,
)
from segctl.topology.analysis import NEIGHBOUR_DISCOVERY, ROUTER_ONLY_ICMPV6
from segctl.topology.model import FabricPaths, build_graph
from segctl.topology.network import EndpointInfo, Network, SegmentInfo

#: The solicited-node multicast prefix (RFC 4291): where a neighbour solicitation goes.
SOLICITED_NODES = "ff02::1:ff00:0/104"

__all__ = ["SwitchProgram", "compile_network"]

_UNTAGGED = ("vlan_tci", "0x0000/0x1fff")
_CTX_MASK = META_TENANT_MASK | META_SEGMENT_MASK | META_ORIGIN_MASK
_SEG_MASK = META_TENANT_MASK | META_SEGMENT_MASK
_TENANT_ORIGIN = META_TENANT_MASK | META_ORIGIN_MASK
Ctx = tuple[str, str]


@dataclass(frozen=True)
class SwitchProgram:
    """Everything one switch gets: its rules (sorted) and meters."""

    switch: str
    dpid: int
    rules: tuple[Rule, ...]
    meters: tuple[MeterSpec, ...]

    def flows_text(self) -> str:
        """The ``ovs-ofctl add-flows`` file of this switch."""
        return rules_text(self.rules)

    def meters_text(self) -> str:
        """One ``ovs-ofctl add-meter`` argument per line (load before the flows)."""
        return "".join(m.to_ofctl() + "\n" for m in self.meters)


def _meta(value: int, mask: int) -> tuple[str, str]:
    return ("metadata", f"{value:#x}/{mask:#x}")


def _sort_key(rule: Rule) -> tuple[int, int, str]:
    # (table, priority, match) is unique after _finish, so the actions never break a tie
    return (rule.table, -rule.priority, rule.match_text())


class _Compiler:
    """Holds the lookups of one compilation; :meth:`switch` builds one switch's rules."""

    def __init__(self, network: Network) -> None:
        self.net = network
        self.tid = {t.name: t.id for t in network.tenants}
        self.gw_mac = {t.name: t.gateway_mac for t in network.tenants}
        self.ep_index = {
            (t.name, ep.name): i for t in network.intent.tenants for i, ep in enumerate(t.endpoints)
        }
        # paths are planned on the topology model, through one view derived from its graph
        self.paths = FabricPaths(build_graph(network))
        # fabric[switch][port] = (peer switch, peer port): plain data, no graph walks per switch
        self.fabric = self.paths.ports
        # rules that are the same on every switch that needs them, built once (keyed by stage + object)
        self._memo: dict[tuple[object, ...], list[Rule]] = {}
        self._ip: dict[tuple[str, str], str] = {ep.key: str(ep.ip) for ep in network.endpoints}
        self.has_ipv6 = {(ep.tenant, ep.segment) for ep in network.endpoints if ep.ipv6 is not None}
        self.v6_tenants = {tenant for tenant, _ in self.has_ipv6}
        self.tenant_segments: dict[str, list[SegmentInfo]] = defaultdict(list)
        for seg in network.segments:
            self.tenant_segments[seg.tenant].append(seg)
        self.grants = ordered_grants(network)
        self.grant_cache = GrantCache()
        logging = network.intent.logging
        self.log_default_deny = logging.default_deny
        # one controller meter per switch caps what logging sends, whatever is logged there
        self.log_meter = (
            MeterSpec(CONTROLLER_METER, "pktps", logging.pps, logging.burst)
            if logging.default_deny or any(g.log for g in self.grants)
            else None
        )
        # the grants with a local source or destination on each switch (the others emit nothing there)
        self.grants_at: dict[str, list[Grant]] = defaultdict(list)
        for grant in self.grants:
            for sw in sorted({ep.switch for ep in (*grant.sources, *grant.destinations)}):
                self.grants_at[sw].append(grant)
        for seg in network.segments:
            metadata_value(self.tid[seg.tenant], seg.index)  # range check, raises CompileError
        self._plan_contexts()

    # ---------------------------------------------------------------- helpers
    def ip(self, ep: EndpointInfo) -> str:
        """The endpoint's IPv4 address as text (formatted once per compile)."""
        return self._ip[ep.key]

    def seg(self, ep: EndpointInfo) -> SegmentInfo:
        return self.net.segment(ep.tenant, ep.segment)

    def ctx_value(self, ctx: Ctx, origin: int = 0) -> int:
        return metadata_value(self.tid[ctx[0]], self.net.segment(*ctx).index, origin)

    def ep_cookie(self, stage: int, ep: EndpointInfo) -> int:
        return make_cookie(stage, Kind.ENDPOINT, self.tid[ep.tenant], self.ep_index[ep.key])

    def seg_cookie(self, stage: int, seg: SegmentInfo) -> int:
        return make_cookie(stage, Kind.SEGMENT, self.tid[seg.tenant], seg.index)

    def tenant_cookie(self, stage: int, tenant: str) -> int:
        return make_cookie(stage, Kind.TENANT, self.tid[tenant], 0)

    def hops(self, destination: str) -> dict[str, int]:
        """Next-hop port toward ``destination`` for every switch that reaches it: the
        topology model's :meth:`~segctl.topology.model.FabricPaths.next_hops` (cached)."""
        return self.paths.next_hops(destination)

    # ---------------------------------------------------------------- contexts
    def _plan_contexts(self) -> None:
        """Destinations per context, forwarding entries per switch, VLANs per fabric port."""
        net = self.net
        # provider endpoints consumed by each consumer context, with the shared service index
        self.shared_dst: dict[Ctx, dict[tuple[str, str], EndpointInfo]] = defaultdict(dict)
        # provider endpoint -> consumer endpoints of its services
        self.consumers_of: dict[tuple[str, str], dict[tuple[str, str], EndpointInfo]] = defaultdict(dict)
        # consumer endpoint -> the provider endpoints it may reach; provider -> its route conj_id
        # (1.. in table 40 only: the policy conjunction ids of tables 30/70 never meet these)
        self.consumes: dict[tuple[str, str], dict[tuple[str, str], EndpointInfo]] = defaultdict(dict)
        self.provider_conj: dict[tuple[str, str], int] = {}
        for svc in net.shared_services:
            providers = net.shared_providers(svc)
            for z in providers:
                self.provider_conj.setdefault(z.key, len(self.provider_conj) + 1)
            for c in net.shared_consumers(svc):
                for z in providers:
                    self.shared_dst[(c.tenant, c.segment)][z.key] = z
                    self.consumers_of[z.key][c.key] = c
                    self.consumes[c.key][z.key] = z
        # the switches that may send into each context
        senders: dict[Ctx, set[str]] = defaultdict(set)
        tenant_switches: dict[str, set[str]] = defaultdict(set)
        for ep in net.endpoints:
            tenant_switches[ep.tenant].add(ep.switch)
        for seg in net.segments:
            senders[seg.key] |= tenant_switches[seg.tenant]
        for ctx, consumed in self.shared_dst.items():
            senders[ctx] |= {z.switch for z in consumed.values()}
        # forward[switch][(ctx, dst key)] = output port (0 = local); vlans[switch][port] = contexts
        self.forward: dict[str, dict[tuple[Ctx, tuple[str, str]], int]] = defaultdict(dict)
        self.admit: dict[str, dict[int, set[Ctx]]] = defaultdict(lambda: defaultdict(set))
        for seg in net.segments:
            ctx = seg.key
            dsts = [*net.segment_endpoints(*ctx), *self.shared_dst.get(ctx, {}).values()]
            for dst in dsts:
                hops = self.hops(dst.switch)
                entry = (ctx, dst.key)
                self.forward[dst.switch][entry] = 0
                for src_switch in sorted(senders[ctx]):
                    node = src_switch
                    # the paths toward one destination form a tree: stop where it is installed
                    while node != dst.switch and node in hops and entry not in self.forward[node]:
                        port = hops[node]
                        self.forward[node][entry] = port
                        peer, peer_port = self.fabric[node][port]
                        self.admit[peer][peer_port].add(ctx)
                        node = peer

    # ---------------------------------------------------------------- stages
    def classify(self, switch: str, local: list[EndpointInfo], meters: dict[str, int]) -> list[Rule]:
        t = CLASSIFY.id
        rules = [Rule.make(t, PRIO_DEFAULT, make_cookie(t, Kind.PIPELINE, 0, 0), [], [Drop()])]
        for ep in local:
            cookie = self.ep_cookie(t, ep)
            pre: list[Action] = [Meter(meters[ep.name])] if ep.name in meters else []
            write = WriteMetadata(self.ctx_value((ep.tenant, ep.segment)), META_WRITE_MASK)
            base = [("in_port", str(ep.port)), _UNTAGGED, ("dl_src", ep.mac)]
            rules.append(
                Rule.make(t, PRIO_ENDPOINT, cookie, [*base, ("proto", "ip"), ("nw_src", str(ep.ip))],
                          [*pre, write, GotoTable(CT_SRC.id)])
            )  # fmt: skip
            arp = [*base, ("proto", "arp"), ("arp_spa", str(ep.ip)), ("arp_sha", ep.mac)]
            rules.append(Rule.make(t, PRIO_ENDPOINT, cookie, arp, [*pre, write, GotoTable(ARP.id)]))
            for source in ep.ipv6_sources:  # global, then link-local
                v6 = [*base, ("proto", "ipv6"), ("ipv6_src", str(source))]
                rules.append(Rule.make(t, PRIO_ENDPOINT, cookie, v6, [*pre, write, GotoTable(ARP.id)]))
            if ep.ipv6 is not None:
                # RA guard: whatever its addresses, a router-only ICMPv6 message from an
                # endpoint port is dropped before anything else reads it
                for icmp_type in ROUTER_ONLY_ICMPV6:
                    guard = [("in_port", str(ep.port)), ("proto", "icmp6"), ("icmp_type", str(icmp_type))]
                    rules.append(Rule.make(t, PRIO_SPECIFIC, cookie, guard, [Drop()]))
        for port, ctxs in sorted(self.admit.get(switch, {}).items()):
            for ctx in sorted(ctxs, key=lambda c: self.net.segment(*c).vlan):
                seg = self.net.segment(*ctx)
                cookie = make_cookie(t, Kind.FABRIC, self.tid[seg.tenant], port)
                write = WriteMetadata(self.ctx_value(ctx), META_WRITE_MASK)
                protos = ["ip", "arp", "ipv6"] if ctx in self.has_ipv6 else ["ip", "arp"]
                for proto in protos:
                    match = [("in_port", str(port)), ("vlan_tci", f"{0x1000 | seg.vlan:#06x}/0x1fff"),
                             ("proto", proto)]  # fmt: skip
                    rules.append(
                        Rule.make(t, PRIO_ENDPOINT, cookie, match, [PopVlan(), write, GotoTable(FORWARD.id)])
                    )
        return rules

    def arp(self, local: list[EndpointInfo]) -> list[Rule]:
        t = ARP.id
        rules = [Rule.make(t, PRIO_DEFAULT, make_cookie(t, Kind.PIPELINE, 0, 0), [], [Drop()])]
        segments: dict[Ctx, SegmentInfo] = {}
        for ep in local:
            seg = self.seg(ep)
            segments[seg.key] = seg
            if seg.gateway is None:
                continue
            gw_mac = self.gw_mac[ep.tenant]
            # the port's context too (table 0 wrote it): redundant for OVS, but a verifier
            # then reads one tenant's responders per context, not every port's
            match = [("in_port", str(ep.port)), _meta(self.ctx_value(seg.key), _CTX_MASK), ("proto", "arp"),
                     ("arp_op", "1"), ("arp_tpa", str(seg.gateway))]  # fmt: skip
            reply: list[Action] = [
                SetField("eth_dst", mac_int(ep.mac)),
                SetField("eth_src", mac_int(gw_mac)),
                SetField("arp_op", 2),
                SetField("arp_tha", mac_int(ep.mac)),
                SetField("arp_tpa", int(ep.ip)),
                SetField("arp_sha", mac_int(gw_mac)),
                SetField("arp_spa", int(seg.gateway)),
                GotoTable(EGRESS.id),
            ]
            rules.append(Rule.make(t, PRIO_SPECIFIC, self.seg_cookie(t, seg), match, reply))
        for _, seg in sorted(segments.items(), key=lambda kv: kv[1].vlan):
            rules += self._segment_arp(seg)
        if any(ep.ipv6 is not None for ep in local):
            # neighbour discovery never goes through conntrack (it would be invalid there):
            # for a peer it was made unicast above, any other drops; the rest of IPv6 goes
            # through conntrack and policy
            pipe = make_cookie(t, Kind.PIPELINE, 0, 0)
            for icmp_type in NEIGHBOUR_DISCOVERY:
                nd = [("proto", "icmp6"), ("icmp_type", str(icmp_type))]
                rules.append(Rule.make(t, PRIO_GUARD, pipe, nd, [Drop()]))
            rules.append(Rule.make(t, PRIO_PASS, pipe, [("proto", "ipv6")], [GotoTable(CT_SRC.id)]))
        return rules

    def _segment_arp(self, seg: SegmentInfo) -> list[Rule]:
        """Unicast ARP (and neighbour discovery) to each endpoint of the segment; the same on
        every switch (memoized)."""
        memo = self._memo.get(("arp", *seg.key))
        if memo is not None:
            return memo
        t, rules = ARP.id, []
        meta = _meta(self.ctx_value(seg.key), _CTX_MASK)
        for dst in self.net.segment_endpoints(*seg.key):
            cookie = self.ep_cookie(t, dst)
            unicast: list[Action] = [SetField("eth_dst", mac_int(dst.mac)), GotoTable(FORWARD.id)]
            rules.append(
                Rule.make(
                    t, PRIO_ENDPOINT, cookie, [meta, ("proto", "arp"), ("arp_tpa", self.ip(dst))], unicast
                )
            )
            for address in dst.ipv6_sources:
                ns = [meta, ("proto", "icmp6"), ("icmp_type", "135"), ("nd_target", str(address))]
                rules.append(Rule.make(t, PRIO_SPECIFIC, cookie, ns, unicast))
                na = [meta, ("proto", "icmp6"), ("icmp_type", "136"), ("ipv6_dst", str(address))]
                rules.append(Rule.make(t, PRIO_SPECIFIC, cookie, na, [GotoTable(FORWARD.id)]))
        self._memo[("arp", *seg.key)] = rules
        return rules

    def ct_stage(self, table: int, next_table: int, tenants: list[str]) -> list[Rule]:
        pipe = make_cookie(table, Kind.PIPELINE, 0, 0)
        rules = [Rule.make(table, PRIO_DEFAULT, pipe, [], [Drop()])]
        for tenant in tenants:
            tid = self.tid[tenant]
            for proto in ("ip", "ipv6") if tenant in self.v6_tenants else ("ip",):
                match = [_meta(tid, META_TENANT_MASK), ("proto", proto)]
                cookie = self.tenant_cookie(table, tenant)
                rules.append(Rule.make(table, PRIO_GUARD, cookie, match, [Ct(zone=tid, table=next_table)]))
        if table == CT_DST.id and any(tenant in self.v6_tenants for tenant in tenants):
            # neighbour discovery from a peer of the segment (table 10 made it unicast) is
            # delivered without conntrack, which would call it invalid
            for icmp_type in NEIGHBOUR_DISCOVERY:
                nd = [("proto", "icmp6"), ("icmp_type", str(icmp_type))]
                rules.append(Rule.make(table, PRIO_SPECIFIC, pipe, nd, [GotoTable(EGRESS.id)]))
        return rules

    def policy_stage(self, table: int, next_table: int, segments: list[SegmentInfo]) -> list[Rule]:
        pipe = make_cookie(table, Kind.PIPELINE, 0, 0)
        logged = table == POLICY_SRC.id and self.log_default_deny
        miss: list[Action] = [Controller(max_len=LOG_MAX_LEN)] if logged else [Drop()]
        rules = [Rule.make(table, PRIO_DEFAULT, pipe, [], miss)]
        for proto in ("ip", "ipv6") if self.v6_tenants else ("ip",):
            state = [("proto", proto)]
            rules += [
                Rule.make(table, PRIO_CT_INVALID, pipe, [*state, ("ct_state", "+inv+trk")], [Drop()]),
                Rule.make(table, PRIO_CT_ESTABLISHED, pipe, [*state, ("ct_state", "+est+trk")],
                          [GotoTable(next_table)]),
                Rule.make(table, PRIO_CT_ESTABLISHED, pipe, [*state, ("ct_state", "+rel+trk")],
                          [GotoTable(next_table)]),
            ]  # fmt: skip
        for seg in segments:
            if seg.strict:
                continue
            tid = self.tid[seg.tenant]
            ctx = _meta(self.ctx_value(seg.key), _CTX_MASK)
            commit: list[Action] = [Ct(commit=True, zone=tid), GotoTable(next_table)]
            match = [ctx, ("proto", "ip"), ("nw_src", str(seg.cidr)), ("nw_dst", str(seg.cidr))]
            rules.append(Rule.make(table, PRIO_INTRA_SEGMENT, self.seg_cookie(table, seg), match, commit))
            if seg.key in self.has_ipv6 and seg.cidr6 is not None:
                # IPv6 to the segment's prefix or to a member's link-local address (fe80::/64 is
                # every segment's: the prefix would commit traffic for another segment's member)
                targets = [str(seg.cidr6)] + [
                    str(ep.ipv6_link_local)
                    for ep in self.net.segment_endpoints(*seg.key)
                    if ep.ipv6_link_local is not None
                ]
                for target in targets:
                    v6 = [ctx, ("proto", "ipv6"), ("ipv6_dst", target)]
                    rules.append(
                        Rule.make(table, PRIO_INTRA_SEGMENT, self.seg_cookie(table, seg), v6, commit)
                    )
        return rules

    def route(self, switch: str, local: list[EndpointInfo]) -> list[Rule]:
        t = ROUTE.id
        pipe = make_cookie(t, Kind.PIPELINE, 0, 0)
        rules = [
            Rule.make(t, PRIO_DEFAULT, pipe, [], [Drop()]),
            Rule.make(t, PRIO_PASS, pipe, [("proto", "ip")], [GotoTable(FORWARD.id)]),
        ]
        if self.v6_tenants:  # IPv6 is never routed (yet): it passes, and a gateway MAC has no entry in 50
            rules.append(Rule.make(t, PRIO_PASS, pipe, [("proto", "ipv6")], [GotoTable(FORWARD.id)]))
        tenants = sorted({ep.tenant for ep in local}, key=self.tid.__getitem__)
        local_segments = {(ep.tenant, ep.segment) for ep in local}
        for tenant in tenants:
            tid, gw = self.tid[tenant], self.gw_mac[tenant]
            cookie = self.tenant_cookie(t, tenant)
            to_gw = [_meta(tid, _TENANT_ORIGIN), ("dl_dst", gw), ("proto", "ip")]
            rules.append(Rule.make(t, PRIO_GUARD, cookie, to_gw, [Drop()]))  # unknown destination
            for ttl in ("0", "1"):
                rules.append(Rule.make(t, PRIO_DENY_SPECIFIC, cookie, [*to_gw, ("nw_ttl", ttl)], [Drop()]))
            mine = [seg for seg in self.tenant_segments[tenant] if seg.key in local_segments]
            for seg in mine:
                hairpin = [_meta(self.ctx_value(seg.key), _CTX_MASK), ("dl_dst", gw), ("proto", "ip"),
                           ("nw_dst", str(seg.cidr))]  # fmt: skip
                rules.append(Rule.make(t, PRIO_DENY_SPECIFIC, self.seg_cookie(t, seg), hairpin, [Drop()]))
            for seg in self.tenant_segments[tenant]:
                # Only local endpoints reach this table, and the hairpin drop above stops those of
                # ``seg`` itself: routes into a segment that holds every local endpoint carry nothing.
                if mine != [seg]:
                    rules += self._segment_routes(seg)
        rules += self.provider_routes(local)
        # replies of shared services from local providers: find the consumer's tenant by zone.
        # Only replies (est+rpl in the provider's zone, where its side committed them): a new
        # connection the provider may open to that consumer (it consumes a service of the
        # consumer's tenant) takes the consumer route below, not the consumer-zone lookup.
        for z in local:
            consumers = self.consumers_of.get(z.key)
            if not consumers:
                continue
            gw = self.gw_mac[z.tenant]
            for ip, candidates in sorted(_by_ip(consumers.values(), self.tid).items()):
                match = [_meta(self.tid[z.tenant], _TENANT_ORIGIN), ("dl_dst", gw), ("proto", "ip"),
                         ("nw_src", str(z.ip)), ("nw_dst", ip), ("ct_state", "+est+rpl+trk")]  # fmt: skip
                first = self.tid[candidates[0].tenant]
                rules.append(
                    Rule.make(t, PRIO_SPECIFIC, self.ep_cookie(t, z), match,
                              [Ct(zone=first, table=SHARED_REPLY.id)])
                )  # fmt: skip
        return rules

    def _segment_routes(self, seg: SegmentInfo) -> list[Rule]:
        """Host routes of the tenant's gateway into ``seg``: the same on every switch (memoized)."""
        memo = self._memo.get(("route", *seg.key))
        if memo is not None:
            return memo
        t, tid, gw = ROUTE.id, self.tid[seg.tenant], self.gw_mac[seg.tenant]
        to_gw = [_meta(tid, _TENANT_ORIGIN), ("dl_dst", gw), ("proto", "ip")]
        meta = self.ctx_value(seg.key)
        rules = [
            Rule.make(t, PRIO_ENDPOINT, self.ep_cookie(t, dst), [*to_gw, ("nw_dst", self.ip(dst))],
                      _route_actions(gw, dst, meta))
            for dst in self.net.segment_endpoints(*seg.key)
        ]  # fmt: skip
        self._memo[("route", *seg.key)] = rules
        return rules

    def provider_routes(self, local: list[EndpointInfo]) -> list[Rule]:
        """Host routes from local declared consumers to the providers they consume (table 40).

        Only a consumer's own context and address reach a provider, in any conntrack state
        (a non-consumer of a consumer tenant finds no route). Direct flows (consumer ×
        provider) when that is cheapest, else one conjunction per provider: clause 1 the
        consumer (context, gateway MAC, ``nw_src``; one flow carrying a clause for each
        provider it consumes), clause 2 the provider address, and a ``conj_id`` flow with
        the route actions. The conjunctions share one priority and are disjoint by clause 2.
        """
        t = ROUTE.id
        pairs = [(c, z) for c in local for z in self.consumes.get(c.key, {}).values()]
        if not pairs:
            return []

        def key(e: EndpointInfo) -> tuple[int, str]:
            return (self.tid[e.tenant], e.name)

        providers = sorted({z.key: z for _, z in pairs}.values(), key=key)
        consumers = sorted({c.key: c for c, _ in pairs}.values(), key=key)

        def source(c: EndpointInfo) -> list[tuple[str, str]]:
            return [_meta(self.ctx_value((c.tenant, c.segment)), _CTX_MASK),
                    ("dl_dst", self.gw_mac[c.tenant]), ("proto", "ip"), ("nw_src", str(c.ip))]  # fmt: skip

        def actions(z: EndpointInfo) -> list[Action]:
            return [SetField("eth_src", mac_int(self.gw_mac[z.tenant])), SetField("eth_dst", mac_int(z.mac)),
                    DecTtl(), GotoTable(FORWARD.id)]  # fmt: skip

        if len(pairs) <= len(consumers) + 2 * len(providers):
            return [
                Rule.make(t, PRIO_ENDPOINT, self.ep_cookie(t, z), [*source(c), ("nw_dst", str(z.ip))],
                          actions(z))
                for c, z in sorted(pairs, key=lambda p: (key(p[1]), key(p[0])))
            ]  # fmt: skip
        rules: list[Rule] = []
        for c in consumers:
            clauses = sorted(self.provider_conj[z] for z in self.consumes[c.key])
            rules.append(
                Rule.make(t, PRIO_ENDPOINT, self.ep_cookie(t, c), source(c),
                          [Conjunction(n, 1, 2) for n in clauses])
            )  # fmt: skip
        for z in providers:
            n, cookie = self.provider_conj[z.key], self.ep_cookie(t, z)
            rules.append(
                Rule.make(
                    t, PRIO_ENDPOINT, cookie, [("proto", "ip"), ("nw_dst", str(z.ip))], [Conjunction(n, 2, 2)]
                )
            )
            rules.append(
                Rule.make(t, PRIO_ENDPOINT, cookie, [("proto", "ip"), ("conj_id", str(n))], actions(z))
            )
        return rules

    def shared_reply(self, local: list[EndpointInfo]) -> list[Rule]:
        t = SHARED_REPLY.id
        rules = [Rule.make(t, PRIO_DEFAULT, make_cookie(t, Kind.PIPELINE, 0, 0), [], [Drop()])]
        for z in local:
            consumers = self.consumers_of.get(z.key)
            if not consumers:
                continue
            for ip, candidates in sorted(_by_ip(consumers.values(), self.tid).items()):
                for i, c in enumerate(candidates):
                    zone = self.tid[c.tenant]
                    base = [("proto", "ip"), ("ct_zone", str(zone)), ("nw_src", str(z.ip)), ("nw_dst", ip)]
                    actions = _route_actions(self.gw_mac[c.tenant], c, self.ctx_value((c.tenant, c.segment)))
                    est = [*base, ("ct_state", "+est+rpl+trk")]
                    rules.append(Rule.make(t, PRIO_SPECIFIC, self.ep_cookie(t, c), est, actions))
                    if i + 1 < len(candidates):
                        nxt = self.tid[candidates[i + 1].tenant]
                        rules.append(
                            Rule.make(t, PRIO_ENDPOINT, self.ep_cookie(t, c), base,
                                      [Ct(zone=nxt, table=SHARED_REPLY.id)])
                        )  # fmt: skip
        return rules

    def forward_stage(self, switch: str) -> list[Rule]:
        t = FORWARD.id
        rules = [Rule.make(t, PRIO_DEFAULT, make_cookie(t, Kind.PIPELINE, 0, 0), [], [Drop()])]
        for (ctx, dst_key), port in sorted(self.forward.get(switch, {}).items()):
            rules += self._forward_rules(ctx, dst_key, port)
        return rules

    def _forward_rules(self, ctx: Ctx, dst_key: tuple[str, str], port: int) -> list[Rule]:
        """Forwarding of context ``ctx`` to one destination out of ``port`` (0: local); memoized."""
        memo = self._memo.get(("fwd", ctx, dst_key, port))
        if memo is not None:
            return memo
        t = FORWARD.id
        dst = self.net.endpoint(*dst_key)
        cookie = self.ep_cookie(t, dst)
        match = [_meta(self.ctx_value(ctx), _CTX_MASK), ("dl_dst", dst.mac)]
        shared = dst.tenant != ctx[0]
        if shared:
            match.append(("dl_src", self.gw_mac[dst.tenant]))
        rules: list[Rule] = []
        if port:
            vlan = self.net.segment(*ctx).vlan
            out: list[Action] = [PushVlan(), SetField("vlan_vid", vlan), Output(port)]
            rules.append(Rule.make(t, PRIO_ENDPOINT, cookie, match, out))
        elif shared:
            origin = self.tid[ctx[0]]
            write = WriteMetadata(self.ctx_value((dst.tenant, dst.segment), origin), META_WRITE_MASK)
            rules.append(
                Rule.make(t, PRIO_ENDPOINT, cookie, [*match, ("proto", "ip")], [write, GotoTable(CT_DST.id)])
            )
        else:
            rules.append(
                Rule.make(t, PRIO_ENDPOINT, cookie, [*match, ("proto", "ip")], [GotoTable(CT_DST.id)])
            )
            rules.append(
                Rule.make(t, PRIO_ENDPOINT, cookie, [*match, ("proto", "arp")], [GotoTable(EGRESS.id)])
            )
            if dst.ipv6 is not None:
                rules.append(
                    Rule.make(t, PRIO_ENDPOINT, cookie, [*match, ("proto", "ipv6")], [GotoTable(CT_DST.id)])
                )
        self._memo[("fwd", ctx, dst_key, port)] = rules
        return rules

    def egress(self, local: list[EndpointInfo]) -> list[Rule]:
        t = EGRESS.id
        rules = [Rule.make(t, PRIO_DEFAULT, make_cookie(t, Kind.PIPELINE, 0, 0), [], [Drop()])]
        for ep in local:
            seg = self.seg(ep)
            cookie = self.ep_cookie(t, ep)
            meta = _meta(self.ctx_value(seg.key), _SEG_MASK)
            to_me = [meta, ("dl_dst", ep.mac)]
            out = [Output(ep.port)]
            if seg.gateway is not None:
                gw_mac = self.gw_mac[ep.tenant]
                reply = [("in_port", str(ep.port)), *to_me, ("proto", "arp"), ("arp_op", "2"),
                         ("arp_spa", str(seg.gateway)), ("arp_tpa", str(ep.ip)),
                         ("arp_sha", gw_mac)]  # fmt: skip
                rules.append(Rule.make(t, PRIO_RESPONDER, cookie, reply, [Output(IN_PORT)]))
            # with the endpoint's context: a frame for its MAC in another context is never
            # output to it anyway, and a verifier reads one context's drops, not every port's
            rules.append(
                Rule.make(t, PRIO_DENY_SPECIFIC, cookie, [("in_port", str(ep.port)), *to_me], [Drop()])
            )
            rules.append(
                Rule.make(t, PRIO_ENDPOINT, cookie, [*to_me, ("proto", "ip"), ("nw_dst", str(ep.ip))], out)
            )
            rules.append(
                Rule.make(t, PRIO_ENDPOINT, cookie, [*to_me, ("proto", "arp"), ("arp_tpa", str(ep.ip))], out)
            )
            for address in ep.ipv6_sources:
                v6 = [*to_me, ("proto", "ipv6"), ("ipv6_dst", str(address))]
                rules.append(Rule.make(t, PRIO_ENDPOINT, cookie, v6, out))
                # a solicitation to its solicited-node group (a unicast one, to the address, is
                # the rule above: the two never overlap, so the table's rules stay disjoint)
                ns = [*to_me, ("proto", "icmp6"), ("icmp_type", "135"), ("ipv6_dst", SOLICITED_NODES),
                      ("nd_target", str(address))]  # fmt: skip
                rules.append(Rule.make(t, PRIO_ENDPOINT, cookie, ns, out))
        return rules

    # ---------------------------------------------------------------- one switch
    def switch(self, name: str, dpid: int) -> SwitchProgram:
        local = [ep for ep in self.net.endpoints if ep.switch == name]
        meters: dict[str, int] = {}
        meter_specs: list[MeterSpec] = []
        for ep in local:
            spec = endpoint_meter(len(meter_specs) + 1, ep)
            if spec is not None:
                meters[ep.name] = spec.id
                meter_specs.append(spec)
        tenants = sorted({ep.tenant for ep in local}, key=self.tid.__getitem__)
        segments = sorted({self.seg(ep) for ep in local}, key=lambda s: s.vlan)
        dst_tenants = sorted(
            {dst_key[0] for (_, dst_key), port in self.forward.get(name, {}).items() if port == 0},
            key=self.tid.__getitem__,
        )
        rules = [
            *self.classify(name, local, meters),
            *self.arp(local),
            *self.ct_stage(CT_SRC.id, POLICY_SRC.id, tenants),
            *self.policy_stage(POLICY_SRC.id, ROUTE.id, segments),
            *self.route(name, local),
            *self.shared_reply(local),
            *self.forward_stage(name),
            *self.ct_stage(CT_DST.id, POLICY_DST.id, dst_tenants),
            *self.policy_stage(POLICY_DST.id, EGRESS.id, segments),
            *self.egress(local),
        ]
        for grant in self.grants_at.get(name, ()):
            rules += grant_rules(grant, name, lambda ep: self.seg(ep).index, cache=self.grant_cache)
        if self.log_meter is not None:
            meter_specs.append(self.log_meter)
        return SwitchProgram(name, dpid, _finish(name, rules), tuple(meter_specs))


def _finish(switch: str, rules: list[Rule]) -> tuple[Rule, ...]:
    """Deduplicate; merge conjunction clause flows that share (table, priority, match) into
    one flow with every ``conjunction()`` action (a set used by grants of one priority);
    refuse two other different rules with one (table, priority, match); sort."""
    by_key: dict[tuple[int, int, str], Rule] = {}  # the match text identifies the match (and hashes once)
    for rule in rules:
        key = (rule.table, rule.priority, rule.match_text())
        seen = by_key.setdefault(key, rule)
        if seen is rule or seen == rule:
            continue
        if _clause_only(seen) and _clause_only(rule):
            both = (*seen.actions, *rule.actions)
            clauses: list[Conjunction] = [a for a in both if isinstance(a, Conjunction)]
            merged = sorted(set(clauses), key=lambda a: (a.id, a.clause))
            by_key[key] = replace(seen, actions=tuple(merged))
        else:
            raise CompileError(
                f"switch {switch}: two rules share table {rule.table} priority {rule.priority} match "
                f"{rule.match_text()!r}: {seen.actions_text()} vs {rule.actions_text()}"
            )
    check_conjunctions(by_key.values(), switch=switch)
    return tuple(sorted(by_key.values(), key=_sort_key))


def _clause_only(rule: Rule) -> bool:
    return all(isinstance(a, Conjunction) for a in rule.actions)


def _route_actions(gw_mac: str, dst: EndpointInfo, meta: int) -> list[Action]:
    return [
        SetField("eth_src", mac_int(gw_mac)),
        SetField("eth_dst", mac_int(dst.mac)),
        DecTtl(),
        WriteMetadata(meta, META_WRITE_MASK),
        GotoTable(FORWARD.id),
    ]


def _by_ip(eps: Iterable[EndpointInfo], tid: dict[str, int]) -> dict[str, list[EndpointInfo]]:
    out: dict[str, list[EndpointInfo]] = defaultdict(list)
    for ep in eps:
        out[str(ep.ip)].append(ep)
    return {ip: sorted(v, key=lambda e: (tid[e.tenant], e.name)) for ip, v in out.items()}


def compile_network(network: Network) -> dict[str, SwitchProgram]:
    """Compile every switch of ``network``; keys in fabric (document) order.

    Raises :class:`~segctl.errors.CompileError` when no safe rule set exists
    (metadata overflow, too many policies, overlapping conjunctions).
    """
    compiler = _Compiler(network)
    return {sw.name: compiler.switch(sw.name, sw.dpid) for sw in network.switches}
