"""The distributed gateway and forwarding: host routes and shared-service routes (table 40),
replies of shared services found by zone (table 45), forwarding per context (table 50).
Shared services go in IPv4, and in IPv6 between global addresses where both segments have a
``gateway6``.

Each stage is a function of the :class:`~segctl.flows.plan.CompilePlan` that returns rules;
:mod:`segctl.flows.compiler` assembles them.
"""

from __future__ import annotations

from collections.abc import Iterable

from segctl.flows.pipeline import (
    CT_DST,
    EGRESS,
    FORWARD,
    META_WRITE_MASK,
    PRIO_DEFAULT,
    PRIO_DENY_SPECIFIC,
    PRIO_ENDPOINT,
    PRIO_GUARD,
    PRIO_PASS,
    PRIO_SPECIFIC,
    ROUTE,
    SHARED_REPLY,
)
from segctl.flows.plan import (
    CTX_MASK,
    LINK_LOCAL,
    TENANT_ORIGIN_MASK,
    CompilePlan,
    Ctx,
    by_ip,
    meta_match,
    route_actions,
)
from segctl.flows.rules import Rule
from segctl.openflow.cookies import Kind, make_cookie
from segctl.openflow.ofctl import (
    Action,
    Conjunction,
    Ct,
    DecTtl,
    Drop,
    GotoTable,
    Output,
    PushVlan,
    SetField,
    WriteMetadata,
    mac_int,
)
from segctl.topology.analysis import ipv6_applies
from segctl.topology.network import EndpointInfo, SegmentInfo

__all__ = ["forward_stage", "provider_routes", "route_stage", "shared_reply_stage"]


def route_stage(plan: CompilePlan, switch: str, local: list[EndpointInfo]) -> list[Rule]:
    """Table 40: the distributed gateway's host routes for the local endpoints' tenants, routes
    to consumed providers, and shared-service replies sent to find their consumer's zone."""
    t = ROUTE.id
    pipe = make_cookie(t, Kind.PIPELINE, 0, 0)
    rules = [
        Rule.make(t, PRIO_DEFAULT, pipe, [], [Drop()]),
        Rule.make(t, PRIO_PASS, pipe, [("proto", "ip")], [GotoTable(FORWARD.id)]),
    ]
    if plan.v6_tenants:  # IPv6 inside a segment passes (routed IPv6 meets the rules below first)
        rules.append(Rule.make(t, PRIO_PASS, pipe, [("proto", "ipv6")], [GotoTable(FORWARD.id)]))
    tenants = sorted({ep.tenant for ep in local}, key=plan.tid.__getitem__)
    local_segments = {(ep.tenant, ep.segment) for ep in local}
    for tenant in tenants:
        tid, gw = plan.tid[tenant], plan.gw_mac[tenant]
        cookie = plan.tenant_cookie(t, tenant)
        to_gw = [meta_match(tid, TENANT_ORIGIN_MASK), ("dl_dst", gw), ("proto", "ip")]
        rules.append(Rule.make(t, PRIO_GUARD, cookie, to_gw, [Drop()]))  # unknown destination
        for ttl in ("0", "1"):
            rules.append(Rule.make(t, PRIO_DENY_SPECIFIC, cookie, [*to_gw, ("nw_ttl", ttl)], [Drop()]))
        mine = [seg for seg in plan.tenant_segments[tenant] if seg.key in local_segments]
        for seg in mine:
            hairpin = [meta_match(plan.ctx_value(seg.key), CTX_MASK), ("dl_dst", gw), ("proto", "ip"),
                       ("nw_dst", str(seg.cidr))]  # fmt: skip
            rules.append(Rule.make(t, PRIO_DENY_SPECIFIC, plan.seg_cookie(t, seg), hairpin, [Drop()]))
        for seg in plan.tenant_segments[tenant]:
            # Only local endpoints reach this table, and the hairpin drop above stops those of
            # ``seg`` itself: routes into a segment that holds every local endpoint carry nothing.
            if mine != [seg]:
                rules += _segment_routes(plan, seg)
    for tenant in tenants:
        rules += _ipv6_routes(plan, tenant, local_segments)
    rules += provider_routes(plan, local)
    rules += provider_routes(plan, local, 6)
    # replies of shared services from local providers: find the consumer's tenant by zone.
    # Only replies (est+rpl in the provider's zone, where its side committed them): a new
    # connection the provider may open to that consumer (it consumes a service of the
    # consumer's tenant) takes the consumer route below, not the consumer-zone lookup.
    for z in local:
        consumers = plan.consumers_of.get(z.key)
        if not consumers:
            continue
        gw = plan.gw_mac[z.tenant]
        for family in (4, 6):
            proto, src, dst = _FAMILY_FIELDS[family]
            for ip, candidates in sorted(
                by_ip(_peers_in(consumers.values(), z, family), plan.tid, family).items()
            ):
                match = [meta_match(plan.tid[z.tenant], TENANT_ORIGIN_MASK), ("dl_dst", gw), ("proto", proto),
                         (src, _address(z, family)), (dst, ip), ("ct_state", "+est+rpl+trk")]  # fmt: skip
                first = plan.tid[candidates[0].tenant]
                rules.append(
                    Rule.make(t, PRIO_SPECIFIC, plan.ep_cookie(t, z), match,
                              [Ct(zone=first, table=SHARED_REPLY.id)])
                )  # fmt: skip
    return rules


#: Per IP family: the ``proto`` shorthand and the source and destination address fields.
_FAMILY_FIELDS = {4: ("ip", "nw_src", "nw_dst"), 6: ("ipv6", "ipv6_src", "ipv6_dst")}


def _address(ep: EndpointInfo, family: int) -> str:
    """``ep``'s IPv4 address, or its global IPv6 one (the routed one)."""
    return str(ep.ip if family == 4 else ep.ipv6)


def _peers_in(peers: Iterable[EndpointInfo], ep: EndpointInfo, family: int) -> list[EndpointInfo]:
    """The shared-service peers (consumers of a provider ``ep``, or providers of a consumer)
    that ``ep`` reaches in ``family``: all in IPv4; in IPv6 those where IPv6 goes
    (:func:`~segctl.topology.analysis.ipv6_applies`, symmetric: both segments routed)."""
    return [p for p in peers if family == 4 or ipv6_applies(ep, p)]


def _segment_routes(plan: CompilePlan, seg: SegmentInfo, family: int = 4) -> list[Rule]:
    """Host routes of the tenant's gateway into ``seg``, to each endpoint's IPv4 address, or
    (``family`` 6) to the global IPv6 address of each endpoint that has one: the same on
    every switch (memoized)."""
    key = ("route" if family == 4 else "route6", *seg.key)
    memo = plan.memo.get(key)
    if memo is not None:
        return memo
    t, tid, gw = ROUTE.id, plan.tid[seg.tenant], plan.gw_mac[seg.tenant]
    proto, field = ("ip", "nw_dst") if family == 4 else ("ipv6", "ipv6_dst")
    to_gw = [meta_match(tid, TENANT_ORIGIN_MASK), ("dl_dst", gw), ("proto", proto)]
    meta = plan.ctx_value(seg.key)
    rules = [
        Rule.make(t, PRIO_ENDPOINT, plan.ep_cookie(t, dst), [*to_gw, (field, address)],
                  route_actions(gw, dst, meta))
        for dst in plan.net.segment_endpoints(*seg.key)
        if (address := _route_address(plan, dst, family)) is not None
    ]  # fmt: skip
    plan.memo[key] = rules
    return rules


def _route_address(plan: CompilePlan, dst: EndpointInfo, family: int) -> str | None:
    """The address a host route to ``dst`` matches: IPv4, or the global IPv6 one (None: none)."""
    if family == 4:
        return plan.ip(dst)
    return None if dst.ipv6 is None else str(dst.ipv6)


def _ipv6_routes(plan: CompilePlan, tenant: str, local_segments: set[Ctx]) -> list[Rule]:
    """The gateway's IPv6 routes for a tenant with segments that have a ``gateway6``: what it
    does not route drops (an unknown destination, hop limit 0 or 1, a packet for the sender's
    own segment, a packet from a segment without ``gateway6`` or from a link-local
    address), host routes to the global
    address of every IPv6 endpoint of a routed segment."""
    routed = plan.routed6.get(tenant)
    if not routed:
        return []
    t, tid, gw = ROUTE.id, plan.tid[tenant], plan.gw_mac[tenant]
    cookie = plan.tenant_cookie(t, tenant)
    to_gw = [meta_match(tid, TENANT_ORIGIN_MASK), ("dl_dst", gw), ("proto", "ipv6")]
    rules = [Rule.make(t, PRIO_GUARD, cookie, to_gw, [Drop()])]
    for hop_limit in ("0", "1"):
        rules.append(Rule.make(t, PRIO_DENY_SPECIFIC, cookie, [*to_gw, ("nw_ttl", hop_limit)], [Drop()]))
    # a router never forwards a link-local source (RFC 4291): only global addresses are routed
    rules.append(Rule.make(t, PRIO_DENY_SPECIFIC, cookie, [*to_gw, ("ipv6_src", LINK_LOCAL)], [Drop()]))
    senders = []
    for seg in plan.tenant_segments[tenant]:
        if seg.key not in local_segments:
            continue
        here = [meta_match(plan.ctx_value(seg.key), CTX_MASK), ("dl_dst", gw), ("proto", "ipv6")]
        if seg in routed:
            senders.append(seg)
            hairpin = [*here, ("ipv6_dst", str(seg.cidr6))]
            rules.append(Rule.make(t, PRIO_DENY_SPECIFIC, plan.seg_cookie(t, seg), hairpin, [Drop()]))
        else:
            rules.append(Rule.make(t, PRIO_DENY_SPECIFIC, plan.seg_cookie(t, seg), here, [Drop()]))
    for seg in routed:
        if senders and senders != [seg]:  # routes into the only local sender's segment carry nothing
            rules += _segment_routes(plan, seg, 6)
    return rules


def provider_routes(plan: CompilePlan, local: list[EndpointInfo], family: int = 4) -> list[Rule]:
    """Host routes from local declared consumers to the providers they consume (table 40),
    in IPv4, or (``family`` 6) in IPv6 between global addresses where IPv6 goes (both
    segments have a ``gateway6``).

    Only a consumer's own context and address reach a provider, in any conntrack state
    (a non-consumer of a consumer tenant finds no route). Direct flows (consumer ×
    provider) when that is cheapest, else one conjunction per provider: clause 1 the
    consumer (context, gateway MAC, source address; one flow carrying a clause for each
    provider it consumes), clause 2 the provider address, and a ``conj_id`` flow with
    the route actions. The conjunctions share one priority and are disjoint by clause 2;
    IPv6's ids follow IPv4's.
    """
    t = ROUTE.id
    pairs = [
        (c, z) for c in local for z in _peers_in(plan.consumes.get(c.key, {}).values(), c, family)
    ]  # fmt: skip
    if not pairs:
        return []
    proto, src, dst = _FAMILY_FIELDS[family]
    offset = 0 if family == 4 else len(plan.provider_conj)

    def key(e: EndpointInfo) -> tuple[int, str]:
        return (plan.tid[e.tenant], e.name)

    providers = sorted({z.key: z for _, z in pairs}.values(), key=key)
    consumers = sorted({c.key: c for c, _ in pairs}.values(), key=key)

    def source(c: EndpointInfo) -> list[tuple[str, str]]:
        return [meta_match(plan.ctx_value((c.tenant, c.segment)), CTX_MASK),
                ("dl_dst", plan.gw_mac[c.tenant]), ("proto", proto), (src, _address(c, family))]  # fmt: skip

    def actions(z: EndpointInfo) -> list[Action]:
        return [SetField("eth_src", mac_int(plan.gw_mac[z.tenant])), SetField("eth_dst", mac_int(z.mac)),
                DecTtl(), GotoTable(FORWARD.id)]  # fmt: skip

    if len(pairs) <= len(consumers) + 2 * len(providers):
        return [
            Rule.make(t, PRIO_ENDPOINT, plan.ep_cookie(t, z), [*source(c), (dst, _address(z, family))],
                      actions(z))
            for c, z in sorted(pairs, key=lambda p: (key(p[1]), key(p[0])))
        ]  # fmt: skip
    rules: list[Rule] = []
    for c in consumers:
        reached = _peers_in(plan.consumes[c.key].values(), c, family)
        clauses = sorted(offset + plan.provider_conj[z.key] for z in reached)
        rules.append(
            Rule.make(t, PRIO_ENDPOINT, plan.ep_cookie(t, c), source(c),
                      [Conjunction(n, 1, 2) for n in clauses])
        )  # fmt: skip
    for z in providers:
        n, cookie = offset + plan.provider_conj[z.key], plan.ep_cookie(t, z)
        rules.append(
            Rule.make(
                t,
                PRIO_ENDPOINT,
                cookie,
                [("proto", proto), (dst, _address(z, family))],
                [Conjunction(n, 2, 2)],
            )
        )
        rules.append(Rule.make(t, PRIO_ENDPOINT, cookie, [("proto", proto), ("conj_id", str(n))], actions(z)))
    return rules


def shared_reply_stage(plan: CompilePlan, local: list[EndpointInfo]) -> list[Rule]:
    """Table 45: a local provider's reply routed to the consumer whose zone holds it, trying
    the tenants that share the consumer's address one zone after another."""
    t = SHARED_REPLY.id
    rules = [Rule.make(t, PRIO_DEFAULT, make_cookie(t, Kind.PIPELINE, 0, 0), [], [Drop()])]
    for z, family in ((z, family) for z in local for family in (4, 6)):
        consumers = plan.consumers_of.get(z.key)
        if not consumers:
            continue
        proto, src, dst = _FAMILY_FIELDS[family]
        for ip, candidates in sorted(
            by_ip(_peers_in(consumers.values(), z, family), plan.tid, family).items()
        ):
            for i, c in enumerate(candidates):
                zone = plan.tid[c.tenant]
                base = [("proto", proto), ("ct_zone", str(zone)), (src, _address(z, family)), (dst, ip)]
                actions = route_actions(plan.gw_mac[c.tenant], c, plan.ctx_value((c.tenant, c.segment)))
                est = [*base, ("ct_state", "+est+rpl+trk")]
                rules.append(Rule.make(t, PRIO_SPECIFIC, plan.ep_cookie(t, c), est, actions))
                if i + 1 < len(candidates):
                    nxt = plan.tid[candidates[i + 1].tenant]
                    rules.append(
                        Rule.make(t, PRIO_ENDPOINT, plan.ep_cookie(t, c), base,
                                  [Ct(zone=nxt, table=SHARED_REPLY.id)])
                    )  # fmt: skip
    return rules


def forward_stage(plan: CompilePlan, switch: str) -> list[Rule]:
    """Table 50: each context's destinations on ``switch``, delivered locally (through
    conntrack) or tagged and sent toward them."""
    t = FORWARD.id
    rules = [Rule.make(t, PRIO_DEFAULT, make_cookie(t, Kind.PIPELINE, 0, 0), [], [Drop()])]
    for (ctx, dst_key), port in sorted(plan.forward.get(switch, {}).items()):
        rules += _forward_rules(plan, ctx, dst_key, port)
    return rules


def _forward_rules(plan: CompilePlan, ctx: Ctx, dst_key: tuple[str, str], port: int) -> list[Rule]:
    """Forwarding of context ``ctx`` to one destination out of ``port`` (0: local); memoized."""
    memo = plan.memo.get(("fwd", ctx, dst_key, port))
    if memo is not None:
        return memo
    t = FORWARD.id
    dst = plan.net.endpoint(*dst_key)
    cookie = plan.ep_cookie(t, dst)
    match = [meta_match(plan.ctx_value(ctx), CTX_MASK), ("dl_dst", dst.mac)]
    shared = dst.tenant != ctx[0]
    if shared:
        match.append(("dl_src", plan.gw_mac[dst.tenant]))
    rules: list[Rule] = []
    if port:
        vlan = plan.net.segment(*ctx).vlan
        out: list[Action] = [PushVlan(), SetField("vlan_vid", vlan), Output(port)]
        rules.append(Rule.make(t, PRIO_ENDPOINT, cookie, match, out))
    elif shared:
        origin = plan.tid[ctx[0]]
        write = WriteMetadata(plan.ctx_value((dst.tenant, dst.segment), origin), META_WRITE_MASK)
        protos = ["ip"]
        if dst.ipv6_gateway is not None and plan.net.segment(*ctx).gateway6 is not None:
            protos.append("ipv6")  # routed IPv6 of the consumer's segment (both have a gateway6)
        for proto in protos:
            rules.append(
                Rule.make(t, PRIO_ENDPOINT, cookie, [*match, ("proto", proto)], [write, GotoTable(CT_DST.id)])
            )
    else:
        rules.append(Rule.make(t, PRIO_ENDPOINT, cookie, [*match, ("proto", "ip")], [GotoTable(CT_DST.id)]))
        rules.append(Rule.make(t, PRIO_ENDPOINT, cookie, [*match, ("proto", "arp")], [GotoTable(EGRESS.id)]))
        if dst.ipv6 is not None:
            rules.append(
                Rule.make(t, PRIO_ENDPOINT, cookie, [*match, ("proto", "ipv6")], [GotoTable(CT_DST.id)])
            )
    plan.memo[("fwd", ctx, dst_key, port)] = rules
    return rules
