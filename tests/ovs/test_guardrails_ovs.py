"""Guardrails and a deny policy on real OVS: the compiled band, loaded into a bridge, does
what the ordered semantics say, as ``ovs-appctl ofproto/trace`` shows (and the verifier
proves the same tables). web -> app: the tenant policy allows 22, 5432 and 8080, a
guardrail denies ssh across segments, a deny policy (priority 100) takes 5432; ops -> app:
a pass hands ssh to the tenant's own policy, and a guardrail allow admits ping although
no tenant policy does.
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
guardrails:
  - {name: ops-ssh, priority: 1, action: pass, from: {segment: ops}, services: [{proto: tcp, port: 22}]}
  - {name: no-ssh, priority: 2, action: deny, scope: cross-segment, services: [{proto: tcp, port: 22}]}
  - {name: ops-ping, priority: 3, action: allow, from: {segment: ops}, services: [{proto: icmp, type: 8}]}
tenants:
  - name: t
    segments:
      - {name: web, cidr: 10.6.1.0/24, gateway: 10.6.1.1, strict: true}
      - {name: app, cidr: 10.6.2.0/24, gateway: 10.6.2.1, strict: true}
      - {name: ops, cidr: 10.6.9.0/24, gateway: 10.6.9.1, strict: true}
    endpoints:
      - {name: a, segment: web, mac: "02:00:00:86:01:0a", ip: 10.6.1.10, attach: "s1:10"}
      - {name: b, segment: app, mac: "02:00:00:86:02:0a", ip: 10.6.2.10, attach: "s1:12"}
      - {name: o, segment: ops, mac: "02:00:00:86:09:0a", ip: 10.6.9.10, attach: "s1:14"}
    policies:
      - {name: web-app, from: {segment: web}, to: {segment: app},
         services: [{proto: tcp, ports: [22, 5432, 8080]}]}
      - {name: no-db, action: deny, priority: 100, from: {segment: web}, to: {segment: app},
         services: [{proto: tcp, port: 5432}]}
      - {name: ops-ssh, from: {segment: ops}, to: {segment: app}, services: [{proto: tcp, port: 22}]}
"""
NEW = ["trk,new", "trk,new"]  # the ct_src lookup, the ct_dst lookup


def _packet(network: Network, src: str, dst: str, what: str) -> str:
    s, d = network.endpoint("t", src), network.endpoint("t", dst)
    gateway = network.tenant("t").gateway_mac  # every pair here is routed (strict segments)
    proto = "icmp" if what == "ping" else "tcp"
    head = f"in_port={s.port},{proto},dl_src={s.mac},dl_dst={gateway},nw_src={s.ip},nw_dst={d.ip},nw_ttl=64"
    if what == "ping":
        return f"{head},icmp_type=8,icmp_code=0"
    return f"{head},tcp_src=40000,tcp_dst={what}"


@pytest.mark.ovs
def test_guardrail_band_on_real_ovs(lab_prefix: str, tmp_path: Path) -> None:
    network = resolve(load_intent_text(INTENT))
    flows = compile_network(network)["s1"].flows_text()
    assert verify(network, {"s1": parse_flows(flows, source="s1")}).ok
    with one_switch_tracer(lab_prefix, tmp_path, flows, ports=(10, 12, 14)) as delivered:
        assert delivered(_packet(network, "a", "b", "8080"), NEW) == [12]  # the tenant policy
        assert delivered(_packet(network, "a", "b", "22"), NEW) == []  # guardrail no-ssh
        assert delivered(_packet(network, "a", "b", "5432"), NEW) == []  # deny policy no-db
        assert delivered(_packet(network, "o", "b", "22"), NEW) == [12]  # pass -> tenant ops-ssh
        assert delivered(_packet(network, "o", "b", "ping"), NEW) == [12]  # guardrail ops-ping
        assert delivered(_packet(network, "o", "a", "22"), NEW) == []  # passed, no tenant policy
        assert delivered(_packet(network, "a", "b", "ping"), NEW) == []  # default deny
