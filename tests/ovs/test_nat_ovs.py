"""Conntrack NAT with real packets: the hand-written SNAT router of
:mod:`support.nat_tables` on a netdev bridge between two namespaces. What the outside host
captures, which connections succeed and which fail is what the verifier's NAT model and
the simulator predict for the same tables."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest
from support.nat_tables import INSIDE, INSIDE_MAC, OUTSIDE, OUTSIDE_MAC, PUBLIC, ROUTER_MAC, SNAT

from segctl.openflow.ofctl import mac_int, parse_flows
from segctl.testbed import Lab, LabSpec, SwitchSpec, ovs, probes
from segctl.testbed import lab as labmod
from segctl.testbed.lab import HostSpec
from segctl.verifier.headerspace import CT_NEW, CT_TRK, HeaderSpace
from segctl.verifier.simulate import Packet, simulate
from segctl.verifier.symbolic import Engine, Topology

pytestmark = pytest.mark.ovs

TABLES = {"s1": parse_flows(SNAT, source="s1")}
TOPOLOGY = Topology(links={}, edges={("s1", 1): "t/in1", ("s1", 2): "t/out1"})


@pytest.fixture(scope="module")
def lab(ovs_available: None) -> Iterator[Lab]:
    prefix = labmod.new_prefix()
    spec = LabSpec(
        prefix,
        [SwitchSpec("s1", 0x5E6C9001)],
        hosts=[
            HostSpec("in1", INSIDE_MAC, f"{INSIDE}/24", "s1", 1, gateway="10.9.0.1",
                     neighbours=(("10.9.0.1", ROUTER_MAC),)),
            HostSpec("out1", OUTSIDE_MAC, f"{OUTSIDE}/24", "s1", 2, neighbours=((PUBLIC, ROUTER_MAC),)),
        ],
    )  # fmt: skip
    try:
        with Lab(spec) as built:
            ovs.add_flows(built.bridge("s1"), SNAT.strip().splitlines())
            yield built
    finally:
        left = labmod.leftovers(prefix)
        if any(left.values()):
            labmod.cleanup(prefix)
            pytest.fail(f"lab {prefix} left behind {left}")


def _ipv4_sources(frames: list[bytes]) -> set[str]:
    out = set()
    for frame in frames:
        if len(frame) >= 34 and frame[12:14] == b"\x08\x00":
            out.add(str(IPv4Address(struct.unpack("!I", frame[26:30])[0])))
    return out


def test_outside_sees_the_translated_source_the_model_predicts(lab: Lab) -> None:
    packet = Packet(
        in_port=1, eth_src=mac_int(INSIDE_MAC), eth_dst=mac_int(ROUTER_MAC), eth_type=0x0800, ip_proto=1,
        ip_src=int(IPv4Address(INSIDE)), ip_dst=int(IPv4Address(OUTSIDE)), nw_ttl=64, icmp_type=8,
    )  # fmt: skip
    [fate] = simulate(TABLES, TOPOLOGY.links, TOPOLOGY.edges, "s1", packet)
    predicted = str(IPv4Address(fate.packet.ip_src))
    assert (fate.endpoint, predicted) == ("t/out1", PUBLIC)

    with probes.sniffing([(lab.namespace("out1"), lab.host_ifname, "icmp")], settle=0.5) as frames:
        assert probes.ping(lab.namespace("in1"), OUTSIDE, count=2), "the reply is translated back"
    assert _ipv4_sources(frames[0]) >= {predicted}
    assert INSIDE not in _ipv4_sources(frames[0]), "the private source never leaves"


def test_tcp_through_the_translation(lab: Lab) -> None:
    assert probes.tcp_connect(lab.namespace("in1"), OUTSIDE, 8080, listen_ns=lab.namespace("out1"))


def test_outside_cannot_open_a_connection_inward(lab: Lab) -> None:
    """Nothing the outside starts gets in, as run *new* from its port says."""
    hs = HeaderSpace.for_tables(TABLES)
    engine = Engine(TABLES, TOPOLOGY, hs=hs, ct_states=hs.eq("ct_state", CT_TRK | CT_NEW))
    assert not engine.run([("s1", 2)]).delivered()
    assert not probes.ping(lab.namespace("out1"), PUBLIC, count=1)
    assert not probes.tcp_connect(lab.namespace("out1"), PUBLIC, 8081, listen_ns=lab.namespace("in1"))
