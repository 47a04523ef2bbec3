"""Mininet scenarios: pure planning, the probe expectations, and every scenario end to end.

Each scenario run must agree three ways (observed / predicted / expected) and pass
every check; a run must leave nothing behind. The whole parametrized set is kept
under about two and a half minutes here (attacker is the slowest, ~45 s).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from segctl.cli import main
from segctl.mininet_scenarios import controller_proc as ctl
from segctl.mininet_scenarios import network as mn
from segctl.mininet_scenarios.probes import Probe, expected_outcome, plan_probes, probe_ports
from segctl.mininet_scenarios.report import write_reports
from segctl.mininet_scenarios.runner import run_scenario
from segctl.mininet_scenarios.scenarios import SCENARIOS, intent_path
from segctl.mininet_scenarios.scenarios.actions import redundant_links, uplink_failure_needs
from segctl.mininet_scenarios.scenarios.forgery import plan_attack
from segctl.mininet_scenarios.scenarios.ipv6_guard import ipv6_attacks, ipv6_first_hop_needs, ipv6_pair
from segctl.testbed import ovs
from segctl.topology.network import load_network

LEAF_SPINE = intent_path("leaf-spine.yaml")
STRICT = intent_path("strict-segment.yaml")
INTERNET = intent_path("internet.yaml")

#: An intent no scenario ships: two tenants on two switches reusing each other's MACs and
#: addresses (valid: isolation never rests on them), a routed policy, a single fabric link.
REUSED_MACS = """\
version: 1
fabric:
  switches: [{name: a, dpid: "0x5e01"}, {name: b, dpid: "0x5e02"}]
  links: ["a:1 <-> b:1"]
tenants:
  - name: red
    segments:
      - {name: lan, cidr: 10.0.0.0/24, gateway: 10.0.0.1}
      - {name: app, cidr: 10.0.1.0/24, gateway: 10.0.1.1, strict: true}
    endpoints:
      - {name: r1, segment: lan, mac: "02:00:00:00:00:01", ip: 10.0.0.11, attach: "a:2"}
      - {name: r2, segment: lan, mac: "02:00:00:00:00:02", ip: 10.0.0.12, attach: "b:2"}
      - {name: r3, segment: app, mac: "02:00:00:00:00:03", ip: 10.0.1.13, attach: "b:4"}
    policies:
      - {name: to-app, from: {endpoints: [r1, r2]}, to: {segment: app}, services: [{proto: TCP, port: 8080}]}
  - name: blue
    segments:
      - {name: lan, cidr: 10.0.0.0/24, gateway: 10.0.0.1}
    endpoints:
      - {name: b1, segment: lan, mac: "02:00:00:00:00:01", ip: 10.0.0.11, attach: "b:3"}
      - {name: b2, segment: lan, mac: "02:00:00:00:00:02", ip: 10.0.0.21, attach: "a:3"}
"""


@pytest.fixture
def reused_macs(tmp_path: Path) -> Path:
    path = tmp_path / "reused-macs.yaml"
    path.write_text(REUSED_MACS)
    return path


# ----------------------------------------------------------------------------- pure


def test_plan_pins_intent_ports_dpids_and_unique_short_names() -> None:
    net = load_network(LEAF_SPINE)
    plan = mn.plan(net, "mnabc")
    assert [s.dpid for s in plan.switches] == [s.dpid for s in net.switches]
    names = [s.port_name(p) for s in plan.switches for p in mn._ports(plan, s.name)]
    assert len(names) == len(set(names)) and all(len(n) <= 15 and n.startswith("mnabc") for n in names)
    for ep in net.endpoints:
        host = plan.host(ep)
        assert host.endpoint == ep and host.netns.startswith("mnabc")
        assert host.gateway == net.segment(ep.tenant, ep.segment).gateway
    assert len({h.node for h in plan.hosts}) == len(net.endpoints)


def test_plan_attaches_the_upstream_router_to_every_declared_uplink() -> None:
    """internet.yaml: the router host has one link per uplink port (edge2:48 active, edge1:48
    standby), both ports of its bridge, whose name carries the run prefix like every other."""
    net = load_network(INTERNET)
    plan = mn.plan(net, "mnabc")
    (outside,) = plan.outsides
    assert outside.uplinks == (("edge2", 48), ("edge1", 48))
    assert [outside.uplink_ifname(u) for u in outside.uplinks] == ["mnabcx1-eth0", "mnabcx1-eth1"]
    assert outside.ifname == "mnabcx1-br"  # the router's addresses, probes and frames
    assert 48 in mn._ports(plan, "edge1") and 48 in mn._ports(plan, "edge2")
    assert uplink_failure_needs(net) == ""
    assert "standby uplink" in uplink_failure_needs(load_network(LEAF_SPINE))


def test_plan_rejects_foreign_prefix_and_cleanup_refuses_it() -> None:
    net = load_network(LEAF_SPINE)
    for bad in ("sg1234", "mn", "mnxyz", "mn12345"):
        with pytest.raises(ValueError):
            mn.plan(net, bad)
        with pytest.raises(ValueError):
            mn.cleanup(bad)
    assert mn.PREFIX_PATTERN.fullmatch(mn.new_prefix())


def test_probe_ports_cover_every_service_bound_and_one_denied_port() -> None:
    net = load_network(LEAF_SPINE)
    ports = probe_ports(net)
    assert {8080, 5432, 53} <= set(ports["tcp"]) and 53 in ports["udp"]
    denied = [p for p in ports["tcp"] if p not in (8080, 5432, 53)]
    assert denied, "a port no service allows must be probed"


def test_overlapping_addresses_are_not_probed_by_address() -> None:
    net = load_network(LEAF_SPINE)
    plan = plan_probes(net)
    web1, gweb1 = net.endpoint("acme", "web1"), net.endpoint("globex", "gweb1")
    assert web1.ip == gweb1.ip
    assert (web1.key, gweb1.key) in plan.unaddressable
    assert not any(p.src == web1.key and p.dst == gweb1.key for p in plan.probes)
    # every addressable ordered pair is probed with icmp
    icmp = {(p.src, p.dst) for p in plan.probes if p.proto == "icmp"}
    n = len(net.endpoints)
    assert len(icmp) + len(plan.unaddressable) == n * (n - 1)


def test_ipv6_probes_skip_addresses_the_senders_tenant_also_owns() -> None:
    """dual-stack: globex reuses acme's IPv6 addresses; acme/web1 pinging g2's address would
    reach acme/web2 (or itself for g1's), so no icmp6 probe goes to either."""
    net = load_network(Path(__file__).resolve().parents[2] / "examples" / "dual-stack.yaml")
    icmp6 = {(p.src, p.dst) for p in plan_probes(net).probes if p.proto == "icmp6"}
    web1, web2 = net.endpoint("acme", "web1").key, net.endpoint("acme", "web2").key
    g1, g2 = net.endpoint("globex", "g1").key, net.endpoint("globex", "g2").key
    assert {(web1, web2), (web2, web1), (g1, g2), (g2, g1)} <= icmp6
    assert not icmp6 & {(web1, g1), (web1, g2), (web2, g1), (g2, web1)}


def test_expectations_follow_statefulness_and_ipv6_rules() -> None:
    net = load_network(STRICT)
    k1, k2, k3 = (net.endpoint("lab", n).key for n in ("k1", "k2", "k3"))
    o1, o2 = net.endpoint("lab", "o1").key, net.endpoint("lab", "o2").key
    assert expected_outcome(net, Probe(k1, k2, "tcp", 22))
    assert not expected_outcome(net, Probe(k2, k1, "tcp", 22))  # reverse connections denied
    assert not expected_outcome(net, Probe(k3, k2, "udp", 514))  # stateless: no reply
    assert expected_outcome(net, Probe(o1, o2, "icmp6"))
    assert expected_outcome(net, Probe(o1, o2, "udp6", 514))  # non-strict: all of IPv6
    assert not expected_outcome(net, Probe(k1, k2, "icmp6"))  # k1-to-k2's icmp is ICMPv4
    assert expected_outcome(net, Probe(k1, k2, "tcp6", 22))  # its tcp/22 carries IPv6 too
    assert not expected_outcome(net, Probe(k2, k1, "tcp6", 22))
    assert expected_outcome(net, Probe(o1, k2, "tcp", 443))
    assert not expected_outcome(net, Probe(o1, k2, "tcp6", 443))  # across segments: IPv4 only
    assert not expected_outcome(net, Probe(o1, k2, "tcp", 9))
    planned = {(p.src, p.dst, p.proto, p.port) for p in plan_probes(net).probes}
    assert {(k1, k2, "tcp6", 22), (o1, k2, "tcp6", 443), (o1, o2, "udp6", 514)} <= planned


def test_scenario_list_and_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "list", "--output", "json"]) == 0
    listed = {s["name"] for s in json.loads(capsys.readouterr().out)}
    assert listed == set(SCENARIOS) and "baseline" in listed
    assert all(Path(s.intent).is_file() for s in SCENARIOS.values())
    assert main(["scenario", "run", "no-such-scenario"]) == 2
    assert "no scenario" in capsys.readouterr().err


def test_forged_values_differ_from_the_attackers_own_binding(reused_macs: Path) -> None:
    """blue/b1 has red/r1's MAC and address: "another tenant's MAC" must not be r1's own."""
    net = load_network(reused_macs)
    plan = plan_attack(net)
    me = plan.attacker
    assert me.qualified == "red/r1"
    assert net.endpoint("blue", "b1").mac == me.mac  # the trap the old choice fell into
    assert plan.forged_mac != me.mac and plan.foreign_sha != me.mac
    assert plan.forged_ip != str(me.ip) and plan.claimed_ip != str(me.ip)
    # frames aimed at another tenant go where nothing of red shares both MAC and address
    assert plan.foreign and plan.victim.qualified == "blue/b2"
    assert plan.control is not None and plan.control.receiver.qualified == "red/r2"
    assert plan.skipped == ()


def test_every_shipped_attacker_intent_forges_for_real() -> None:
    for scenario in SCENARIOS.values():
        if not scenario.needs:
            continue
        net = load_network(scenario.intent)
        plan = plan_attack(net)
        assert plan.forged_mac != plan.attacker.mac and plan.foreign_sha != plan.attacker.mac
        assert plan.control is not None
        # a forged ARP must never be what a real endpoint sends about itself
        bindings = {(ep.mac, str(ep.ip)) for ep in net.endpoints}
        assert (plan.foreign_sha, str(plan.attacker.ip)) not in bindings
        assert (plan.attacker.mac, plan.claimed_ip) not in bindings


def test_ipv6_attacks_forge_router_messages_and_sources_from_a_real_ipv6_pair() -> None:
    from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_RA, ICMPv6ND_Redirect, IPv6
    from scapy.layers.l2 import Ether

    net = load_network(STRICT)
    me, peer = ipv6_pair(net) or (None, None)
    assert me is not None and peer is not None
    assert (me.qualified, peer.qualified) == ("lab/o1", "lab/o2")
    frames, control = ipv6_attacks(net, me, peer)
    parsed = {name: Ether(frame) for name, frame in frames.items()}
    assert all(p.src == me.mac for p in parsed.values())
    routers = [p for p in parsed.values() if ICMPv6ND_RA in p or ICMPv6ND_Redirect in p]
    assert len(routers) == 4
    sources = {p[IPv6].src for p in routers}
    assert sources == {str(me.ipv6), "fe80::ff:fe14:101"}  # bound global, and the EUI-64 link-local
    bound = {str(a) for ep in net.endpoints for a in ep.ipv6_sources}
    for name in ("forged IPv6 source", "forged link-local source"):
        forged = parsed[name]
        assert ICMPv6EchoRequest in forged and forged[IPv6].src not in bound
    assert Ether(control)[IPv6].src == str(me.ipv6) and Ether(control)[IPv6].dst == str(peer.ipv6)
    assert ipv6_first_hop_needs(net) == ""
    assert "ipv6" in ipv6_first_hop_needs(load_network(LEAF_SPINE))


def test_forged_arp_is_not_a_real_request_when_tenants_overlap() -> None:
    """leaf-spine: acme/web1 and globex/gweb1 share 10.1.1.10. A request "sha gweb1's MAC,
    spa 10.1.1.10" is what gweb1 sends itself when its neighbour entry for gweb2 expires:
    CI once captured that real request and called the attack delivered."""
    net = load_network(SCENARIOS["attacker"].intent)
    plan = plan_attack(net)
    assert plan.attacker.qualified == "acme/web1" and plan.foreign
    assert plan.foreign_sha != net.endpoint("globex", "gweb1").mac
    assert plan.foreign_sha == net.endpoint("globex", "gweb2").mac


def test_scenario_on_an_intent_that_lacks_what_it_needs_exits_2(
    reused_macs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked before anything starts, so no root is needed to be told."""
    assert redundant_links(load_network(reused_macs)) == []
    assert main(["scenario", "run", "link-failure", "--intent", str(reused_macs)]) == 2
    assert (
        f"scenario link-failure cannot run on {reused_macs}: it needs a fabric link with another path"
        in capsys.readouterr().err
    )
    assert main(["scenario", "run", "flood", "--intent", str(reused_macs)]) == 2
    assert "rate_limit" in capsys.readouterr().err
    assert main(["scenario", "run", "uplink-failover", "--intent", str(reused_macs)]) == 2
    assert "it needs an external network with a standby uplink" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("fabric: {switches: []}\n")
    assert main(["scenario", "run", "attacker", "--intent", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("segctl: ") and "Traceback" not in err
    assert redundant_links(load_network(LEAF_SPINE))  # two spines: every link has a way around


# ----------------------------------------------------------------------- end to end


@pytest.mark.ovs
def test_changed_since_catches_a_change_undone_between_the_dumps(lab_prefix: str) -> None:
    """What "flow tables unchanged during the probes" rests on: equal tables, but a flow
    deleted and re-added in between (A -> B -> A, as a flapping controller did) is a change."""
    bridges = {"s": f"{lab_prefix}b"}
    flows = ["table=0,priority=10,in_port=1,actions=drop", "table=0,priority=5,actions=drop"]
    ovs.create_bridge(bridges["s"], dpid=0x5E6)
    try:
        ovs.add_flows(bridges["s"], flows)
        before = ctl.snapshot(bridges)
        assert ctl.changed_since(before, bridges) == []
        ovs.run(
            ["ovs-ofctl", "-O", "OpenFlow13", "--strict", "del-flows", bridges["s"], "priority=10,in_port=1"]
        )
        assert ctl.changed_since(before, bridges) == ["s"]  # B: a flow missing
        ovs.add_flows(bridges["s"], flows[:1])
        assert ctl.rules_match({"s": frozenset(before.flows["s"])}, ctl.live_flows(bridges)) == []
        assert ctl.changed_since(before, bridges) == ["s"]  # A again, but re-added since
        assert ctl.changed_since(ctl.snapshot(bridges), bridges) == []
    finally:
        ovs.delete_bridge(bridges["s"])


#: ``baseline`` on its built-in intent is the ``leaf-spine`` run: not run twice;
#: ``uplink-failover`` has its own test (the same judgement and more).
_DISTINCT = [name for name in SCENARIOS if name not in ("baseline", "uplink-failover")]


@pytest.mark.ovs
@pytest.mark.parametrize("name", _DISTINCT)
def test_scenario_agrees_three_ways_and_cleans_up(name: str, ovs_available: None, tmp_path: Path) -> None:
    _run_and_judge(name, tmp_path)


def _run_and_judge(name: str, tmp_path: Path) -> dict[str, Any]:
    """Run scenario ``name``: reports written, nothing left behind, observed = expected in
    every phase, every check passed, the run passed. Returns report.json."""
    scenario = SCENARIOS[name]
    result = run_scenario(scenario.name, scenario.title, scenario.intent, scenario.actions, work_dir=tmp_path)
    paths = write_reports(result, tmp_path)
    assert all(p.is_file() for p in paths.values())
    assert json.loads(paths["json"].read_text())["verdict"] == ("pass" if result.passed else "fail")
    page = paths["html"].read_text()
    assert "<svg" in page and '"schema_version"' not in page, "report.html: topology picture, no JSON dump"
    assert "verification_html" in paths and "href='verification.html'" in page
    assert not any(mn.leftovers(result.prefix).values()), "the run left Mininet/OVS objects behind"
    for phase in result.phases:
        assert phase.rows, f"{phase.name}: no probes"
        bad = [r.probe.describe() for r in phase.rows if r.observed != r.expected]
        assert not bad, f"{name}/{phase.name}: live traffic differs from the intent: {bad[:5]}"
    failed = [f"{c.name}: {c.detail}" for c in result.checks if not c.passed]
    assert not failed, f"{name}: failed checks {failed} (rules: {result.rules_source})"
    assert result.passed, f"{name}: {paths['md'].read_text()[:3000]}"
    report: dict[str, Any] = json.loads(paths["json"].read_text())
    return report


def _outside_seen(phase: dict[str, Any]) -> set[tuple[str, str, str, int | None, str | None]]:
    """The answered probes with the outside: (src, dst, proto, port, source the outside saw)."""
    return {
        (r["src"], r["dst"], r["proto"], r["port"], r.get("seen_as"))
        for r in phase["rows"]
        if r["observed"] and ("external:" in r["src"] or "external:" in r["dst"])
    }


@pytest.mark.ovs
def test_uplink_failover_keeps_the_outside_reachable(ovs_available: None, tmp_path: Path) -> None:
    """internet.yaml, edge2:48 active, edge1:48 standby: edge2:48 goes down, the controller
    fails over (every switch converges to the tables compiled with edge1:48 active), and the
    outside matrix is the baseline's: the same connections get out, each seen from its SNAT
    address, the floating IP opens tcp/80 and tcp/443 to acme/web1 only, all of it over
    edge1:48; the link comes back and the uplink returns to edge2:48. After each move the
    router's (learning) bridge heard one gratuitous ARP and learned the fabric's MAC on the
    new active link. Without a failover the outside answers nothing after the failure, and
    this fails; without the announcement the bridge keeps the old link after the failback."""
    doc = _run_and_judge("uplink-failover", tmp_path)
    phases = {p["name"]: p for p in doc["phases"]}
    assert list(phases) == ["baseline", "uplink edge2:48 down", "uplink edge2:48 back"]
    baseline = _outside_seen(phases["baseline"])
    assert {seen for *_, seen in baseline if seen} == {"198.51.100.10", "198.51.100.11"}
    inbound = {(dst, proto, port) for src, dst, proto, port, _ in baseline if src.startswith("external:")}
    assert inbound == {("acme/web1", "tcp", 80), ("acme/web1", "tcp", 443)}
    for name in ("uplink edge2:48 down", "uplink edge2:48 back"):
        assert _outside_seen(phases[name]) == baseline, f"{name}: the outside's answers changed"
    checks = {c["name"]: c for c in doc["checks"]}
    failover = checks[
        "uplink internet edge2:48 down: every switch holds the tables compiled with edge1:48 active"
    ]
    seconds = float(failover["detail"].split("failover in ")[1].split(" s")[0])
    assert failover["passed"] and 0 <= seconds < 30, failover
    crossed = checks["uplink edge2:48 down: the fabric reached the outside over edge1:48 only"]
    assert crossed["passed"] and "(edge2:48 down)" in crossed["detail"], crossed
    back = "uplink internet edge2:48 up: rules back to the tables compiled with edge2:48 active"
    assert checks[back]["passed"], checks[back]
    back = "uplink edge2:48 back: the fabric reached the outside over edge2:48 only"
    assert checks[back]["passed"] and "0 over edge1:48" in checks[back]["detail"], checks[back]
    # the router's bridge learns: the fabric announced its MAC out of each new active port
    mac = "02:5e:ff:00:00:01"
    for phase, port in (("down", "edge1:48"), ("up", "edge2:48")):
        name = f"uplink internet edge2:48 {phase}: the fabric announced {mac} (gratuitous ARP), "
        announced = checks[f"{name}the router's bridge learned it on {port}"]
        assert announced["passed"] and "1 gratuitous ARP" in announced["detail"], announced
        assert "for 198.51.100.10" in announced["detail"], announced


@pytest.mark.ovs
def test_attacker_on_an_unseen_intent_that_reuses_macs(
    reused_macs: Path, tmp_path: Path, ovs_available: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """``scenario run attacker --intent FILE``: the user's intent, tenants reusing MACs; every
    forged frame is dropped (the old choice forged r1's own MAC, which was delivered)."""
    code = main(
        ["scenario", "run", "attacker", "--intent", str(reused_macs), "--report", str(tmp_path / "r")]
    )
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    assert doc["intent"] == str(reused_macs)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["attack dropped: forged source MAC"]["passed"], checks["attack dropped: forged source MAC"]
    assert checks["control frame delivered (capture works)"]["passed"]
    failed = [f"{c['name']}: {c['detail']}" for c in doc["checks"] if not c["passed"]]
    assert code == 0 and not failed, (failed, out)


@pytest.mark.ovs
def test_guardrails_scenario_runs_on_the_example(
    tmp_path: Path, ovs_available: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """examples/guardrails.yaml (guardrails, a deny policy, sets, logging) runs in its scenario:
    three matrices agree, the logged denial writes one line per packet, its counter grows."""
    example = Path(__file__).resolve().parents[2] / "examples" / "guardrails.yaml"
    code = main(["scenario", "run", "guardrails", "--intent", str(example), "--report", str(tmp_path / "r")])
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    names = {c["name"]: c["passed"] for c in doc["checks"]}
    assert names.get("guardrail web-never-db: one policy-log line per denied packet"), (names, out)
    assert code == 0 and all(names.values()), (names, out)


@pytest.mark.ovs
def test_baseline_on_the_dual_stack_example(
    tmp_path: Path, ovs_available: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """examples/dual-stack.yaml (IPv6 inside and routed, a shared DNS in both families, acme's
    web segment out to the internet behind its SNAT address, acme/db over IPv6 with the outside):
    the matrix with both families and the outside agrees three ways; the outside sees the SNAT
    address over IPv4 and db2's own address over IPv6."""
    example = Path(__file__).resolve().parents[2] / "examples" / "dual-stack.yaml"
    code = main(["scenario", "run", "baseline", "--intent", str(example), "--report", str(tmp_path / "r")])
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    rows = doc["phases"][0]["rows"]
    assert any(r["proto"] == "tcp6" and r["observed"] for r in rows), "IPv6 probes ran and passed"
    outside = [r for r in rows if r["dst"].startswith("external:") and r["observed"]]
    assert {r.get("seen_as") for r in outside if r["proto"] == "tcp"} == {"198.51.100.10"}, outside
    # over IPv6: db2 leaves from its own address (untranslated), the outside pings db1
    assert {(r["src"], r.get("seen_as")) for r in outside if r["proto"] == "tcp6"} == {
        ("acme/db2", "fd00:1:2::12")
    }
    inbound6 = {(r["dst"], r["proto"]) for r in rows if r["src"].startswith("external:") and r["observed"]}
    assert ("acme/db1", "icmp6") in inbound6 and not any(p == "tcp6" for _, p in inbound6)
    names = {c["name"]: c["passed"] for c in doc["checks"]}
    assert code == 0 and all(names.values()), (names, out)
