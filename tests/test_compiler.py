"""Compiler invariants on every example: determinism, golden files, guards, cookies, conjunctions.

Golden files live in ``tests/golden/<example>/<switch>.{flows,meters}``; regenerate them
with ``SEGCTL_UPDATE_GOLDEN=1 pytest tests/test_compiler.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from test_real_switch import EDGE_CASES

from segctl.errors import CompileError
from segctl.flows.compiler import SwitchProgram, compile_network
from segctl.flows.cookies import Kind, decode_cookie, describe_cookie
from segctl.flows.ofctl import (
    IN_PORT,
    Conjunction,
    Ct,
    Drop,
    Meter,
    Output,
    PopVlan,
    PushVlan,
    SetField,
    WriteMetadata,
)
from segctl.flows.pipeline import (
    CLASSIFY,
    EGRESS,
    FORWARD,
    META_SEGMENT_SHIFT,
    POLICY_DST,
    POLICY_SRC,
    ROUTE,
    TABLES,
)
from segctl.flows.policy import check_conjunctions
from segctl.flows.rules import Rule
from segctl.flows.simulate import CT_EST, CT_NEW, CT_TRK, Packet, simulate
from segctl.flows.symbolic import Topology
from segctl.flows.verify import verify
from segctl.topology.model import build_graph, fabric_ports
from segctl.topology.network import Network, load_network, resolve
from segctl.topology.schema import Intent

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.yaml"))


def _network(name: str) -> Network:
    if name == "edge-cases":
        return resolve(Intent.model_validate(EDGE_CASES))
    return load_network(ROOT / "examples" / f"{name}.yaml")


@pytest.fixture(params=[*EXAMPLES, "edge-cases"])
def compiled(request: pytest.FixtureRequest) -> tuple[Network, dict[str, SwitchProgram]]:
    net = _network(request.param)
    return net, compile_network(net)


def _match(rule: Rule) -> dict[str, str]:
    return dict(rule.match)


def _ctx(net: Network, tenant: str, segment: str) -> int:
    return net.tenant(tenant).id | (net.segment(tenant, segment).index << META_SEGMENT_SHIFT)


# ------------------------------------------------------------------ determinism and golden files


@pytest.mark.parametrize("example", EXAMPLES)
def test_compile_twice_is_byte_identical_and_matches_golden(example: str) -> None:
    first = compile_network(_network(example))
    second = compile_network(_network(example))
    assert {n: (p.flows_text(), p.meters_text()) for n, p in first.items()} == {
        n: (p.flows_text(), p.meters_text()) for n, p in second.items()
    }
    folder = GOLDEN / example
    if os.environ.get("SEGCTL_UPDATE_GOLDEN") == "1":
        folder.mkdir(parents=True, exist_ok=True)
        for name, prog in first.items():
            (folder / f"{name}.flows").write_text(prog.flows_text())
            (folder / f"{name}.meters").write_text(prog.meters_text())
    assert sorted(p.name for p in folder.glob("*.flows")) == sorted(f"{n}.flows" for n in first)
    for name, prog in first.items():
        assert (folder / f"{name}.flows").read_text() == prog.flows_text(), f"{example}/{name}.flows"
        assert (folder / f"{name}.meters").read_text() == prog.meters_text(), f"{example}/{name}.meters"


# ------------------------------------------------------------------ structural invariants


def test_every_table_ends_in_one_explicit_drop(compiled: tuple[Network, dict[str, SwitchProgram]]) -> None:
    _, programs = compiled
    for prog in programs.values():
        for table in TABLES:
            misses = [r for r in prog.rules if r.table == table.id and r.priority == 0]
            assert len(misses) == 1 and misses[0].match == () and misses[0].actions == (Drop(),)


def test_edge_outputs_only_through_the_egress_guard(
    compiled: tuple[Network, dict[str, SwitchProgram]],
) -> None:
    net, programs = compiled
    graph = build_graph(net)
    for name, prog in programs.items():
        fabric = set(fabric_ports(graph, name))
        edge = {ep.port: ep for ep in net.endpoints if ep.switch == name}
        for rule in prog.rules:
            m = _match(rule)
            for action in rule.actions:
                if not isinstance(action, Output):
                    continue
                if action.port in fabric:
                    assert rule.table == FORWARD.id
                    assert isinstance(rule.actions[0], PushVlan) and isinstance(rule.actions[1], SetField)
                    assert rule.actions[1].value in {s.vlan for s in net.segments}
                    continue
                assert rule.table == EGRESS.id, rule.to_ofctl()
                ep = edge[int(m["in_port"])] if action.port == IN_PORT else edge[action.port]
                value, mask = (int(x, 16) for x in m["metadata"].split("/"))
                assert value == _ctx(net, ep.tenant, ep.segment) and mask == 0xFFFFF
                assert m["dl_dst"] == ep.mac
                if action.port == IN_PORT:  # the gateway ARP responder, and nothing else
                    assert m["arp_sha"] == net.tenant(ep.tenant).gateway_mac and m["in_port"] == str(ep.port)
                else:
                    assert str(ep.ip) in (m.get("nw_dst"), m.get("arp_tpa")) or (
                        ep.ipv6 is not None and str(ep.ipv6) in (m.get("ipv6_dst"), m.get("nd_target"))
                    ), rule.to_ofctl()


def test_classify_binds_edge_ports_and_fabric_vlans(
    compiled: tuple[Network, dict[str, SwitchProgram]],
) -> None:
    net, programs = compiled
    graph = build_graph(net)
    by_vlan = {s.vlan: s for s in net.segments}
    for name, prog in programs.items():
        fabric = set(fabric_ports(graph, name))
        edge = {ep.port: ep for ep in net.endpoints if ep.switch == name}
        for rule in (r for r in prog.rules if r.table == CLASSIFY.id and r.priority > 0):
            m = _match(rule)
            port = int(m["in_port"])
            writes = [a for a in rule.actions if isinstance(a, WriteMetadata)]
            assert len(writes) == 1 and writes[0].mask == 0xFFFFFFFF
            if port in fabric:
                vid = int(m["vlan_tci"].split("/")[0], 16)
                assert vid & 0x1000 and m["vlan_tci"].endswith("/0x1fff")
                seg = by_vlan[vid & 0xFFF]
                assert writes[0].value == _ctx(net, seg.tenant, seg.name)
                assert isinstance(rule.actions[0], PopVlan)
                continue
            ep = edge[port]
            assert m["vlan_tci"] == "0x0000/0x1fff" and m["dl_src"] == ep.mac
            assert writes[0].value == _ctx(net, ep.tenant, ep.segment)
            bound = {"ip": m.get("nw_src") == str(ep.ip),
                     "arp": m.get("arp_spa") == str(ep.ip) and m.get("arp_sha") == ep.mac,
                     "ipv6": m.get("ipv6_src") == str(ep.ipv6)}  # fmt: skip
            assert bound[m["proto"]], rule.to_ofctl()
            if ep.rate_pps or ep.rate_kbps:
                meter = rule.actions[0]
                assert isinstance(meter, Meter) and meter.id in {x.id for x in prog.meters}


def test_conntrack_zones_are_tenant_ids(compiled: tuple[Network, dict[str, SwitchProgram]]) -> None:
    net, programs = compiled
    ids = {t.id for t in net.tenants}
    for prog in programs.values():
        for rule in prog.rules:
            for action in rule.actions:
                if isinstance(action, Ct):
                    assert action.zone in ids, rule.to_ofctl()


def test_every_cookie_names_an_intent_object(compiled: tuple[Network, dict[str, SwitchProgram]]) -> None:
    net, programs = compiled
    for prog in programs.values():
        for rule in prog.rules:
            stage, kind, _, _ = decode_cookie(rule.cookie)
            assert stage == rule.table
            text = describe_cookie(rule.cookie, net)
            assert "unknown" not in text, (rule.to_ofctl(), text)
            if kind is Kind.ENDPOINT and rule.table == CLASSIFY.id:
                assert text.startswith("spoof-guard ")


def test_cookie_names_for_leaf_spine() -> None:
    net = _network("leaf-spine")
    rules = [r for p in compile_network(net).values() for r in p.rules]
    names = {describe_cookie(r.cookie, net) for r in rules}
    assert {
        "policy acme/web-to-app",
        "spoof-guard acme/web1",
        "shared-service dns (consumer globex)",
    } <= names
    assert describe_cookie(0xFF << 48, net).endswith("(unknown)")


def test_stateful_grants_rank_above_stateless() -> None:
    net = _network("edge-cases")
    s2 = compile_network(net)["s2"]
    prio = {
        describe_cookie(r.cookie, net): r.priority
        for r in s2.rules
        if r.table == POLICY_DST.id and r.priority > 3000 - 100
    }
    assert prio["policy lab/b-to-s"] > prio["policy lab/a-to-s"]
    stateless = [r for r in s2.rules if describe_cookie(r.cookie, net) == "policy lab/a-to-s"]
    assert stateless and not any(isinstance(a, Ct) for r in stateless for a in r.actions)


def test_the_independent_verifier_proves_every_property(
    compiled: tuple[Network, dict[str, SwitchProgram]],
) -> None:
    """The symbolic verifier (which never reads compiler code) finds no violation and no finding."""
    net, programs = compiled
    report = verify(net, {name: [r.to_flow() for r in p.rules] for name, p in programs.items()})
    assert [(p.id, p.violation_count) for p in report.properties if p.violation_count] == []
    assert not report.findings, report.findings[:3]


# ------------------------------------------------------------------ shared services: consumers only

SHARED_DNS = ROOT / "segctl" / "mininet_scenarios" / "intents" / "shared-dns.yaml"


def _shared_dns(extra_resolvers: int = 0, extra_provider: bool = False) -> Network:
    """The shared-dns scenario, optionally with more resolvers on s1 and a second provider."""
    doc = yaml.safe_load(SHARED_DNS.read_text())
    blue, infra = doc["tenants"][1], doc["tenants"][2]
    for i in range(extra_resolvers):
        blue["endpoints"].append(
            {"name": f"bx{i}", "segment": "lan", "mac": f"02:00:00:00:03:{i:02x}", "ip": f"10.0.0.{100 + i}",
             "attach": f"s1:{20 + i}", "labels": {"role": "resolver"}}
        )  # fmt: skip
    if extra_provider:
        infra["endpoints"].append(
            {
                "name": "dns2",
                "segment": "svc",
                "mac": "02:00:00:35:00:36",
                "ip": "10.53.0.54",
                "attach": "s2:13",
            }
        )
        doc["shared_services"][0]["provider"]["endpoints"].append("dns2")
    return resolve(Intent.model_validate(doc))


def _fates(net: Network, programs: dict[str, SwitchProgram], src: str, dst: str, ct: int) -> set[str]:
    """Where a UDP/53 packet from endpoint ``src`` to ``dst`` (via its gateway) ends, ct state ``ct``."""
    s, d = net.endpoint(*src.split("/")), net.endpoint(*dst.split("/"))
    tables = {name: [r.to_flow() for r in p.rules] for name, p in programs.items()}
    gw = int(net.tenant(s.tenant).gateway_mac.replace(":", ""), 16)
    mac = int(s.mac.replace(":", ""), 16)
    packet = Packet(in_port=s.port, eth_src=mac, eth_dst=gw, eth_type=0x0800, ip_proto=17, ip_src=int(s.ip),
                    ip_dst=int(d.ip), nw_ttl=64, tp_src=40000, tp_dst=53)  # fmt: skip
    topo = Topology.from_network(net)
    fates = simulate(tables, topo.links, topo.edges, s.switch, packet, ct_default=ct)
    return {f.endpoint for f in fates if f.kind == "delivered" and f.endpoint}


@pytest.mark.parametrize(("extra_resolvers", "extra_provider"), [(0, False), (4, True)])
def test_shared_service_reaches_providers_only_from_declared_consumers(
    extra_resolvers: int, extra_provider: bool
) -> None:
    """Blue's non-resolver b2 reaches no provider in any ct state; resolvers and red do (both sizes:
    direct route flows, and the per-provider conjunction when consumers x providers is larger)."""
    net = _shared_dns(extra_resolvers, extra_provider)
    programs = compile_network(net)
    report = verify(net, {name: [r.to_flow() for r in p.rules] for name, p in programs.items()})
    assert [(p.id, p.violation_count) for p in report.properties if p.violation_count] == []
    assert not report.findings, report.findings[:3]
    providers = ["infra/dns1", *(["infra/dns2"] if extra_provider else [])]
    for ct in (CT_TRK | CT_NEW, CT_TRK | CT_EST):
        for z in providers:
            assert _fates(net, programs, "blue/b2", z, ct) == set()
            assert _fates(net, programs, "blue/b1", z, ct) == {z}
            assert _fates(net, programs, "red/r2", z, ct) == {z}
    # table 40 on s1: consumers (r1, b1, bx*) x providers, or |C| + 2|P| with the conjunction
    consumers, n_prov = 2 + extra_resolvers, len(providers)
    routes = [  # consumer -> provider routes: they match the source, or are the conjunction's parts
        r
        for r in programs["s1"].rules
        if (r.table == ROUTE.id and r.priority == 1000 and {"nw_src", "conj_id"} & set(_match(r)))
        or (r.table == ROUTE.id and isinstance(r.actions[0], Conjunction))
    ]
    product, linear = consumers * n_prov, consumers + 2 * n_prov
    assert len(routes) == min(product, linear)
    assert any(isinstance(a, Conjunction) for r in routes for a in r.actions) == (product > linear)


# ------------------------------------------------------------------ conjunction cost


def _group_intent(n_src: int, n_dst: int, n_ports: int) -> Network:
    src = [
        {"name": f"a{i}", "segment": "a", "mac": f"02:00:00:0a:{i // 256:02x}:{i % 256:02x}",
         "ip": f"10.10.{i // 250}.{i % 250 + 2}", "attach": f"s1:{i + 1}", "labels": {"role": "a"}}
        for i in range(n_src)
    ]  # fmt: skip
    dst = [
        {"name": f"b{i}", "segment": "b", "mac": f"02:00:00:0b:{i // 256:02x}:{i % 256:02x}",
         "ip": f"10.20.{i // 250}.{i % 250 + 2}", "attach": f"s2:{i + 1}", "labels": {"role": "b"}}
        for i in range(n_dst)
    ]  # fmt: skip
    intent = {
        "fabric": {"switches": [{"name": "s1", "dpid": 1}, {"name": "s2", "dpid": 2}],
                   "links": ["s1:1000 <-> s2:1000"]},
        "tenants": [{
            "name": "t",
            "segments": [{"name": "a", "cidr": "10.10.0.0/16", "gateway": "10.10.0.1"},
                         {"name": "b", "cidr": "10.20.0.0/16", "gateway": "10.20.0.1", "strict": True}],
            "endpoints": src + dst,
            "groups": [{"name": "as", "labels": {"role": "a"}}, {"name": "bs", "labels": {"role": "b"}}],
            "policies": [{"name": "p", "from": {"group": "as"}, "to": {"group": "bs"},
                          "services": [{"proto": "tcp", "port": 1000 + 2 * k} for k in range(n_ports)]}],
        }],
    }  # fmt: skip
    return resolve(Intent.model_validate(intent))


@pytest.mark.parametrize(
    ("n_src", "n_dst", "n_ports"), [(1, 1, 1), (2, 2, 1), (2, 2, 2), (5, 8, 3), (40, 60, 5)]
)
def test_policy_flow_count_is_linear_in_group_sizes(n_src: int, n_dst: int, n_ports: int) -> None:
    net = _group_intent(n_src, n_dst, n_ports)
    programs = compile_network(net)

    def policy_rules(switch: str, table: int) -> list[Rule]:
        return [
            r
            for r in programs[switch].rules
            if r.table == table and describe_cookie(r.cookie, net) == "policy t/p"
        ]

    product, linear = n_src * n_dst * n_ports, n_src + n_dst + n_ports + 1
    expected = min(product, linear)
    assert len(policy_rules("s1", POLICY_SRC.id)) == expected
    assert len(policy_rules("s2", POLICY_DST.id)) == expected
    assert not policy_rules("s1", POLICY_DST.id) and not policy_rules("s2", POLICY_SRC.id)
    if product > linear:
        conj = [r for r in policy_rules("s1", POLICY_SRC.id) if isinstance(r.actions[0], Conjunction)]
        assert len(conj) == linear - 1


def _conj_rule(priority: int, conj: int, clause: int, match: list[tuple[str, str]]) -> Rule:
    return Rule.make(POLICY_SRC.id, priority, 1, match, [Conjunction(conj, clause, 2)])


def test_overlapping_conjunctions_at_one_priority_are_refused() -> None:
    a = [_conj_rule(2000, 1, 1, [("proto", "ip"), ("nw_src", "10.0.0.1")]),
         _conj_rule(2000, 1, 2, [("proto", "tcp"), ("tcp_dst", "80")])]  # fmt: skip
    b = [_conj_rule(2000, 2, 1, [("proto", "ip"), ("nw_src", "10.0.0.0/24")]),
         _conj_rule(2000, 2, 2, [("proto", "ip"), ("nw_dst", "10.0.1.1")])]  # fmt: skip
    with pytest.raises(CompileError, match="conjunctions 1 and 2"):
        check_conjunctions([*a, *b], switch="s1")
    disjoint = [_conj_rule(2000, 2, 1, [("proto", "ip"), ("nw_src", "10.0.0.9")]), b[1]]
    check_conjunctions([*a, *disjoint], switch="s1")
    check_conjunctions([*a, *(Rule.make(r.table, 1999, r.cookie, r.match, r.actions) for r in b)])


def test_compiled_conjunctions_never_share_a_priority(
    compiled: tuple[Network, dict[str, SwitchProgram]],
) -> None:
    _, programs = compiled
    for prog in programs.values():
        seen: dict[tuple[int, int], set[int]] = {}
        for rule in prog.rules:
            for a in rule.actions:
                if isinstance(a, Conjunction):
                    seen.setdefault((rule.table, rule.priority), set()).add(a.id)
        assert all(len(ids) == 1 for ids in seen.values())


def test_metadata_overflow_is_a_compile_error() -> None:
    segments = [{"name": f"s{i}", "cidr": f"10.{i // 256}.{i % 256}.0/24"} for i in range(256)]
    intent = {"fabric": {"switches": [{"name": "s1", "dpid": 1}]},
              "tenants": [{"name": "t", "segments": segments}]}  # fmt: skip
    with pytest.raises(CompileError, match="segment index 256"):
        compile_network(resolve(Intent.model_validate(intent)))


def test_docs_pipeline_matches_the_code() -> None:
    """docs/pipeline.md lists exactly the pipeline's tables and the priority constants it uses."""
    import re

    from segctl.flows import pipeline

    text = (ROOT / "docs" / "pipeline.md").read_text()
    rows = re.findall(r"^\| (\d+) \| (\w+) \|", text, flags=re.MULTILINE)
    assert [(int(n), name) for n, name in rows] == [(t.id, t.name) for t in TABLES]
    for name, value in re.findall(r"`(PRIO_[A-Z_]+)=(\d+)`", text):
        assert getattr(pipeline, name) == int(value), name
    assert "0x1001" in text and "02:5e:00:00:00:01" in text  # the worked example's values
    golden = (GOLDEN / "leaf-spine" / "leaf1.flows").read_text()
    for line in re.findall(r"`(in_port=10,ip,vlan_tci=[^`]+|tcp,metadata=0x1001[^`]+)`", text):
        assert line in golden, line


def test_compiler_next_hops_equal_the_topology_model() -> None:
    """The compiler's plain-data BFS picks the same next hops as ``next_hop_ports`` (ties included)."""
    from segctl.flows.compiler import _Compiler
    from segctl.topology.model import next_hop_ports
    from segctl.topology.synthetic import synthetic_intent

    for net in (_network("leaf-spine"), resolve(synthetic_intent(k=4, tenants=2, endpoints=8))):
        graph, compiler = build_graph(net), _Compiler(net)
        for sw in net.switches:
            assert compiler.hops(sw.name) == next_hop_ports(graph, sw.name), sw.name
