"""Clause flows shared by several conjunctions on real OVS: an address set named by three
policies that never meet one packet is one flow per member with three ``conjunction()``
actions (``rank_grants`` packs the policies at one priority). ``ofproto/trace`` shows each
policy still admits exactly its own clients on its services."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.datapath import one_switch_tracer
from support.intents import set_users

from segctl.flows.compiler import compile_network
from segctl.openflow.ofctl import parse_flows
from segctl.topology.load import intent_from_document
from segctl.topology.network import resolve
from segctl.verifier.verify import verify

NEW = ["trk,new", "trk,new"]


@pytest.mark.ovs
def test_shared_clause_flows_on_real_ovs(lab_prefix: str, tmp_path: Path) -> None:
    network = resolve(intent_from_document(set_users(3)))
    flows = compile_network(network)["s1"].flows_text()
    assert any(line.count("conjunction(") == 3 for line in flows.splitlines())
    assert verify(network, {"s1": parse_flows(flows, source="s1")}).ok
    ports = sorted(ep.port for ep in network.endpoints)

    def tcp(src: str, dst: str, port: int) -> str:
        s, d = network.endpoint("t", src), network.endpoint("t", dst)
        return (
            f"in_port={s.port},tcp,dl_src={s.mac},dl_dst={d.mac},nw_src={s.ip},nw_dst={d.ip},"
            f"nw_ttl=64,tcp_src=40000,tcp_dst={port}"
        )

    with one_switch_tracer(lab_prefix, tmp_path, flows, ports=ports) as delivered:
        for user in range(3):
            client = f"c{user}x1"
            assert delivered(tcp(client, "b3", 443), NEW) == [13]
            assert delivered(tcp(client, "b7", 8080), NEW) == [17]
            assert delivered(tcp(client, "b3", 22), NEW) == []  # not a service of the set
        assert delivered(tcp("c0x1", "c1x2", 443), NEW) == []  # clients are not in the set
