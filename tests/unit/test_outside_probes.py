"""The internet scenario's pure parts: the outside host in the Mininet plan, the probes to
and from the outside, their expectations (the external policies) and their predictions
(the simulator on the compiled tables, NAT included)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from segctl.flows.compiler import compile_network
from segctl.mininet_scenarios import network as mn
from segctl.mininet_scenarios.predict import load_predictor
from segctl.mininet_scenarios.probes import Probe, expected_outcome, outside_keys, plan_probes, probe_address
from segctl.mininet_scenarios.scenarios import SCENARIOS
from segctl.openflow.ofctl import Ct, Flow, parse_flows
from segctl.topology.network import Network, load_network
from segctl.topology.outside import external_decision, outside_server

OUTSIDE = ("external:internet", "203.0.113.5")


@pytest.fixture(scope="module")
def net() -> Network:
    return load_network(SCENARIOS["internet"].intent)


@pytest.fixture(scope="module")
def tables(net: Network) -> dict[str, list[Flow]]:
    return {n: parse_flows(p.flows_text(), source=n) for n, p in compile_network(net).items()}


def _outside_probes(net: Network) -> dict[tuple[str, str, str], bool]:
    """(source, destination, service) -> expected, for every probe with the outside."""
    return {
        ("/".join(p.src), "/".join(p.dst), p.service): expected_outcome(net, p)
        for p in plan_probes(net).probes
        if mn.is_outside(p.src) or mn.is_outside(p.dst)
    }


def test_plan_puts_the_router_host_on_the_uplink(net: Network) -> None:
    plan = mn.plan(net, "mnabc")
    (outside,) = plan.outsides
    # the router's addresses live on a bridge over one link per declared uplink
    assert (outside.node, outside.key, outside.ifname) == ("mnabcx1", OUTSIDE, "mnabcx1-br")
    assert [outside.uplink_ifname(u) for u in outside.uplinks] == ["mnabcx1-eth0", "mnabcx1-eth1"]
    assert plan.node(OUTSIDE) is outside and plan.node(("acme", "web1")).node.startswith("mnabch")
    assert 48 in mn._ports(plan, "edge2") and 48 in mn._ports(plan, "edge1")  # active and standby
    assert outside_keys(net) == [OUTSIDE]


def test_the_outside_server_is_reached_by_the_most_egress_policies(net: Network, tmp_path: Path) -> None:
    # 203.0.113.5: inside acme's 0/0-minus-private and globex's 203.0.113.0/24
    assert outside_server(net, net.external("internet")) == IPv4Address("203.0.113.5")

    def variant(text: str) -> Network:
        path = tmp_path / "variant.yaml"
        path.write_text(text)
        return load_network(path)

    text = SCENARIOS["internet"].intent.read_text().replace("203.0.113.0/24", "100.64.0.0/10")
    both = variant(text)  # 100.64.0.5 is in acme's 0/0-minus-private and globex's 100.64/10
    assert outside_server(both, both.external("internet")) == IPv4Address("100.64.0.5")
    wide = "cidr: 0.0.0.0/0, except: [10.0.0.0/8, 192.168.0.0/16]"
    only = variant(text.replace(wide, "cidr: 192.0.2.0/24"))
    # no address reaches both: the first documentation address one policy reaches
    assert outside_server(only, only.external("internet")) == IPv4Address("192.0.2.5")


def test_outside_probes_follow_the_external_policies(net: Network) -> None:
    got = _outside_probes(net)
    allowed = {key for key, ok in got.items() if ok}
    out = "external:internet/203.0.113.5"
    assert allowed == {
        ("acme/app1", out, "icmp"),
        ("acme/app1", out, "tcp/443"),
        ("acme/app2", out, "icmp"),
        ("acme/app2", out, "tcp/443"),
        ("globex/gweb1", out, "tcp/80"),
        ("globex/gweb2", out, "tcp/80"),
        (out, "acme/web1", "tcp/80"),
        (out, "acme/web1", "tcp/443"),
    }
    # the outside probes every endpoint with a public address: web1 at its floating IP, the
    # others at their tenant's SNAT address, which lets nothing in
    assert {d for s, d, _ in got if s == out} == {"acme/web1", "acme/app1", "acme/app2", "globex/gweb1",
                                                 "globex/gweb2"}  # fmt: skip
    assert ("acme/web1", out, "tcp/443") in got  # probed, denied: web1 has no egress policy
    by_key = {(p.src, p.dst, p.service): p for p in plan_probes(net).probes}
    assert probe_address(net, by_key[OUTSIDE, ("acme", "web1"), "tcp/80"]) == "198.51.100.20"
    assert probe_address(net, by_key[OUTSIDE, ("globex", "gweb1"), "tcp/80"]) == "198.51.100.11"
    assert probe_address(net, by_key[("acme", "app1"), OUTSIDE, "tcp/443"]) == "203.0.113.5"


def test_external_decision_takes_the_first_policy_and_only_floating_ips_inbound(net: Network) -> None:
    app1, web1 = net.endpoint("acme", "app1"), net.endpoint("acme", "web1")
    server = IPv4Address("203.0.113.5")
    granted = external_decision(net, app1, "out", server, "tcp", 443)
    assert granted is not None and granted.allow and granted.name == "policy acme/updates"
    assert external_decision(net, app1, "out", IPv4Address("10.9.9.9"), "tcp", 443) is None  # except 10/8
    assert external_decision(net, app1, "out", server, "tcp", 80) is None
    assert external_decision(net, app1, "in", server, "tcp", 443) is None  # no floating IP
    inbound = external_decision(net, web1, "in", server, "tcp", 443)
    assert inbound is not None and inbound.name == "policy acme/public-web"


def test_predictions_on_the_compiled_tables_agree_with_the_intent(net: Network, tables: dict) -> None:
    predictor, why = load_predictor(net, tables)
    assert predictor is not None, why
    probes = [p for p in plan_probes(net).probes if mn.is_outside(p.src) or mn.is_outside(p.dst)]
    wrong = [p.describe() for p in probes if predictor(p) != expected_outcome(net, p)]
    assert not wrong, wrong


def test_the_reply_to_a_shared_snat_address_finds_its_own_connection(net: Network, tables: dict) -> None:
    """acme's app1 and app2 leave as one SNAT address: app2's reply is predicted back to app2
    only because the simulator is told which connection it answers (without, the first binding
    of the address, app1's, takes it)."""
    predictor, _ = load_predictor(net, tables)
    assert predictor is not None
    assert predictor(Probe(("acme", "app2"), OUTSIDE, "tcp", 443)) is True


def _without_snat_of(tables: dict[str, list[Flow]], address: str) -> dict[str, list[Flow]]:
    def keep(flow: Flow) -> Flow:
        if any(isinstance(a, Ct) and a.nat is not None and a.nat.kind == "src" and
               a.nat.low == int(IPv4Address(address)) for a in flow.actions):  # fmt: skip
            actions = tuple(replace(a, nat=None) if isinstance(a, Ct) else a for a in flow.actions)
            return replace(flow, actions=actions)
        return flow

    return {sw: [keep(f) for f in flows] for sw, flows in tables.items()}


def test_tables_that_leak_a_private_source_are_predicted_to_fail(net: Network, tables: dict) -> None:
    """Without globex's SNAT the request leaves with 10.0.1.x: the outside's reply (to the
    source it saw) has no way back, and the prediction says so."""
    predictor, _ = load_predictor(net, _without_snat_of(tables, "198.51.100.11"))
    assert predictor is not None
    assert predictor(Probe(("globex", "gweb1"), OUTSIDE, "tcp", 80)) is False
    assert predictor(Probe(("acme", "app1"), OUTSIDE, "tcp", 443)) is True


def test_outside_attacks_aim_at_the_floating_ip_endpoint(net: Network) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Dot1Q, Ether

    from segctl.mininet_scenarios.scenarios.outside import floating_target, outside_attack_frames

    target, port = floating_target(net) or (None, 0)
    assert target is not None and (target.key, port) == (("acme", "web1"), 80)
    frames, control = outside_attack_frames(net, mn.plan(net, "mnabc").outsides[0], target, port)
    parsed = {name: Ether(raw) for name, raw in frames.items()}
    ext = net.external("internet")
    assert all((f.src, f.dst) == (ext.router_mac, ext.mac) for f in parsed.values())
    dst = {name: (f[IP].src, f[IP].dst, f[TCP].dport, f[Dot1Q].vlan if Dot1Q in f else None)
           for name, f in parsed.items()}  # fmt: skip
    assert sorted(dst.values(), key=str) == sorted(
        [
            ("203.0.113.5", "10.0.1.10", 80, None),  # the private address
            ("10.0.1.2", "198.51.100.20", 22, None),  # spoofed into web1's segment, closed port
            ("203.0.113.5", "198.51.100.20", 80, 100),  # the segment's VLAN
            ("203.0.113.5", "198.51.100.20", 80, 4094),  # a transit VLAN
            ("203.0.113.5", "198.51.100.10", 80, None),  # acme's SNAT address
        ],
        key=str,
    )
    assert (Ether(control)[IP].dst, Ether(control)[TCP].dport) == ("198.51.100.20", 80)


def test_ipv6_outside_probes_on_the_dual_stack_example() -> None:
    """With IPv6 on the uplink the outside host has an IPv6 server too: routed endpoints probe it
    over tcp6/udp6/icmp6 and it probes them at their own global addresses; expectations follow
    the IPv6 external policies and the simulator predicts every one of them on the tables."""
    dual = load_network(SCENARIOS["internet"].intent.parents[3] / "examples" / "dual-stack.yaml")
    plan = mn.plan(dual, "mnabc")
    (outside,) = plan.outsides
    assert (str(outside.server6), [str(p) for p in outside.routes6]) == ("2001:db8:5::5", ["fd00:1:2::/64"])
    probes = [
        p
        for p in plan_probes(dual).probes
        if p.proto.endswith("6") and (mn.is_outside(p.src) or mn.is_outside(p.dst))
    ]
    granted = {(("/".join(p.src)), "/".join(p.dst), p.service) for p in probes if expected_outcome(dual, p)}
    out = "external:internet/203.0.113.5"
    assert granted == {("acme/db2", out, "tcp6/443"), (out, "acme/db1", "icmp6")}
    by_key = {(p.src, p.dst, p.service): p for p in probes}
    key = ("external:internet", "203.0.113.5")
    assert probe_address(dual, by_key[("acme", "db2"), key, "tcp6/443"]) == "2001:db8:5::5"
    assert probe_address(dual, by_key[key, ("acme", "db1"), "icmp6"]) == "fd00:1:2::11"
    tables = {n: parse_flows(p.flows_text(), source=n) for n, p in compile_network(dual).items()}
    predictor, why = load_predictor(dual, tables)
    assert predictor is not None, why
    # every outside probe, both families: an untranslated IPv6 commit in the NAT zone must not
    # hide the SNAT binding an IPv4 reply is translated back by
    both = [p for p in plan_probes(dual).probes if mn.is_outside(p.src) or mn.is_outside(p.dst)]
    wrong = [p.describe() for p in both if predictor(p) != expected_outcome(dual, p)]
    assert not wrong, wrong
