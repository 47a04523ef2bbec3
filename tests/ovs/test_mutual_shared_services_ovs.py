"""Two tenants that provide a shared service to each other, on real OVS.

Tenant t2's e1 provides tcp/53 to t3, and t3's e1 provides tcp/9100 to t2: each endpoint is
the provider of the other's consumer. The reply route of a shared service (table 40, to the
consumer-zone lookup of table 45) used to match the addresses only, so it also caught the
provider's *new* connection to that consumer, and table 45 dropped it. The verifier found it
(allowed-delivered); here ``ofproto/trace`` on a bridge loaded with the compiled flows shows
the connection and the replies are delivered, and the pre-fix rule drops the connection.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.datapath import one_switch_tracer

from segctl.flows.compiler import compile_network
from segctl.openflow.ofctl import parse_flows
from segctl.topology.load import load_intent_text
from segctl.topology.network import Network, first_hop_mac, resolve
from segctl.verifier.verify import verify

INTENT = """
version: 1
fabric:
  switches: [{name: s1, dpid: 1}]
tenants:
  - name: t2
    segments: [{name: g1, cidr: 10.2.1.0/24, gateway: 10.2.1.1}]
    endpoints:
      - {name: e1, segment: g1, mac: "02:00:00:82:01:01", ip: 10.2.1.11, attach: "s1:10"}
  - name: t3
    segments: [{name: g1, cidr: 10.3.1.0/24, gateway: 10.3.1.1}]
    endpoints:
      - {name: e1, segment: g1, mac: "02:00:00:83:01:01", ip: 10.3.1.11, attach: "s1:12"}
shared_services:
  - {name: x0, provider: {tenant: t2, endpoints: [e1]}, consumers: [{tenant: t3}],
     services: [{proto: tcp, port: 53}]}
  - {name: x1, provider: {tenant: t3, endpoints: [e1]}, consumers: [{tenant: t2}],
     services: [{proto: tcp, port: 9100}]}
"""


def _network() -> Network:
    return resolve(load_intent_text(INTENT))


def _delivered(flows: str, lab_prefix: str, tmp_path: Path, flow: str, ct_next: list[str]) -> list[int]:
    """Load ``flows`` into a one-bridge lab with the two endpoints' ports; trace ``flow``
    (``{t2}``/``{t3}`` stand for the ports) and return where it leaves, as endpoint port numbers."""
    with one_switch_tracer(lab_prefix, tmp_path, flows) as trace:
        return trace(flow, ct_next)


def _packet(network: Network, src: str, dst: str, *, tp_src: int, tp_dst: int) -> str:
    s, d = network.endpoint(src, "e1"), network.endpoint(dst, "e1")
    return (
        f"in_port={s.port},tcp,dl_src={s.mac},dl_dst={first_hop_mac(network, s, d)},"
        f"nw_src={s.ip},nw_dst={d.ip},nw_ttl=64,tcp_src={tp_src},tcp_dst={tp_dst}"
    )


@pytest.mark.ovs
def test_each_provider_reaches_the_other_and_replies_come_back(lab_prefix: str, tmp_path: Path) -> None:
    network = _network()
    flows = compile_network(network)["s1"].flows_text()
    assert verify(network, {"s1": parse_flows(flows, source="s1")}).ok
    new = ["trk,new", "trk,new"]  # ct_src lookup, ct_dst lookup
    # t2/e1 opens x1 (tcp/9100) to t3/e1, and t3/e1 opens x0 (tcp/53) to t2/e1
    syn = _packet(network, "t2", "t3", tp_src=40000, tp_dst=9100)
    assert _delivered(flows, lab_prefix, tmp_path, syn, new) == [12]
    syn = _packet(network, "t3", "t2", tp_src=40001, tp_dst=53)
    assert _delivered(flows, lab_prefix, tmp_path, syn, new) == [10]
    # t2/e1 answers x0 from port 53: est+rpl in its zone, then in t3's zone (table 45), then at t3
    reply = _packet(network, "t2", "t3", tp_src=53, tp_dst=40001)
    est = ["trk,est,rpl", "trk,est,rpl", "trk,est,rpl"]
    assert _delivered(flows, lab_prefix, tmp_path, reply, est) == [12]


@pytest.mark.ovs
def test_the_address_only_reply_route_drops_the_new_connection(lab_prefix: str, tmp_path: Path) -> None:
    """The rule as it was (no ``ct_state`` match) sends the new connection to table 45,
    which drops it: what the fix changes, shown on OVS and by the verifier."""
    network = _network()
    flows = compile_network(network)["s1"].flows_text()
    routes = [line for line in flows.splitlines() if line.startswith("table=40,priority=1500")]
    assert routes and all("ct_state=+est+rpl+trk," in line for line in routes)
    old = "\n".join(
        line.replace("ct_state=+est+rpl+trk,", "") if line in routes else line for line in flows.splitlines()
    )
    syn = _packet(network, "t2", "t3", tp_src=40000, tp_dst=9100)
    assert _delivered(old + "\n", lab_prefix, tmp_path, syn, ["trk,new", "trk,new"]) == []
    report = verify(network, {"s1": parse_flows(old, source="s1")})
    assert not report.property("allowed-delivered").holds
