"""ICMP by type on real OVS: a policy allowing ``{proto: icmp, type: 8}`` compiles to rules
that deliver an echo request, pass its echo reply as the connection's reply, and drop an
ICMP timestamp request (type 13), as ``ovs-appctl ofproto/trace`` shows on a bridge loaded
with the compiled flows.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.datapath import one_switch_tracer

from segctl.flows.compiler import compile_network
from segctl.openflow.ofctl import parse_flows
from segctl.topology.load import load_intent_text
from segctl.topology.network import Network, resolve
from segctl.verifier.verify import verify

INTENT = """
version: 1
fabric:
  switches: [{name: s1, dpid: 1}]
tenants:
  - name: t
    segments: [{name: lan, cidr: 10.4.0.0/24, gateway: 10.4.0.1, strict: true}]
    endpoints:
      - {name: a, segment: lan, mac: "02:00:00:84:00:0a", ip: 10.4.0.10, attach: "s1:10"}
      - {name: b, segment: lan, mac: "02:00:00:84:00:0b", ip: 10.4.0.11, attach: "s1:12"}
    policies:
      - {name: ping, from: {endpoint: a}, to: {endpoint: b}, services: [{proto: icmp, type: 8}]}
"""
NEW = ["trk,new", "trk,new"]  # the ct_src lookup, the ct_dst lookup
REPLY = ["trk,est,rpl", "trk,est,rpl"]


def _icmp(network: Network, src: str, dst: str, icmp_type: int) -> str:
    s, d = network.endpoint("t", src), network.endpoint("t", dst)
    return (
        f"in_port={s.port},icmp,dl_src={s.mac},dl_dst={d.mac},nw_src={s.ip},nw_dst={d.ip},"
        f"nw_ttl=64,icmp_type={icmp_type},icmp_code=0"
    )


@pytest.mark.ovs
def test_echo_request_delivered_timestamp_request_dropped(lab_prefix: str, tmp_path: Path) -> None:
    network = resolve(load_intent_text(INTENT))
    flows = compile_network(network)["s1"].flows_text()
    assert verify(network, {"s1": parse_flows(flows, source="s1")}).ok
    with one_switch_tracer(lab_prefix, tmp_path, flows) as delivered:
        assert delivered(_icmp(network, "a", "b", 8), NEW) == [12]  # echo request
        assert delivered(_icmp(network, "a", "b", 13), NEW) == []  # timestamp request
        assert delivered(_icmp(network, "b", "a", 0), REPLY) == [10]  # echo reply, established
        assert delivered(_icmp(network, "b", "a", 8), NEW) == []  # b may not ping a
