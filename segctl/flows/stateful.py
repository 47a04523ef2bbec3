"""Conntrack and the policy tables' own rules: send to conntrack per tenant zone (tables 20
and 60), and the connection-state and intra-segment rules of the policy tables (30 and 70).
The grants' rules in 30/70 are :mod:`segctl.flows.policy`'s.
"""

from __future__ import annotations

from segctl.flows.pipeline import (
    CT_DST,
    EGRESS,
    LOG_MAX_LEN,
    META_TENANT_MASK,
    POLICY_SRC,
    PRIO_CT_ESTABLISHED,
    PRIO_CT_INVALID,
    PRIO_DEFAULT,
    PRIO_GUARD,
    PRIO_INTRA_SEGMENT,
    PRIO_SPECIFIC,
)
from segctl.flows.plan import (
    CTX_MASK,
    LINK_LOCAL,
    CompilePlan,
    meta_match,
)
from segctl.flows.rules import Rule
from segctl.openflow.cookies import Kind, make_cookie
from segctl.openflow.ofctl import (
    Action,
    Controller,
    Ct,
    Drop,
    GotoTable,
)
from segctl.topology.analysis import NEIGHBOUR_DISCOVERY
from segctl.topology.network import SegmentInfo

__all__ = ["ct_stage", "policy_stage"]


def ct_stage(plan: CompilePlan, table: int, next_table: int, tenants: list[str]) -> list[Rule]:
    """Tables 20 and 60: IPv4 (and IPv6 where the tenant has it) through conntrack in the
    tenant's zone; in 60, neighbour discovery straight on to egress."""
    pipe = make_cookie(table, Kind.PIPELINE, 0, 0)
    rules = [Rule.make(table, PRIO_DEFAULT, pipe, [], [Drop()])]
    for tenant in tenants:
        tid = plan.tid[tenant]
        for proto in ("ip", "ipv6") if tenant in plan.v6_tenants else ("ip",):
            match = [meta_match(tid, META_TENANT_MASK), ("proto", proto)]
            cookie = plan.tenant_cookie(table, tenant)
            rules.append(Rule.make(table, PRIO_GUARD, cookie, match, [Ct(zone=tid, table=next_table)]))
    if table == CT_DST.id and any(tenant in plan.v6_tenants for tenant in tenants):
        # neighbour discovery from a peer of the segment (table 10 made it unicast) is
        # delivered without conntrack, which would call it invalid
        for icmp_type in NEIGHBOUR_DISCOVERY:
            nd = [("proto", "icmp6"), ("icmp_type", str(icmp_type))]
            rules.append(Rule.make(table, PRIO_SPECIFIC, pipe, nd, [GotoTable(EGRESS.id)]))
    return rules


def policy_stage(plan: CompilePlan, table: int, next_table: int, segments: list[SegmentInfo]) -> list[Rule]:
    """Tables 30 and 70 without their grants: the miss (drop, or log in 30), connection state
    per family, and the intra-segment allow of each non-strict segment."""
    pipe = make_cookie(table, Kind.PIPELINE, 0, 0)
    logged = table == POLICY_SRC.id and plan.log_default_deny
    miss: list[Action] = [Controller(max_len=LOG_MAX_LEN)] if logged else [Drop()]
    rules = [Rule.make(table, PRIO_DEFAULT, pipe, [], miss)]
    for proto in ("ip", "ipv6") if plan.v6_tenants else ("ip",):
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
        tid = plan.tid[seg.tenant]
        ctx = meta_match(plan.ctx_value(seg.key), CTX_MASK)
        commit: list[Action] = [Ct(commit=True, zone=tid), GotoTable(next_table)]
        match = [ctx, ("proto", "ip"), ("nw_src", str(seg.cidr)), ("nw_dst", str(seg.cidr))]
        rules.append(Rule.make(table, PRIO_INTRA_SEGMENT, plan.seg_cookie(table, seg), match, commit))
        if seg.key in plan.has_ipv6 and seg.cidr6 is not None:
            # IPv6 to the segment's prefix or to a member's link-local address (fe80::/64 is
            # every segment's: the prefix would commit traffic for another segment's member)
            targets = [str(seg.cidr6)] + [
                str(ep.ipv6_link_local)
                for ep in plan.net.segment_endpoints(*seg.key)
                if ep.ipv6_link_local is not None
            ]
            # from anywhere in a segment the gateway routes no IPv6 into; else from the
            # segment's prefix or a link-local address (never routed): not a routed packet
            sources: list[tuple[str, str] | None] = (
                [None] if seg.gateway6 is None else [("ipv6_src", str(seg.cidr6)), ("ipv6_src", LINK_LOCAL)]
            )
            for source in sources:
                for target in targets:
                    v6 = [ctx, ("proto", "ipv6"), *([source] if source else []), ("ipv6_dst", target)]
                    rules.append(
                        Rule.make(table, PRIO_INTRA_SEGMENT, plan.seg_cookie(table, seg), v6, commit)
                    )
    return rules
