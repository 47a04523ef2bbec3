"""A hand-written SNAT router in flow tables (no intent compiles to it): the verifier's NAT
model and real OVS are both run on it (tests/unit/test_nat_model.py, tests/ovs/test_nat_ovs.py)."""

from __future__ import annotations

INSIDE_MAC, OUTSIDE_MAC, ROUTER_MAC = "02:00:00:09:00:0a", "02:00:00:09:00:14", "02:5e:00:00:09:01"
INSIDE, OUTSIDE, PUBLIC = "10.9.0.10", "203.0.113.20", "203.0.113.9"
#: s1:1 is the inside host, s1:2 the outside one. Table 0 sends the inside's IPv4 through a
#: source translation to PUBLIC (zone 9) and the outside's packets to PUBLIC through the
#: reverse lookup; table 1 routes out, table 2 routes established replies back in.
SNAT = f"""
table=0,priority=100,in_port=1,ip,dl_src={INSIDE_MAC},nw_src={INSIDE},nw_dst={OUTSIDE},actions=ct(commit,zone=9,nat(src={PUBLIC}),table=1)
table=0,priority=100,in_port=2,ip,nw_dst={PUBLIC},actions=ct(zone=9,nat,table=2)
table=0,priority=0,actions=drop
table=1,priority=100,ip,actions=set_field:{ROUTER_MAC}->eth_src,set_field:{OUTSIDE_MAC}->eth_dst,output:2
table=2,priority=100,ct_state=+est+rpl+trk,ip,actions=set_field:{ROUTER_MAC}->eth_src,set_field:{INSIDE_MAC}->eth_dst,output:1
table=2,priority=0,actions=drop
"""
INTENT = f"""
version: 1
fabric:
  switches: [{{name: s1, dpid: 1}}]
tenants:
  - name: t
    segments:
      - {{name: inside, cidr: 10.9.0.0/24, gateway: 10.9.0.1}}
      - {{name: outside, cidr: 203.0.113.0/24, gateway: 203.0.113.1}}
    endpoints:
      - {{name: in1, segment: inside, mac: "{INSIDE_MAC}", ip: {INSIDE}, attach: "s1:1"}}
      - {{name: out1, segment: outside, mac: "{OUTSIDE_MAC}", ip: {OUTSIDE}, attach: "s1:2"}}
    policies:
      - {{name: out, from: {{endpoint: in1}}, to: {{endpoint: out1}}, services: [{{proto: any}}]}}
"""
