"""The stages at an endpoint's port: classification and spoof guard (table 0), ARP and
neighbour discovery (table 10), delivery and the egress guard (table 80).

Each stage is a function of the :class:`~segctl.flows.plan.CompilePlan` and the switch's
local endpoints that returns rules; :mod:`segctl.flows.compiler` assembles them.
"""

from __future__ import annotations

from segctl.flows.pipeline import (
    ARP,
    CLASSIFY,
    CT_SRC,
    EGRESS,
    FORWARD,
    META_WRITE_MASK,
    ND_OPTION_TLL,
    PRIO_DEFAULT,
    PRIO_DENY_SPECIFIC,
    PRIO_ENDPOINT,
    PRIO_GUARD,
    PRIO_PASS,
    PRIO_RESPONDER,
    PRIO_SPECIFIC,
)
from segctl.flows.plan import (
    CTX_MASK,
    SEG_MASK,
    UNTAGGED,
    CompilePlan,
    Ctx,
    meta_match,
)
from segctl.flows.rules import Rule
from segctl.openflow.cookies import Kind, make_cookie
from segctl.openflow.ofctl import (
    IN_PORT,
    Action,
    Drop,
    GotoTable,
    Meter,
    Output,
    PopVlan,
    SetField,
    WriteMetadata,
    mac_int,
)
from segctl.topology.analysis import NEIGHBOUR_DISCOVERY, ROUTER_ONLY_ICMPV6
from segctl.topology.network import EndpointInfo, SegmentInfo

#: The solicited-node multicast prefix (RFC 4291): where a neighbour solicitation goes.
SOLICITED_NODES = "ff02::1:ff00:0/104"

__all__ = ["NA_FLAGS", "ND_OPTION_TLL", "SOLICITED_NODES", "arp_stage", "classify_stage", "egress_stage"]


def classify_stage(
    plan: CompilePlan, switch: str, local: list[EndpointInfo], meters: dict[str, int]
) -> list[Rule]:
    t = CLASSIFY.id
    rules = [Rule.make(t, PRIO_DEFAULT, make_cookie(t, Kind.PIPELINE, 0, 0), [], [Drop()])]
    for ep in local:
        cookie = plan.ep_cookie(t, ep)
        pre: list[Action] = [Meter(meters[ep.name])] if ep.name in meters else []
        write = WriteMetadata(plan.ctx_value((ep.tenant, ep.segment)), META_WRITE_MASK)
        base = [("in_port", str(ep.port)), UNTAGGED, ("dl_src", ep.mac)]
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
    for port, ctxs in sorted(plan.admit.get(switch, {}).items()):
        for ctx in sorted(ctxs, key=lambda c: plan.net.segment(*c).vlan):
            seg = plan.net.segment(*ctx)
            cookie = make_cookie(t, Kind.FABRIC, plan.tid[seg.tenant], port)
            write = WriteMetadata(plan.ctx_value(ctx), META_WRITE_MASK)
            protos = ["ip", "arp", "ipv6"] if ctx in plan.has_ipv6 else ["ip", "arp"]
            for proto in protos:
                match = [("in_port", str(port)), ("vlan_tci", f"{0x1000 | seg.vlan:#06x}/0x1fff"),
                         ("proto", proto)]  # fmt: skip
                rules.append(
                    Rule.make(t, PRIO_ENDPOINT, cookie, match, [PopVlan(), write, GotoTable(FORWARD.id)])
                )
    return rules


def arp_stage(plan: CompilePlan, local: list[EndpointInfo]) -> list[Rule]:
    """Table 10: the gateway answers its local endpoints' ARP; ARP and neighbour discovery made
    unicast to segment peers; other ND drops, the rest of IPv6 goes to conntrack."""
    t = ARP.id
    rules = [Rule.make(t, PRIO_DEFAULT, make_cookie(t, Kind.PIPELINE, 0, 0), [], [Drop()])]
    segments: dict[Ctx, SegmentInfo] = {}
    for ep in local:
        seg = plan.seg(ep)
        segments[seg.key] = seg
        if seg.gateway is None:
            continue
        gw_mac = plan.gw_mac[ep.tenant]
        # the port's context too (table 0 wrote it): redundant for OVS, but a verifier
        # then reads one tenant's responders per context, not every port's
        match = [("in_port", str(ep.port)), meta_match(plan.ctx_value(seg.key), CTX_MASK), ("proto", "arp"),
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
        rules.append(Rule.make(t, PRIO_SPECIFIC, plan.seg_cookie(t, seg), match, reply))
    for ep in local:
        rules += _gateway_na(plan, ep)
    for _, seg in sorted(segments.items(), key=lambda kv: kv[1].vlan):
        rules += _segment_arp(plan, seg)
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


#: The flags of the gateway's neighbour advertisement: router, solicited, override (RFC 4861).
NA_FLAGS = 0xE0000000


def _gateway_na(plan: CompilePlan, ep: EndpointInfo) -> list[Rule]:
    """The gateway answers ``ep``'s neighbour solicitation for its segment's ``gateway6``:
    the solicitation, from either of ``ep``'s addresses, turned into the advertisement here,
    its target link-layer address (the gateway MAC) written by table 80, which sends it back
    out of ``ep``'s port. Two stages because OVS checks a ``set_field``'s prerequisites
    against the rule's match: ``nd_tll`` needs an advertisement (type 136), and writing
    ``nd_sll`` with the option type instead leaves the host's MAC in the option (the
    datapath writes a link-layer address by the option's type before it changes)."""
    gw6 = ep.ipv6_gateway
    if gw6 is None:
        return []
    seg = plan.seg(ep)
    gw_mac = mac_int(plan.gw_mac[ep.tenant])
    rules = []
    for source in ep.ipv6_sources:
        match = [("in_port", str(ep.port)), meta_match(plan.ctx_value(seg.key), CTX_MASK), ("proto", "icmp6"),
                 ("icmp_type", "135"), ("ipv6_src", str(source)), ("nd_target", str(gw6))]  # fmt: skip
        advert: list[Action] = [
            SetField("eth_dst", mac_int(ep.mac)),
            SetField("eth_src", gw_mac),
            SetField("ipv6_src", int(gw6)),
            SetField("ipv6_dst", int(source)),
            SetField("icmpv6_type", 136),
            SetField("nd_reserved", NA_FLAGS),
            SetField("nd_options_type", ND_OPTION_TLL),
            GotoTable(EGRESS.id),  # which writes nd_tll: see egress_stage
        ]
        rules.append(Rule.make(ARP.id, PRIO_SPECIFIC, plan.seg_cookie(ARP.id, seg), match, advert))
    return rules


def _segment_arp(plan: CompilePlan, seg: SegmentInfo) -> list[Rule]:
    """Unicast ARP (and neighbour discovery) to each endpoint of the segment; the same on
    every switch (memoized)."""
    memo = plan.memo.get(("arp", *seg.key))
    if memo is not None:
        return memo
    t, rules = ARP.id, []
    meta = meta_match(plan.ctx_value(seg.key), CTX_MASK)
    for dst in plan.net.segment_endpoints(*seg.key):
        cookie = plan.ep_cookie(t, dst)
        unicast: list[Action] = [SetField("eth_dst", mac_int(dst.mac)), GotoTable(FORWARD.id)]
        rules.append(
            Rule.make(t, PRIO_ENDPOINT, cookie, [meta, ("proto", "arp"), ("arp_tpa", plan.ip(dst))], unicast)
        )
        for address in dst.ipv6_sources:
            ns = [meta, ("proto", "icmp6"), ("icmp_type", "135"), ("nd_target", str(address))]
            rules.append(Rule.make(t, PRIO_SPECIFIC, cookie, ns, unicast))
            na = [meta, ("proto", "icmp6"), ("icmp_type", "136"), ("ipv6_dst", str(address))]
            rules.append(Rule.make(t, PRIO_SPECIFIC, cookie, na, [GotoTable(FORWARD.id)]))
    plan.memo[("arp", *seg.key)] = rules
    return rules


def egress_stage(plan: CompilePlan, local: list[EndpointInfo]) -> list[Rule]:
    """Table 80: delivery to each local endpoint by context, MAC and address (IPv4, ARP, both
    IPv6 addresses, solicitations to its group); hairpins drop, ARP replies go back."""
    t = EGRESS.id
    rules = [Rule.make(t, PRIO_DEFAULT, make_cookie(t, Kind.PIPELINE, 0, 0), [], [Drop()])]
    for ep in local:
        seg = plan.seg(ep)
        cookie = plan.ep_cookie(t, ep)
        meta = meta_match(plan.ctx_value(seg.key), SEG_MASK)
        to_me = [meta, ("dl_dst", ep.mac)]
        out = [Output(ep.port)]
        if seg.gateway is not None:
            gw_mac = plan.gw_mac[ep.tenant]
            reply = [("in_port", str(ep.port)), *to_me, ("proto", "arp"), ("arp_op", "2"),
                     ("arp_spa", str(seg.gateway)), ("arp_tpa", str(ep.ip)),
                     ("arp_sha", gw_mac)]  # fmt: skip
            rules.append(Rule.make(t, PRIO_RESPONDER, cookie, reply, [Output(IN_PORT)]))
        if ep.ipv6_gateway is not None:
            tll: list[Action] = [SetField("nd_tll", mac_int(plan.gw_mac[ep.tenant])), Output(IN_PORT)]
            for address in ep.ipv6_sources:  # the gateway's advertisement (table 10), back out
                advert = [("in_port", str(ep.port)), *to_me, ("proto", "icmp6"), ("icmp_type", "136"),
                          ("ipv6_src", str(ep.ipv6_gateway)), ("ipv6_dst", str(address))]  # fmt: skip
                rules.append(Rule.make(t, PRIO_RESPONDER, cookie, advert, tll))
        # with the endpoint's context: a frame for its MAC in another context is never
        # output to it anyway, and a verifier reads one context's drops, not every port's
        rules.append(Rule.make(t, PRIO_DENY_SPECIFIC, cookie, [("in_port", str(ep.port)), *to_me], [Drop()]))
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
