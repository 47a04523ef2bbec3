"""Each property on its own: one targeted change to compiled flows makes exactly it fail."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segctl.flows.compiler import compile_network
from segctl.openflow.ofctl import Flow, parse_flows
from segctl.topology.network import Network, load_network
from segctl.verifier.headerspace import HeaderSpace
from segctl.verifier.properties import PROPERTIES
from segctl.verifier.report import VerificationReport
from segctl.verifier.spaces import port_range as _range
from segctl.verifier.verify import verify

ROOT = Path(__file__).resolve().parents[2] / "examples"
TWO, LEAF = ROOT / "two-tenants.yaml", ROOT / "leaf-spine.yaml"
HS = HeaderSpace()


def _texts(network: Network) -> dict[str, list[str]]:
    return {n: p.flows_text().splitlines() for n, p in compile_network(network).items()}


def _verify(network: Network, texts: dict[str, list[str]]) -> VerificationReport:
    tables: dict[str, list[Flow]] = {n: parse_flows("\n".join(lines)) for n, lines in texts.items()}
    return verify(network, tables)


def _failing(report: VerificationReport) -> set[str]:
    return {p.id for p in report.properties if not p.holds}


@pytest.fixture(scope="module")
def two() -> Network:
    return load_network(TWO)


def test_every_property_is_reported_in_order(two: Network) -> None:
    report = _verify(two, _texts(two))
    # without external networks, the six (PROPERTIES lists their three after them)
    assert [p.id for p in report.properties] == [p[0] for p in PROPERTIES][:6]
    assert report.ok


def test_isolation_any_ct_state(two: Network) -> None:
    texts = _texts(two)
    # blue's established traffic to red's MAC is delivered: only visible when ct says est
    texts["s1"].insert(0, "table=70,priority=3950,ip,ct_state=+est+trk,metadata=0x2/0xfff,actions=output:1")
    report = _verify(two, texts)
    assert "isolation" in _failing(report)
    cx = report.property("isolation").counterexamples[0]
    assert cx.src.startswith("blue/") and cx.delivered_to == "red/r1"
    assert "trk,est" in cx.ct_states[-1] and cx.confirmed


def test_conformance_and_allowed_delivered(two: Network) -> None:
    texts = _texts(two)
    # r1 -> r2 egress delivery removed: the grant is no longer delivered (over-blocking)
    texts["s1"] = [
        s for s in texts["s1"] if not ("table=80,priority=1000" in s and "output:2" in s and "ip," in s)
    ]
    report = _verify(two, texts)
    assert _failing(report) == {"allowed-delivered"}
    cx = report.property("allowed-delivered").counterexamples[0]
    assert cx.disposition_kind == "dropped" and cx.hops[-1].table == 80


def test_spoof_guard_only(two: Network) -> None:
    texts = _texts(two)
    texts["s1"] = [
        s.replace(",nw_src=10.0.0.11", "") if s.startswith("table=0,") and "in_port=1,ip" in s else s
        for s in texts["s1"]
    ]
    report = _verify(two, texts)
    assert "spoof-guard" in _failing(report) and "isolation" not in _failing(report)
    cx = report.property("spoof-guard").counterexamples[0]
    assert cx.packet["ip_src"] != "10.0.0.11" and cx.disposition_kind == "delivered"


@pytest.mark.parametrize("engine", ["wavefront", "reference"])
def test_router_advertisements_between_endpoints_break_conformance(engine: str) -> None:
    """Without the RA guard, an endpoint's router advertisement (or redirect) unicast to an
    IPv6 peer of its non-strict segment is delivered: IPv6 there is allowed, but never the
    router-only ICMPv6 messages, so the verifier shows one with its trace. The segment's
    intra-segment rule also commits it (OVS conntrack would call an RA invalid, but the
    proof does not count on a conntrack state), so commit safety fails too."""
    network = load_network(ROOT.parent / "segctl" / "mininet_scenarios" / "intents" / "strict-segment.yaml")
    texts = _texts(network)
    assert _verify(network, texts).ok
    texts["s1"] = [s for s in texts["s1"] if "icmp_type=134" not in s and "icmp_type=137" not in s]
    tables = {n: parse_flows("\n".join(lines)) for n, lines in texts.items()}
    report = verify(network, tables, engine=engine)
    assert _failing(report) == {"conformance", "commit-safety"}
    found = report.property("conformance").counterexamples
    assert {(cx.src, cx.delivered_to) for cx in found} == {("lab/o1", "lab/o2"), ("lab/o2", "lab/o1")}
    for cx in found:
        assert cx.packet["ip_proto"] == "58" and cx.packet["icmp_type"] in ("134", "137")
        assert cx.confirmed and "icmp6" in cx.ofproto_flow and "icmpv6_type=13" in cx.ofproto_flow


def test_commit_in_another_tenants_zone(two: Network) -> None:
    texts = _texts(two)
    texts["s1"] = [
        s.replace("ct(commit,zone=1)", "ct(commit,zone=2)") if s.startswith("table=30,") else s
        for s in texts["s1"]
    ]
    report = _verify(two, texts)
    assert "commit-safety" in _failing(report)
    cx = report.property("commit-safety").counterexamples[0]
    assert "zone=2" in cx.commit and cx.src.startswith("red/")


def test_loop_across_the_fabric() -> None:
    network = load_network(LEAF)
    texts = _texts(network)
    for sw, rule in (
        ("spine1", "in_port=1,actions=output:2"),
        ("leaf2", "in_port=1,actions=output:2"),
        ("spine2", "in_port=2,actions=output:1"),
        ("leaf1", "in_port=2,actions=output:1"),
    ):
        texts[sw].insert(0, f"table=0,priority=60000,{rule}")
    report = _verify(network, texts)
    assert "loop-free" in _failing(report)
    assert any(cx.disposition_kind == "loop" for cx in report.property("loop-free").counterexamples)


@given(st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 65535))
def test_port_ranges_are_exact(a: int, b: int, x: int) -> None:
    lo, hi = min(a, b), max(a, b)
    space = _range(HS, "tp_dst", lo, hi, 16)
    assert (not HS.is_empty(space & HS.eq("tp_dst", x))) == (lo <= x <= hi)


def test_the_gate_takes_its_safety_properties_from_the_registry() -> None:
    """The gate's partition-time safety list is the registry's safety flags: every id it
    names is a property the verifier reports, and every safety property is in it."""
    from segctl.controller.gate import SAFETY_PROPERTIES
    from segctl.verifier.properties import OUTSIDE, REGISTRY

    ids = {p.id for p in REGISTRY + OUTSIDE}
    assert ids >= SAFETY_PROPERTIES
    assert {p.id for p in REGISTRY + OUTSIDE if p.safety} == SAFETY_PROPERTIES
    assert {"isolation", "spoof-guard", "commit-safety", "egress", "exposure"} <= SAFETY_PROPERTIES
    assert not {"allowed-delivered", "loop-free", "external-delivered"} & SAFETY_PROPERTIES


# ---------------------------------------------------------------------------- IPv6 under policy

DUAL = ROOT / "dual-stack.yaml"


@pytest.fixture(scope="module")
def dual() -> Network:
    return load_network(DUAL)


@pytest.mark.parametrize("engine", ["wavefront", "reference"])
def test_a_strict_segment_ipv6_policy_not_compiled_is_not_delivered(dual: Network, engine: str) -> None:
    """db-replica (strict segment db) allows tcp/5432 from db2 to db1 in both families, and
    web-to-db from web1 routed: with s1's IPv6 service clauses gone, property 3 shows the
    IPv6 connections that no longer arrive, from both (the IPv4 ones still do; the shared
    DNS's tcp6/53 keeps its clauses)."""
    texts = _texts(dual)
    assert _verify(dual, texts).ok
    texts["s1"] = [
        s for s in texts["s1"] if not (s.startswith("table=30,") and "tcp6" in s and "tcp_dst=5432" in s)
    ]
    tables = {n: parse_flows("\n".join(lines)) for n, lines in texts.items()}
    report = verify(dual, tables, engine=engine)
    assert _failing(report) == {"allowed-delivered"}
    cxs = {cx.src: cx for cx in report.property("allowed-delivered").counterexamples}
    assert sorted(cxs) == ["acme/db2", "acme/web1"]
    for cx in cxs.values():
        assert cx.delivered_to is None and cx.packet["eth_type"] == "0x86dd" and cx.packet["tp_dst"] == "5432"
    assert cxs["acme/db2"].packet["ipv6_dst"] in ("fd00:1:2::11", "fe80::ff:fe0a:201")
    assert cxs["acme/web1"].packet["ipv6_dst"] == "fd00:1:2::11"  # routed: the global address only


def test_intra_segment_ipv6_committing_all_link_local_breaks_commit_safety(dual: Network) -> None:
    """The intra-segment rule commits IPv6 to its members' link-local addresses, not to
    fe80::/64: with the prefix, web1's packets to db1's link-local address (strict segment
    db, no grant) are committed in acme's zone, where db1 could answer."""
    texts = _texts(dual)
    member = "ipv6_dst=fe80::ff:fe0a:101,"
    rule = next(s for s in texts["s1"] if s.startswith("table=30,priority=3500") and member in s)
    texts["s1"].append(rule.replace(member, "ipv6_dst=fe80::/64,"))
    report = _verify(dual, texts)
    assert _failing(report) == {"commit-safety"}
    cx = report.property("commit-safety").counterexamples[0]
    # another segment's link-local address: db1's, or the shared DNS's (infra/svc)
    assert cx.src == "acme/web1" and cx.packet["ipv6_dst"] in ("fe80::ff:fe0a:201", "fe80::ff:fe09:35")


def test_ipv6_across_segments_beyond_the_grants_breaks_conformance(dual: Network) -> None:
    """Routed IPv6 carries what the grants allow: web-to-db is tcp/5432, so switches that
    deliver web1's tcp6/22 to db1 (s1 sends it in db's fabric VLAN, s2's policy_dst passes
    it) fail conformance."""
    texts = _texts(dual)
    texts["s1"].append(
        "table=0,priority=2000,in_port=1,tcp6,tcp_dst=22,"
        "actions=push_vlan:0x8100,set_field:4197->vlan_vid,output:10"
    )
    texts["s2"].append(
        "table=70,priority=3999,tcp6,metadata=0x2001/0xffffffff,tcp_dst=22,actions=goto_table:80"
    )
    report = _verify(dual, texts)
    assert "conformance" in _failing(report)
    found = {(cx.src, cx.delivered_to) for cx in report.property("conformance").counterexamples}
    assert found == {("acme/web1", "acme/db1")}
