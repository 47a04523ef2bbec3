"""The unmutated examples verify clean, and the tables agree with the intent-level analysis."""

from __future__ import annotations

from pathlib import Path

import pytest

from segctl.flows.compiler import compile_network
from segctl.openflow.ofctl import Flow, mac_int, parse_flows
from segctl.topology.analysis import allowed_grants, expected_reachability
from segctl.topology.network import Network, first_hop_mac, load_network
from segctl.verifier.counterexample import trace_packet
from segctl.verifier.simulate import Packet
from segctl.verifier.verify import verify

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
#: (proto, number, port, icmp type): ICMP as echo request (8) and timestamp request (13).
SERVICES = [
    ("tcp", 6, 8080, None),
    ("tcp", 6, 5432, None),
    ("udp", 17, 53, None),
    ("tcp", 6, 22, None),
    ("icmp", 1, None, 8),
    ("icmp", 1, None, 13),
]


def _tables(network: Network) -> dict[str, list[Flow]]:
    return {n: parse_flows(p.flows_text()) for n, p in compile_network(network).items()}


@pytest.fixture(scope="module", params=EXAMPLES, ids=[p.stem for p in EXAMPLES])
def example(request: pytest.FixtureRequest) -> tuple[Network, dict[str, list[Flow]]]:
    network = load_network(request.param)
    return network, _tables(network)


def test_example_verifies_clean(example: tuple[Network, dict[str, list[Flow]]]) -> None:
    network, tables = example
    report = verify(network, tables)
    assert report.ok, [c.message for c in report.violations]
    six = ["isolation", "conformance", "allowed-delivered", "spoof-guard", "loop-free", "commit-safety"]
    outside = ["egress", "exposure", "external-delivered", "standby-uplink"] if network.externals else []
    assert [p.id for p in report.properties] == six + outside
    assert all(p.counts for p in report.properties)
    assert report.to_json()["ok"] is True


def test_matrix_agrees_with_analysis(example: tuple[Network, dict[str, list[Flow]]]) -> None:
    network, tables = example
    report = verify(network, tables)
    reach = expected_reachability(network)
    for src, row in zip(network.endpoints, report.matrix, strict=True):
        for dst, cell in zip(network.endpoints, row, strict=True):
            grants = reach.get((src.key, dst.key), ())
            assert cell.status != "violation"
            assert (cell.status in ("allowed", "shared")) == bool(grants), (src.qualified, dst.qualified)
            if grants:
                assert cell.observed, f"{src.qualified} -> {dst.qualified} granted but never delivered"
            if src.tenant != dst.tenant and not grants:
                assert not cell.observed


def test_concrete_packets_agree_with_analysis(example: tuple[Network, dict[str, list[Flow]]]) -> None:
    """A new IPv4 packet per (src, dst, service) is delivered exactly when the intent allows it."""
    network, tables = example
    for src in network.endpoints:
        for dst in network.endpoints:
            if src.key == dst.key:
                continue
            eth_dst = first_hop_mac(network, src, dst)
            for proto, number, port, icmp_type in SERVICES:
                packet = Packet(
                    in_port=src.port,
                    eth_src=mac_int(src.mac),
                    eth_dst=mac_int(eth_dst),
                    eth_type=0x0800,
                    ip_proto=number,
                    ip_src=int(src.ip),
                    ip_dst=int(dst.ip),
                    nw_ttl=64,
                    tp_src=40000,
                    tp_dst=port or 0,
                    icmp_type=icmp_type or 0,
                )
                fates = trace_packet(network, tables, src.switch, packet)
                delivered = {r.endpoint for r, _ in fates if r.kind == "delivered"}
                allowed = bool(allowed_grants(network, src, dst, proto, port, icmp_type=icmp_type))
                assert delivered == ({dst.qualified} if allowed else set()), (
                    src.qualified,
                    dst.qualified,
                    proto,
                    port,
                    icmp_type,
                )
