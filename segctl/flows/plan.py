"""What one compilation knows before it writes a rule (:class:`CompilePlan`), and the match
pieces every stage shares.

Forwarding works per *context* ``(tenant, segment)``: the context of a frame is set by
its edge port (spoof guard) or by its fabric VLAN, and changes only when the
distributed gateway routes it. For each context the plan knows its destinations
(the segment's endpoints and the shared-service providers its endpoints consume) and
the switches that may send into it; the shortest-path next hops toward each
destination (planned on the networkx topology model, :class:`~segctl.topology.model.FabricPaths`)
give the fabric output ports, and the ingress ends of those hops are
exactly the fabric ports that admit the context's VLAN.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from segctl.flows.external import plan_externals
from segctl.flows.guardrails import ordered_grants
from segctl.flows.meters import MeterSpec
from segctl.flows.pipeline import (
    CONTROLLER_METER,
    FORWARD,
    META_ORIGIN_MASK,
    META_SEGMENT_MASK,
    META_TENANT_MASK,
    META_WRITE_MASK,
    metadata_value,
)
from segctl.flows.policy import Grant, GrantCache
from segctl.flows.rules import Rule
from segctl.openflow.cookies import Kind, make_cookie
from segctl.openflow.ofctl import (
    Action,
    DecTtl,
    GotoTable,
    SetField,
    WriteMetadata,
    mac_int,
)
from segctl.topology.model import FabricPaths, build_graph
from segctl.topology.network import EndpointInfo, Network, SegmentInfo

__all__ = [
    "CTX_MASK",
    "LINK_LOCAL",
    "SEG_MASK",
    "TENANT_ORIGIN_MASK",
    "UNTAGGED",
    "CompilePlan",
    "Ctx",
    "by_ip",
    "meta_match",
    "route_actions",
]

#: A frame without a VLAN tag (what an endpoint port accepts).
UNTAGGED = ("vlan_tci", "0x0000/0x1fff")
#: Metadata bits of a frame's full context: tenant, segment, origin tenant.
CTX_MASK = META_TENANT_MASK | META_SEGMENT_MASK | META_ORIGIN_MASK
#: Metadata bits of tenant and segment.
SEG_MASK = META_TENANT_MASK | META_SEGMENT_MASK
#: Metadata bits of tenant and origin tenant (a tenant's own frames, not a consumer's).
TENANT_ORIGIN_MASK = META_TENANT_MASK | META_ORIGIN_MASK
#: Link-local unicast addresses (RFC 4291): a router never forwards them.
LINK_LOCAL = "fe80::/10"
#: A forwarding context: (tenant, segment).
Ctx = tuple[str, str]


def meta_match(value: int, mask: int) -> tuple[str, str]:
    """A ``metadata=value/mask`` match field."""
    return ("metadata", f"{value:#x}/{mask:#x}")


class CompilePlan:
    """The lookups of one compilation, shared by every stage and switch: tenant ids and
    gateway MACs, the grants (and which switches need each), the contexts' destinations and
    forwarding entries per switch, and rules memoized where every switch gets the same."""

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
        self.memo: dict[tuple[object, ...], list[Rule]] = {}
        self._ip: dict[tuple[str, str], str] = {ep.key: str(ep.ip) for ep in network.endpoints}
        self.has_ipv6 = {(ep.tenant, ep.segment) for ep in network.endpoints if ep.ipv6 is not None}
        self.v6_tenants = {tenant for tenant, _ in self.has_ipv6}
        # segments whose IPv6 the gateway routes (a gateway6 and IPv6 endpoints), per tenant
        self.routed6: dict[str, list[SegmentInfo]] = defaultdict(list)
        for seg in network.segments:
            if seg.gateway6 is not None and seg.key in self.has_ipv6:
                self.routed6[seg.tenant].append(seg)
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
        self.externals = plan_externals(network, self.paths)
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
        for ext in self.externals:  # what comes in from an uplink is routed there to its endpoint
            for eps in ext.inbound.values():
                for ep in eps:
                    senders[(ep.tenant, ep.segment)].add(ext.ext.switch)
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


def route_actions(gw_mac: str, dst: EndpointInfo, meta: int) -> list[Action]:
    """What the gateway does routing to ``dst``: MACs rewritten, TTL decremented, ``dst``'s
    context written, on to forwarding."""
    return [
        SetField("eth_src", mac_int(gw_mac)),
        SetField("eth_dst", mac_int(dst.mac)),
        DecTtl(),
        WriteMetadata(meta, META_WRITE_MASK),
        GotoTable(FORWARD.id),
    ]


def by_ip(eps: Iterable[EndpointInfo], tid: dict[str, int], family: int = 4) -> dict[str, list[EndpointInfo]]:
    """``eps`` by IPv4 address (text), or (``family`` 6) by global IPv6 address (those without
    one left out), each list in tenant id then name order."""
    out: dict[str, list[EndpointInfo]] = defaultdict(list)
    for ep in eps:
        address = ep.ip if family == 4 else ep.ipv6
        if address is not None:
            out[str(address)].append(ep)
    return {ip: sorted(v, key=lambda e: (tid[e.tenant], e.name)) for ip, v in out.items()}
