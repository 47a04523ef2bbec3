"""The symbolic engine on small hand-written tables with known outcomes."""

from __future__ import annotations

import time

import pytest

from segctl.openflow.ofctl import mac_text, parse_flows
from segctl.topology.network import load_network
from segctl.verifier.headerspace import CT_EST, CT_INV, CT_NEW, CT_TRK, FIELDS, HeaderSpace
from segctl.verifier.symbolic import (
    CONTROLLER,
    DELIVERED,
    DROPPED,
    LOOP,
    MISS,
    TTL_EXPIRED,
    UNCONNECTED,
    UNSUPPORTED,
    Engine,
    Outcome,
    Topology,
    compute_reachability,
)

HS = HeaderSpace()
A, B, C = 0x020000000001, 0x020000000002, 0x020000000003
EDGES = {("s1", 1): "t/a", ("s1", 2): "t/b", ("s1", 3): "t/c", ("s2", 1): "t/d"}
LINKS = {("s1", 9): ("s2", 9), ("s2", 9): ("s1", 9)}
TOPO = Topology(links=LINKS, edges=EDGES)


def run(text: str, *, switch: str = "s1", port: int = 1, s2: str = "", **kw: object) -> list[Outcome]:
    tables = {"s1": parse_flows(text, source="s1")}
    if s2:
        tables["s2"] = parse_flows(s2, source="s2")
    return Engine(tables, TOPO, hs=HS, **kw).inject(switch, port)  # type: ignore[arg-type]


def by_kind(outcomes: list[Outcome]) -> dict[str, list[Outcome]]:
    out: dict[str, list[Outcome]] = {}
    for o in outcomes:
        out.setdefault(o.disposition.kind, []).append(o)
    return out


def origin_union(outcomes: list[Outcome]) -> object:
    space = HS.false
    for o in outcomes:
        space |= HS.origin(o.space)
    return space


def assert_partition(outcomes: list[Outcome]) -> None:
    """Without outputs copying packets, the injected space splits into disjoint outcomes."""
    spaces = [HS.origin(o.space) for o in outcomes]
    for i, a in enumerate(spaces):
        for b in spaces[i + 1 :]:
            assert HS.is_empty(a & b)
    assert HS.origin(HS.injected(1)) == origin_union(outcomes)


def test_priority_order_and_miss() -> None:
    outcomes = run(
        "priority=10,ip,actions=output:2\n"
        "priority=20,ip,nw_dst=10.0.0.0/8,actions=output:3\n"
        "priority=5,arp,actions=drop\n"
    )
    kinds = by_kind(outcomes)
    assert_partition(outcomes)
    ip, ten = HS.eq("eth_type", 0x0800), HS.eq("ip_dst", 0x0A000000, 0xFF000000)
    [to_b] = [o for o in kinds[DELIVERED] if o.disposition.endpoint == "t/b"]
    [to_c] = [o for o in kinds[DELIVERED] if o.disposition.endpoint == "t/c"]
    assert HS.origin(to_c.space) == HS.origin(HS.injected(1)) & ip & ten
    assert HS.origin(to_b.space) == HS.origin(HS.injected(1)) & ip & ~ten
    assert HS.origin(kinds[DROPPED][0].space) == HS.origin(HS.injected(1)) & HS.eq("eth_type", 0x0806)
    [miss] = kinds[MISS]
    assert miss.hops[-1].priority == -1 and miss.disposition.table == 0
    assert [h.priority for h in to_c.hops] == [20]


def test_equal_priority_overlap_is_a_finding() -> None:
    tables = {
        "s1": parse_flows("priority=10,ip,actions=output:2\npriority=10,ip,nw_src=1.2.3.4,actions=output:3\n")
    }
    engine = Engine(tables, TOPO, hs=HS)
    assert [f.kind for f in engine.findings] == ["overlap"]
    same_actions = {"s1": parse_flows("priority=10,ip,actions=output:2\npriority=10,tcp,actions=output:2\n")}
    assert Engine(same_actions, TOPO, hs=HS).findings == []


def test_goto_write_metadata_and_metadata_match() -> None:
    outcomes = run(
        "table=0,in_port=1,actions=write_metadata:0x50/0xf0,goto_table:1\n"
        "table=1,metadata=0x50/0xf0,ip,actions=write_metadata:0x3/0xf,goto_table:2\n"
        "table=2,metadata=0x53,actions=output:2\n"
    )
    kinds = by_kind(outcomes)
    [delivered] = kinds[DELIVERED]
    assert HS.pick(delivered.space)["metadata"] == 0x53
    assert [(h.table, h.priority) for h in delivered.hops] == [(0, 32768), (1, 32768), (2, 32768)]
    assert [o.disposition.table for o in kinds[MISS]] == [1]
    assert_partition(outcomes)


def test_set_field_rewrites_live_keeps_origin() -> None:
    rewrite = f"mod_dl_dst:{mac_text(B)},set_field:0x7->reg1,dec_ttl,output:2"
    outcomes = run(f"ip,dl_dst={mac_text(A)},actions={rewrite}\n")
    kinds = by_kind(outcomes)
    [out] = kinds[DELIVERED]
    origin, now = HS.pick_pair(out.space)
    assert (origin["eth_dst"], now["eth_dst"]) == (A, B)
    assert now["reg1"] == 7 and now["nw_ttl"] == origin["nw_ttl"] - 1
    [expired] = kinds[TTL_EXPIRED]
    assert HS.origin(expired.space) == HS.origin(
        HS.injected(1)
        & HS.eq("eth_type", 0x800)
        & HS.eq("eth_dst", A)
        & (HS.eq("nw_ttl", 0) | HS.eq("nw_ttl", 1))
    )


def test_vlan_across_fabric_and_pipeline_reset() -> None:
    outcomes = run(
        "in_port=1,vlan_tci=0/0x1fff,actions=write_metadata:0x9,push_vlan:0x8100,set_field:4196->vlan_vid,output:9\n",
        s2="in_port=9,dl_vlan=100,metadata=0,actions=pop_vlan,output:1\n",
    )
    kinds = by_kind(outcomes)
    [out] = kinds[DELIVERED]
    assert out.disposition.endpoint == "t/d" and out.disposition.switch == "s2"
    origin, now = HS.pick_pair(out.space)
    assert (origin["vlan_present"], now["vlan_present"], now["vlan_vid"], now["in_port"]) == (0, 0, 0, 9)
    assert [h.switch for h in out.hops] == ["s1", "s2"]
    # Tagged packets were never admitted: they miss at s1.
    assert HS.origin(kinds[MISS][0].space) == HS.origin(HS.injected(1) & HS.eq("vlan_present", 1))
    assert len(kinds) == 2


def test_push_on_tagged_is_reported_unsupported() -> None:
    kinds = by_kind(run("actions=push_vlan:0x8100,output:2\n"))
    assert HS.pick(kinds[UNSUPPORTED][0].space)["vlan_present"] == 1
    assert HS.pick(kinds[DELIVERED][0].space, ghost=True)["vlan_present"] == 0


def test_conjunction_semantics() -> None:
    outcomes = run(
        "priority=50,tcp,tcp_dst=22,actions=conjunction(7,1/2)\n"
        "priority=50,tcp,tcp_dst=80,actions=conjunction(7,1/2)\n"
        "priority=50,ip,nw_src=10.0.0.1,actions=conjunction(7,2/2)\n"
        "priority=50,conj_id=7,ip,actions=output:2\n"
        "priority=50,tcp,tcp_dst=80,nw_src=10.0.0.1,nw_dst=10.9.9.9,actions=output:3\n"
        "priority=10,ip,actions=drop\n"
    )
    kinds = by_kind(outcomes)
    assert_partition(outcomes)
    tcp = HS.eq("eth_type", 0x800) & HS.eq("ip_proto", 6)
    ports = HS.eq("tp_dst", 22) | HS.eq("tp_dst", 80)
    src = HS.eq("ip_src", 0x0A000001)
    hard = tcp & HS.eq("tp_dst", 80) & src & HS.eq("ip_dst", 0x0A090909)
    [conj] = [o for o in kinds[DELIVERED] if o.disposition.endpoint == "t/b"]
    [same_prio] = [o for o in kinds[DELIVERED] if o.disposition.endpoint == "t/c"]
    base = HS.origin(HS.injected(1))
    assert HS.origin(conj.space) == base & tcp & ports & src & ~hard
    assert HS.origin(same_prio.space) == base & hard
    assert conj.hops[-1].note == "conjunction 7"
    # Packets matching one clause only fall through to the lower priority.
    [dropped] = kinds[DROPPED]
    assert HS.origin(dropped.space) == base & HS.eq("eth_type", 0x800) & ~(tcp & ports & src)


def test_conjunction_without_target_misses() -> None:
    kinds = by_kind(
        run("priority=5,ip,actions=conjunction(3,1/2)\npriority=5,tcp,actions=conjunction(3,2/2)\n")
    )
    notes = sorted(o.hops[-1].match for o in kinds[MISS])
    assert notes == ["", "conj_id=3"]


def test_conntrack_fork_commit_and_states() -> None:
    tables = {
        "s1": parse_flows(
            "table=0,ip,ct_state=-trk,actions=ct(zone=5,table=1)\n"
            "table=1,ip,ct_state=+trk+new,actions=ct(commit,zone=5),output:2\n"
            "table=1,ip,ct_state=+trk+est,ct_zone=5,actions=output:3\n"
            "table=1,ip,ct_state=+trk+inv,actions=drop\n"
            "table=0,arp,actions=drop\n"
        )
    }
    engine = Engine(tables, TOPO, hs=HS)
    result = engine.run([("s1", 1)])
    kinds = by_kind(result.outcomes[("s1", 1)])
    [new] = [o for o in kinds[DELIVERED] if o.disposition.endpoint == "t/b"]
    [est] = [o for o in kinds[DELIVERED] if o.disposition.endpoint == "t/c"]
    assert HS.pick(new.space)["ct_state"] & (CT_TRK | CT_NEW) == CT_TRK | CT_NEW
    assert HS.pick(est.space)["ct_zone"] == 5
    [commit] = result.commits
    assert commit.zone == 5 and commit.table == 1
    assert HS.final(commit.space) == HS.final(new.space)
    # Related packets (neither new, est nor inv) miss in table 1.
    rel = [o for o in kinds.get(MISS, []) if o.disposition.table == 1]
    assert len(rel) == 1 and HS.pick(rel[0].space)["ct_state"] & 0x17 == 0x04
    # The default fresh state: +trk and exactly one of new/est/rel/inv.
    fresh = HS.forget(engine._fresh_ct, [f for f in FIELDS if f != "ct_state"])
    assert HS.bdd.count(fresh, nvars=6) == 8
    only_new = Engine(tables, TOPO, hs=HS, ct_states=HS.eq("ct_state", CT_TRK | CT_NEW)).inject("s1", 1)
    assert {o.disposition.endpoint for o in only_new if o.disposition.kind == DELIVERED} == {"t/b"}
    assert CT_EST and CT_INV


def test_loop_between_switches() -> None:
    outcomes = run("in_port=1,actions=output:9\nin_port=9,actions=IN_PORT\n", s2="actions=IN_PORT\n")
    kinds = by_kind(outcomes)
    [loop] = kinds[LOOP]
    assert loop.disposition.switch == "s2" and loop.disposition.table == 0
    assert [h.switch for h in loop.hops] == ["s1", "s2", "s1"]


def test_in_port_output_and_other_dispositions() -> None:
    outcomes = run(
        "priority=9,arp,actions=IN_PORT\n"
        "priority=8,ip,nw_dst=1.1.1.1,actions=output:1\n"
        "priority=7,ip,nw_dst=2.2.2.2,actions=meter:1,controller\n"
        "priority=6,ip,nw_dst=3.3.3.3,actions=output:42\n"
        "priority=5,ip,actions=set_field:0x1->reg0\n"
    )
    kinds = by_kind(outcomes)
    assert kinds[DELIVERED][0].disposition.endpoint == "t/a"
    reasons = sorted(o.disposition.detail for o in kinds[DROPPED])
    assert reasons == ["no output", "output to the ingress port needs IN_PORT"]
    assert len(kinds[CONTROLLER]) == 1 and kinds[UNCONNECTED][0].disposition.port == 42


def test_output_copies() -> None:
    kinds = by_kind(run("ip,actions=output:2,mod_dl_dst:02:00:00:00:00:03,output:3\n"))
    assert {o.disposition.endpoint for o in kinds[DELIVERED]} == {"t/b", "t/c"}
    by_ep = {o.disposition.endpoint: HS.pick_pair(o.space) for o in kinds[DELIVERED]}
    assert by_ep["t/c"][1]["eth_dst"] == C and by_ep["t/b"][1]["eth_dst"] == by_ep["t/b"][0]["eth_dst"]


def test_truncation_is_an_outcome() -> None:
    outcomes = run(
        "table=0,actions=goto_table:1\ntable=1,actions=goto_table:2\ntable=2,actions=output:2\n", max_steps=2
    )
    assert {o.disposition.kind for o in outcomes} == {"truncated"}


@pytest.mark.parametrize("example", ["examples/two-tenants.yaml", "examples/leaf-spine.yaml"])
def test_topology_from_network_and_speed(example: str) -> None:
    network = load_network(example)
    topo = Topology.from_network(network)
    assert len(topo.edges) == len(network.endpoints)
    assert len(topo.links) == 2 * len(network.links)
    # A permit-all L2 program on every switch: deliver to any local endpoint by MAC.
    tables = {}
    for sw in network.switches:
        lines = [
            f"priority=10,dl_dst={ep.mac},actions=output:{ep.port}"
            for ep in network.endpoints
            if ep.switch == sw.name
        ]
        tables[sw.name] = parse_flows("\n".join(lines))
    start = time.perf_counter()
    result = compute_reachability(tables, topo, hs=HS)
    assert time.perf_counter() - start < 2.0
    for (sw, port), outs in result.outcomes.items():
        delivered = {o.disposition.endpoint for o in outs if o.disposition.kind == DELIVERED}
        local = {ep.qualified for ep in network.endpoints if ep.switch == sw and ep.port != port}
        assert delivered == local
