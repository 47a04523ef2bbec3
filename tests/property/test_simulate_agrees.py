"""Differential check: the concrete simulator and the symbolic engine agree packet by packet.

For a random packet injected at an edge port, the symbolic outcomes whose relation contains
the packet (restricted on the injected, ghost side) must be exactly the simulator's fates:
same disposition, same hops (switch, table, priority, line), same final packet.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segctl.openflow.ofctl import Flow, mac_int, parse_flows
from segctl.topology.network import Network, load_network
from segctl.verifier.headerspace import FIELDS, PIPELINE_FIELDS, HeaderSpace
from segctl.verifier.simulate import CT_EST, CT_NEW, CT_TRK, Packet, simulate
from segctl.verifier.symbolic import Engine, Topology

HS = HeaderSpace()
CT_CHOICES = [CT_TRK | CT_NEW, CT_TRK | CT_EST, CT_TRK | 0x04, CT_TRK | 0x10, CT_TRK | CT_EST | 0x08]

KITCHEN_S1 = """\
table=0,priority=100,in_port=1,dl_src=02:00:00:00:00:01,ip,nw_src=10.0.0.1,vlan_tci=0/0x1fff,actions=meter:1,write_metadata:0x11/0xff,goto_table:10
table=0,priority=100,in_port=1,arp,dl_src=02:00:00:00:00:01,arp_sha=02:00:00:00:00:01,arp_spa=10.0.0.1,actions=write_metadata:0x11/0xff,goto_table:5
table=0,priority=100,in_port=2,dl_src=02:00:00:00:00:02,ip,nw_src=10.0.0.2,actions=write_metadata:0x11/0xff,goto_table:10
table=0,priority=90,in_port=9,dl_vlan=100,actions=pop_vlan,write_metadata:0x11/0xff,goto_table:10
table=0,priority=0,actions=drop
table=5,priority=10,arp,arp_op=1,arp_tpa=10.0.0.254,actions=set_field:2->arp_op,set_field:02:5e:00:00:00:01->arp_sha,set_field:10.0.0.254->arp_spa,set_field:02:00:00:00:00:01->arp_tha,set_field:10.0.0.1->arp_tpa,mod_dl_dst:02:00:00:00:00:01,mod_dl_src:02:5e:00:00:00:01,IN_PORT
table=5,priority=5,arp,arp_tpa=10.0.0.2,actions=output:2
table=10,priority=50,ip,ct_state=-trk,actions=ct(zone=7,table=20)
table=20,priority=60,ip,ct_state=+trk+inv,actions=drop
table=20,priority=50,ip,ct_state=+trk+est,actions=goto_table:30
table=20,priority=40,tcp,tcp_dst=0x1f90/0xfff0,ct_state=+trk+new,actions=conjunction(4,1/2)
table=20,priority=40,udp,udp_dst=53,ct_state=+trk+new,actions=conjunction(4,1/2)
table=20,priority=40,ip,nw_dst=10.0.0.0/24,ct_state=+trk+new,actions=conjunction(4,2/2)
table=20,priority=40,ip,nw_dst=10.9.0.0/16,ct_state=+trk+new,actions=conjunction(4,2/2)
table=20,priority=40,conj_id=4,ip,actions=ct(commit,zone=7),goto_table:30
table=20,priority=30,icmp,icmp_type=8,ct_state=+trk+new,actions=ct(commit,zone=7),goto_table:30
table=20,priority=0,actions=drop
table=30,priority=20,ip,dl_dst=02:00:00:00:00:02,actions=output:2
table=30,priority=20,ip,dl_dst=02:00:00:00:00:01,actions=output:1
table=30,priority=15,ip,dl_dst=02:5e:00:00:00:01,nw_dst=10.9.0.0/16,actions=dec_ttl,mod_dl_src:02:5e:00:00:00:01,mod_dl_dst:02:00:00:00:00:04,push_vlan:0x8100,set_field:4196->vlan_vid,output:9
table=30,priority=10,ip,nw_dst=10.0.0.66,actions=output:42
table=30,priority=10,ip,nw_dst=10.0.0.67,actions=controller
table=30,priority=10,ip,nw_dst=10.0.0.68,actions=set_field:0x5->reg2
table=30,priority=5,ip,nw_dst=10.0.0.69,actions=output:9
"""
KITCHEN_S2 = """\
table=0,priority=100,in_port=9,dl_vlan=100,actions=pop_vlan,goto_table:1
table=0,priority=100,in_port=1,actions=push_vlan:0x8100,set_field:4196->vlan_vid,IN_PORT
table=1,priority=10,ip,dl_dst=02:00:00:00:00:04,nw_ttl=64,actions=output:1
table=1,priority=9,ip,dl_dst=02:00:00:00:00:04,actions=output:9
table=1,priority=5,ip,actions=IN_PORT
"""
KITCHEN_TOPO = Topology(
    links={("s1", 9): ("s2", 9), ("s2", 9): ("s1", 9)},
    edges={("s1", 1): "t/a", ("s1", 2): "t/b", ("s2", 1): "t/d"},
)
MACS = [0x020000000001, 0x020000000002, 0x020000000004, 0x025E00000001, 0xFFFFFFFFFFFF, 0x02AB00000009]
IPS = [
    0x0A000001,
    0x0A000002,
    0x0A0000FE,
    0x0A090035,
    0x0A000042,
    0x0A000043,
    0x0A000044,
    0x0A000045,
    0x0B000001,
]


def _to_model(packet: Packet) -> dict[str, int]:
    """The simulator's packet in the header-space field names."""
    arp = packet.eth_type == 0x0806
    model = {
        name: getattr(packet, name)
        for name in FIELDS
        if name not in PIPELINE_FIELDS and hasattr(packet, name)
    }
    model["vlan_present"] = packet.vlan_tci >> 12 & 1
    model["vlan_vid"] = packet.vlan_tci & 0xFFF
    model["ip_src"] = packet.arp_spa if arp else packet.ip_src
    model["ip_dst"] = packet.arp_tpa if arp else packet.ip_dst
    return model


@st.composite
def packets(draw: st.DrawFn, macs: list[int], ips: list[int], in_port: int) -> Packet:
    def pick(values: list[int], bits: int) -> int:
        return draw(st.one_of(st.sampled_from(values), st.integers(0, (1 << bits) - 1)))

    kind = draw(st.sampled_from(["tcp", "udp", "icmp", "ip", "arp", "ipv6", "other"]))
    fields: dict[str, Any] = {
        "in_port": in_port,
        "eth_src": pick(macs, 48),
        "eth_dst": pick(macs, 48),
        "vlan_tci": draw(st.sampled_from([0, 0, 0, 0x1064, 0x1065])),
    }
    if kind == "arp":
        fields |= {
            "eth_type": 0x0806,
            "arp_op": draw(st.sampled_from([1, 2, 3])),
            "arp_spa": pick(ips, 32),
            "arp_tpa": pick(ips, 32),
            "arp_sha": pick(macs, 48),
            "arp_tha": pick(macs, 48),
        }
    elif kind == "ipv6":
        fields |= {
            "eth_type": 0x86DD,
            "ip_proto": draw(st.sampled_from([6, 17, 58])),
            "ipv6_src": pick([1], 128),
        }
    elif kind == "other":
        fields |= {"eth_type": pick([0x88CC, 0x8100, 0x0842], 16)}
    else:
        proto = {"tcp": 6, "udp": 17, "icmp": 1, "ip": draw(st.integers(0, 255))}[kind]
        fields |= {
            "eth_type": 0x0800,
            "ip_proto": proto,
            "ip_src": pick(ips, 32),
            "ip_dst": pick(ips, 32),
            "nw_ttl": draw(st.sampled_from([0, 1, 2, 64, 255])),
        }
        if proto in (6, 17):
            fields |= {
                "tp_src": pick([53, 40000], 16),
                "tp_dst": pick([53, 80, 5432, 8080, 8081, 8095, 22], 16),
            }
        elif proto == 1:
            fields |= {"icmp_type": draw(st.sampled_from([0, 8, 3])), "icmp_code": draw(st.integers(0, 3))}
    return Packet(**fields)


@st.composite
def targeted(
    draw: st.DrawFn, src_mac: int, src_ip: int, macs: list[int], ips: list[int], in_port: int
) -> Packet:
    """A well-formed packet from the endpoint toward a known MAC/IP: reaches deep into the pipeline."""
    kind = draw(st.sampled_from(["tcp", "udp", "icmp", "arp"]))
    base = {"in_port": in_port, "eth_src": src_mac, "eth_dst": draw(st.sampled_from(macs))}
    if kind == "arp":
        return Packet(
            **base,
            eth_type=0x0806,
            arp_op=draw(st.sampled_from([1, 2])),
            arp_spa=src_ip,
            arp_tpa=draw(st.sampled_from(ips)),
            arp_sha=src_mac,
            arp_tha=draw(st.sampled_from([0, *macs])),
        )
    proto = {"tcp": 6, "udp": 17, "icmp": 1}[kind]
    ports = (
        {"tp_src": 40000, "tp_dst": draw(st.sampled_from([53, 80, 5432, 8080, 8081, 22]))}
        if proto != 1
        else {}
    )
    icmp = {"icmp_type": draw(st.sampled_from([8, 0]))} if proto == 1 else {}
    return Packet(
        **base,
        eth_type=0x0800,
        ip_proto=proto,
        ip_src=src_ip,
        ip_dst=draw(st.sampled_from(ips)),
        nw_ttl=draw(st.sampled_from([64, 64, 1])),
        **ports,
        **icmp,
    )


def _key_sym(o: Any, packet: Packet) -> tuple[Any, ...]:
    d = o.disposition
    hops = tuple((h.switch, h.table, h.priority, h.line) for h in o.hops)
    return (d.kind, d.switch, d.table, d.port, d.endpoint, hops)


def _key_sim(r: Any) -> tuple[Any, ...]:
    hops = tuple((h.switch, h.table, h.priority, h.line) for h in r.hops)
    return (r.kind, r.switch, r.table, r.port, r.endpoint, hops)


@lru_cache(maxsize=32)
def _engine(name: str, ct_state: int) -> Engine:
    tables, topo = _TABLES[name]
    return Engine(tables, topo, hs=HS, ct_states=HS.eq("ct_state", ct_state))


@lru_cache(maxsize=256)
def _outcomes(name: str, ct_state: int, switch: str, port: int) -> list[Any]:
    return _engine(name, ct_state).inject(switch, port)


def check_agreement(name: str, switch: str, packet: Packet, ct_state: int) -> None:
    tables, topo = _TABLES[name]
    fates = simulate(tables, topo.links, topo.edges, switch, packet, ct_default=ct_state)
    model = _to_model(packet)
    matched = []
    for o in _outcomes(name, ct_state, switch, packet.in_port):
        hit = HS.restrict(o.space, model, ghost=True)
        if not HS.is_empty(hit):
            matched.append((o, hit))
    assert Counter(_key_sym(o, packet) for o, _ in matched) == Counter(_key_sim(r) for r in fates), packet
    # The final packets agree too (the relation is a function of the injected packet).
    finals = {_key_sym(o, packet): hit for o, hit in matched}
    for r in fates:
        expected = HS.restrict(HS.true, _to_model(r.packet))
        assert HS.is_empty(HS.final(finals[_key_sim(r)]) & ~expected), (packet, r)


def _compiled(example: str) -> tuple[dict[str, list[Flow]], Topology, Network]:
    from segctl.flows.compiler import compile_network  # tests only: the verifier never imports it

    network = load_network(example)
    programs = compile_network(network)
    tables = {sw: parse_flows(p.flows_text(), source=sw) for sw, p in programs.items()}
    return tables, Topology.from_network(network), network


_TABLES: dict[str, tuple[dict[str, list[Flow]], Topology]] = {
    "kitchen": (
        {"s1": parse_flows(KITCHEN_S1, source="s1"), "s2": parse_flows(KITCHEN_S2, source="s2")},
        KITCHEN_TOPO,
    ),
}
_NETWORKS: dict[str, Network] = {}
for _example in ("examples/two-tenants.yaml", "examples/leaf-spine.yaml"):
    _t, _topo, _net = _compiled(_example)
    _TABLES[_example] = (_t, _topo)
    _NETWORKS[_example] = _net


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_kitchen_sink_tables_agree(data: st.DataObject) -> None:
    switch, port, mac, ip = data.draw(
        st.sampled_from([("s1", 1, MACS[0], IPS[0]), ("s1", 2, MACS[1], IPS[1]), ("s2", 1, MACS[2], IPS[3])])
    )
    if data.draw(st.booleans()):
        packet = data.draw(targeted(mac, ip, MACS, IPS, port))
    else:
        packet = data.draw(packets(MACS, IPS, port))
    check_agreement("kitchen", switch, packet, data.draw(st.sampled_from(CT_CHOICES)))


@pytest.mark.parametrize("example", ["examples/two-tenants.yaml", "examples/leaf-spine.yaml"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_examples_agree(example: str, data: st.DataObject) -> None:
    network = _NETWORKS[example]
    macs = [mac_int(ep.mac) for ep in network.endpoints]
    macs += [mac_int(t.gateway_mac) for t in network.tenants] + [0xFFFFFFFFFFFF]
    ips = [int(ep.ip) for ep in network.endpoints] + [int(s.gateway) for s in network.segments if s.gateway]
    ep = data.draw(st.sampled_from(list(network.endpoints)))
    mode = data.draw(st.sampled_from(["random", "bound", "targeted", "targeted"]))
    if mode == "targeted":
        packet = data.draw(targeted(mac_int(ep.mac), int(ep.ip), macs, ips, ep.port))
    else:
        packet = data.draw(packets(macs, ips, ep.port))
        if mode == "bound":
            packet = _from(packet, ep.mac, int(ep.ip))
    check_agreement(example, ep.switch, packet, data.draw(st.sampled_from(CT_CHOICES)))


def _from(packet: Packet, mac: str, ip: int) -> Packet:
    from dataclasses import replace

    src = mac_int(mac)
    if packet.eth_type == 0x0806:
        return replace(packet, eth_src=src, arp_sha=src, arp_spa=ip, vlan_tci=0)
    return replace(packet, eth_src=src, ip_src=ip if packet.eth_type == 0x0800 else 0, vlan_tci=0)


def test_a_disagreement_would_be_caught() -> None:
    """Mutate one rule's priority in the simulator's copy: the check must fail."""
    tables, topo = _TABLES["kitchen"]
    packet = Packet(
        in_port=2,
        eth_src=0x020000000002,
        eth_dst=0x020000000001,
        eth_type=0x0800,
        ip_proto=1,
        ip_src=0x0A000002,
        ip_dst=0x0A000001,
        nw_ttl=64,
        icmp_type=8,
    )
    fates = simulate(tables, topo.links, topo.edges, "s1", packet, ct_default=CT_TRK | CT_NEW)
    assert [(r.kind, r.endpoint) for r in fates] == [("delivered", "t/a")]
    assert fates[0].commits == (("s1", 20, 7),)
    broken = dict(tables)
    broken["s1"] = [f if "icmp_type" not in f.text else _drop(f) for f in tables["s1"]]
    _TABLES["broken"] = (broken, topo)
    try:
        with pytest.raises(AssertionError):
            bad = simulate(tables, topo.links, topo.edges, "s1", packet, ct_default=CT_TRK | CT_NEW)
            model = _to_model(packet)
            sym = [
                o
                for o in _engine("broken", CT_TRK | CT_NEW).inject("s1", 2)
                if not HS.is_empty(HS.restrict(o.space, model, ghost=True))
            ]
            assert Counter(_key_sym(o, packet) for o in sym) == Counter(_key_sim(r) for r in bad)
    finally:
        del _TABLES["broken"]


def _drop(flow: Flow) -> Flow:
    from dataclasses import replace

    from segctl.openflow.ofctl import Drop

    return replace(flow, actions=(Drop(),))
