"""IPv6 and neighbour-discovery rewrites: a gateway's neighbour-advertisement responder built
in flows (table 10 turns a solicitation for the gateway address into an advertisement,
table 80 adds the target link-layer address and sends it back out of ``IN_PORT``), run by
the simulator and both engines; and the origin tracking a proof chooses for its tables."""

from __future__ import annotations

from functools import cache
from ipaddress import IPv6Address

import pytest

from segctl.flows.compiler import compile_network
from segctl.openflow.ofctl import Flow, mac_int, parse_flows
from segctl.topology.network import Network, load_network
from segctl.verifier.fields import BASE_REWRITABLE, rewritable_for, written_fields
from segctl.verifier.headerspace import HeaderSpace
from segctl.verifier.reference import ReferenceEngine
from segctl.verifier.simulate import Packet, simulate
from segctl.verifier.symbolic import DELIVERED, Engine, Topology
from segctl.verifier.wavefront import WAVEFRONT_ORDER, WavefrontEngine

HOST_MAC, GW_MAC = "02:00:00:0a:01:01", "02:5e:00:00:00:01"  # acme/web1 on s1:1, acme's gateway
HOST, GW = "fd00:1:1::11", "fd00:1:1::1"
META = "metadata=0x1001/0xffffffff"
RESPONDER = f"""
table=0,priority=100,in_port=1,actions=write_metadata:0x1001/0xffffffff,goto_table:10
table=0,priority=100,in_port=2,actions=write_metadata:0x2001/0xffffffff,goto_table:10
table=0,priority=0,actions=drop
table=10,priority=200,in_port=1,{META},icmp6,icmp_type=135,ipv6_src={HOST},nd_target={GW},actions=\
set_field:{HOST_MAC}->eth_dst,set_field:{GW_MAC}->eth_src,set_field:{GW}->ipv6_src,set_field:{HOST}->ipv6_dst,\
set_field:136->icmpv6_type,set_field:0xe0000000->nd_reserved,set_field:2->nd_options_type,goto_table:80
table=10,priority=0,actions=output:10
table=80,priority=100,{META},icmp6,icmp_type=136,nd_target={GW},actions=set_field:{GW_MAC}->nd_tll,IN_PORT
table=80,priority=0,actions=drop
"""
#: What the responder writes: the packet delivered back to web1 (nd_target is left as it was).
ADVERT = {
    "eth_dst": mac_int(HOST_MAC),
    "eth_src": mac_int(GW_MAC),
    "ipv6_src": int(IPv6Address(GW)),
    "ipv6_dst": int(IPv6Address(HOST)),
    "icmp_type": 136,
    "nd_reserved": 0xE0000000,
    "nd_options_type": 2,
    "nd_tll": mac_int(GW_MAC),
    "nd_target": int(IPv6Address(GW)),
}


@cache
def _case() -> tuple[Network, dict[str, list[Flow]]]:
    network = load_network("examples/dual-stack.yaml")
    return network, {"s1": parse_flows(RESPONDER, source="s1"), "s2": parse_flows("priority=0,actions=drop")}


def _solicitation() -> Packet:
    return Packet(
        in_port=1, eth_src=mac_int(HOST_MAC), eth_dst=mac_int("33:33:ff:00:00:01"), eth_type=0x86DD,
        ip_proto=58, nw_ttl=255, icmp_type=135, ipv6_src=int(IPv6Address(HOST)),
        ipv6_dst=int(IPv6Address("ff02::1:ff00:1")), nd_target=int(IPv6Address(GW)),
        nd_sll=mac_int(HOST_MAC), nd_options_type=1,
    )  # fmt: skip


def test_simulator_answers_a_solicitation_with_an_advertisement() -> None:
    network, tables = _case()
    topo = Topology.from_network(network)
    [fate] = simulate(tables, topo.links, topo.edges, "s1", _solicitation())
    assert (fate.kind, fate.endpoint, fate.port) == (DELIVERED, "acme/web1", 1)
    assert [(h.table, h.priority) for h in fate.hops] == [(0, 100), (10, 200), (80, 100)]
    got = {name: getattr(fate.packet, name) for name in ADVERT}
    assert got == ADVERT
    assert (fate.packet.nd_sll, fate.packet.icmp_code) == (mac_int(HOST_MAC), 0)  # not rewritten


def test_the_tables_choose_the_tracked_fields() -> None:
    _, tables = _case()
    written = {
        "eth_src",
        "eth_dst",
        "ipv6_src",
        "ipv6_dst",
        "icmp_type",
        "nd_reserved",
        "nd_options_type",
        "nd_tll",
    }
    assert written_fields(tables) == written
    assert set(rewritable_for(tables)) == set(BASE_REWRITABLE) | written
    for engine in (WavefrontEngine(*_case()), ReferenceEngine(*_case())):
        assert set(engine.hs.rewritable) == set(BASE_REWRITABLE) | written
        assert "o.nd_tll_0" in engine.hs.bdd.vars and "o.nd_target_0" not in engine.hs.bdd.vars
    with pytest.raises(ValueError, match="does not track"):
        WavefrontEngine(*_case(), hs=HeaderSpace(WAVEFRONT_ORDER))


@pytest.mark.parametrize("example", ["examples/two-tenants.yaml", "examples/leaf-spine.yaml"])
def test_a_proof_without_ipv6_rewrites_has_no_ipv6_ghosts(example: str) -> None:
    network = load_network(example)
    tables = {sw: parse_flows(p.flows_text(), source=sw) for sw, p in compile_network(network).items()}
    for engine in (WavefrontEngine(network, tables), ReferenceEngine(network, tables)):
        assert engine.hs.rewritable == BASE_REWRITABLE
        ipv6_ghosts = ("o.ipv6", "o.nd_", "o.icmp", "nd_tll", "nd_reserved", "nd_options_type")
        assert not [v for v in engine.hs.bdd.vars if v.startswith(ipv6_ghosts)]  # nor the NA-only fields


def test_both_engines_see_the_advertisement_as_sent_and_as_delivered() -> None:
    network, tables = _case()
    hs = HeaderSpace(WAVEFRONT_ORDER, rewritable_for(tables))  # one manager: the views compare as BDDs
    views = {
        name: engine(network, tables, hs=hs).runs()
        for name, engine in (("wavefront", WavefrontEngine), ("reference", ReferenceEngine))
    }
    assert views["wavefront"] == views["reference"]
    ports = sorted(Topology.from_network(network).edges)
    web1 = hs.tag(ports.index(("s1", 1)))
    # sent: the solicitation as web1 sent it (origin of every rewritten field = its injected value)
    solicitation = (
        hs.oeq("eth_type", 0x86DD) & hs.oeq("ip_proto", 58) & hs.oeq("icmpv6_type", 135)
        & hs.oeq("ipv6_src", int(IPv6Address(HOST))) & hs.oeq("nd_target", int(IPv6Address(GW)))
        & (hs.oeq("vlan_present", 1) | hs.oeq("vlan_vid", 0))
    )  # fmt: skip
    for any_view, _new in views.values():
        assert any_view.delivered["acme/web1"] == solicitation & web1
        assert set(any_view.delivered) == {"acme/web1"}
    # delivered: the reference engine's relation, injected packet and final packet
    [o] = [o for o in Engine(tables, Topology.from_network(network), hs=hs).inject("s1", 1)
           if o.disposition.kind == DELIVERED]  # fmt: skip
    sent, now = hs.pick_pair(o.space)
    assert {name: now[name] for name in ADVERT} == ADVERT
    assert (sent["ipv6_src"], sent["icmp_type"], sent["nd_options_type"]) == (int(IPv6Address(HOST)), 135, 0)
    every = hs.true
    for name, value in ADVERT.items():
        every &= hs.eq(name, value)
    assert hs.implies(hs.final(o.space), every)  # every packet delivered is the advertisement
    live = (
        hs.eq("eth_type", 0x86DD) & hs.eq("ip_proto", 58) & hs.eq("icmp_type", 135)
        & hs.eq("ipv6_src", int(IPv6Address(HOST))) & hs.eq("nd_target", int(IPv6Address(GW)))
        & (hs.eq("vlan_present", 1) | hs.eq("vlan_vid", 0))
    )  # fmt: skip
    assert hs.origin(o.space) == live
