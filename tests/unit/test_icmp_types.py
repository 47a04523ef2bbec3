"""ICMP type and code in services, end to end: compiled rules, the verifier's service
spaces, live-probe expectations and predictions, the forgery scenario's control packet
(issue 18, point 2).

Validation, the verifier, trace and ``diff --reachability`` have their tests next to
theirs (test_validate, test_engine_agreement, test_trace_cli, test_diff_cli).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from segctl.flows.compiler import compile_network
from segctl.flows.services import service_matches
from segctl.mininet_scenarios.predict import load_predictor
from segctl.mininet_scenarios.probes import expected_outcome, plan_probes
from segctl.mininet_scenarios.scenarios.forgery import plan_attack
from segctl.openflow.ofctl import parse_flows
from segctl.topology.analysis import ServiceMatch, normalize_services
from segctl.topology.load import load_intent_text
from segctl.topology.network import Network, load_network, resolve
from segctl.topology.schema import Service
from segctl.verifier.headerspace import HeaderSpace
from segctl.verifier.spaces import Spaces

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "icmp-types.yaml"


@pytest.fixture(scope="module")
def net() -> Network:
    return load_network(EXAMPLE)


def _variant(old: str, new: str) -> Network:
    """The example without mon2 (whose segment allows mon1 all IPv4), ``old`` replaced by ``new``."""
    lines = [line for line in EXAMPLE.read_text().splitlines(keepends=True) if "name: mon2" not in line]
    text = "".join(lines)
    if old not in text:
        raise AssertionError(f"{old!r} is not in the example")
    return resolve(load_intent_text(text.replace(old, new)))


def _svc(**fields: object) -> Service:
    return Service.model_validate({"proto": "icmp", **fields})


def test_describe_names_type_and_code() -> None:
    assert [_svc().describe(), _svc(type=8).describe(), _svc(type=3, code=4).describe()] == [
        "icmp",
        "icmp/type=8",
        "icmp/type=3,code=4",
    ]
    matches = normalize_services([_svc(type=3, code=4), _svc(type=8), _svc(type=3), _svc(type=8)])
    assert [m.describe() for m in matches] == ["icmp/type=3", "icmp/type=8"]  # type 3 covers its code 4
    assert [m.describe() for m in normalize_services([_svc(type=8), _svc()])] == ["icmp"]


def test_service_clause_matches_type_and_code() -> None:
    assert service_matches([_svc(type=3, code=4), _svc(type=8), _svc(type=8)]) == (
        (("proto", "icmp"), ("icmp_type", "3"), ("icmp_code", "4")),
        (("proto", "icmp"), ("icmp_type", "8")),
    )
    # covered matches would only add clause flows: all ICMP covers the types, a type its codes
    assert service_matches([_svc(type=3, code=4), _svc(type=8), _svc()]) == ((("proto", "icmp"),),)
    assert service_matches([_svc(type=3, code=4), _svc(type=3)]) == ((("proto", "icmp"), ("icmp_type", "3")),)


def test_compiled_policy_rules_match_echo_request_only(net: Network) -> None:
    flows = parse_flows(compile_network(net)["s1"].flows_text())
    icmp = [
        f
        for f in flows
        if f.table in (30, 70) and any(m.field == "ip_proto" and m.value == 1 for m in f.match)
    ]
    assert icmp, "no ICMP policy rule"
    for flow in icmp:
        types = [m.value for m in flow.match if m.field == "icmp_type"]
        assert types == [8], flow


def test_ping_probes_follow_the_echo_grants_and_the_tables(net: Network) -> None:
    tables = {n: parse_flows(p.flows_text(), source=n) for n, p in compile_network(net).items()}
    predictor, why = load_predictor(net, tables)
    assert predictor is not None, why
    pings = {(p.src[1], p.dst[1]): p for p in plan_probes(net).probes if p.proto == "icmp"}
    expected = {pair for pair, p in pings.items() if expected_outcome(net, p)}
    echo = {("mon1", "web1"), ("mon1", "web2"), ("mon1", "db1"), ("web1", "db1"), ("web2", "db1")}
    assert expected == echo | {("mon1", "mon2"), ("mon2", "mon1")}  # the monitors' segment: all IPv4
    assert all(predictor(p) == (pair in expected) for pair, p in pings.items())


def test_timestamp_only_grant_does_not_make_a_ping_succeed() -> None:
    net = _variant("{proto: icmp, type: 8}]", "{proto: icmp, type: 13}]")
    tables = {n: parse_flows(p.flows_text(), source=n) for n, p in compile_network(net).items()}
    predictor, why = load_predictor(net, tables)
    assert predictor is not None, why
    for probe in plan_probes(net).probes:
        if probe.proto == "icmp":
            assert not expected_outcome(net, probe) and predictor(probe) is False, probe.describe()


def test_forgery_control_packet_carries_the_granted_query_type() -> None:
    plan = plan_attack(
        _variant(
            "services: [{proto: icmp, type: 8}]",
            "services: [{proto: icmp, type: 3}, {proto: icmp, type: 13}]",
        )
    )
    assert plan.control is not None
    assert (plan.control.proto, plan.control.icmp_type, plan.control.icmp_code) == ("icmp", 13, 0)


def test_verifier_service_spaces_follow_type_code_and_reply_type() -> None:
    """The verifier's own reading of a typed ICMP service: the type (and code) forward, the
    query's reply type back, nothing back for a type that is not a query."""
    hs = HeaderSpace()
    sp = Spaces(hs, resolve(load_intent_text(EXAMPLE.read_text())))
    icmp = hs.oeq("eth_type", 0x0800) & hs.oeq("ip_proto", 1)
    echo, frag = ServiceMatch("icmp", None, 8), ServiceMatch("icmp", None, 3, 4)
    for ipv6 in (False, True):  # icmp is ICMPv4: nothing in IPv6 even where IPv6 applies
        assert sp.service(echo, ipv6=ipv6) == icmp & hs.oeq("icmp_type", 8)
        assert sp.service(echo, reply=True, ipv6=ipv6) == icmp & hs.oeq("icmp_type", 0)
        assert sp.service(frag, ipv6=ipv6) == icmp & hs.oeq("icmp_type", 3) & hs.oeq("icmp_code", 4)
        assert sp.service(frag, reply=True, ipv6=ipv6) == hs.false
        assert sp.service(ServiceMatch("icmp"), reply=True, ipv6=ipv6) == icmp
    icmp6 = hs.oeq("eth_type", 0x86DD) & hs.oeq("ip_proto", 58)
    echo6 = ServiceMatch("icmp6", None, 128)
    assert sp.service(echo6, ipv6=False) == hs.false
    assert sp.service(echo6, ipv6=True) == icmp6 & hs.oeq("icmp_type", 128)
    assert sp.service(echo6, reply=True, ipv6=True) == icmp6 & hs.oeq("icmp_type", 129)
    # all of ICMPv6 but what a grant never carries: router-only messages and neighbour discovery
    every6 = sp.service(ServiceMatch("icmp6"), ipv6=True)
    assert every6 == icmp6 & ~hs.union(hs.oeq("icmp_type", t) for t in (134, 137, 135, 136))
