"""Compiler invariants on every example: determinism, golden files, guards, cookies, conjunctions.

Golden files live in ``tests/unit/golden/<example>/<switch>.{flows,meters}``; regenerate them
with ``SEGCTL_UPDATE_GOLDEN=1 pytest tests/unit/test_compiler.py`` and review the diff.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.intents import EDGE_CASES

from segctl.errors import CompileError
from segctl.flows.compiler import SwitchProgram, compile_network
from segctl.flows.conjunctions import check_conjunctions
from segctl.flows.external import NAT_ZONE_BASE
from segctl.flows.pipeline import (
    CLASSIFY,
    EGRESS,
    FORWARD,
    LOG_MAX_LEN,
    META_SEGMENT_SHIFT,
    NAT_IN,
    NAT_OUT,
    POLICY_DST,
    POLICY_SRC,
    PRIO_ENDPOINT,
    ROUTE,
    TABLES,
    UPLINK_IN,
    UPLINK_OUT,
)
from segctl.flows.plan import CompilePlan
from segctl.flows.policy import Grant, rank_grants
from segctl.flows.rules import Rule
from segctl.openflow.cookies import Kind, decode_cookie, describe_cookie
from segctl.openflow.ofctl import (
    IN_PORT,
    Conjunction,
    Controller,
    Ct,
    Drop,
    Meter,
    Output,
    PopVlan,
    PushVlan,
    SetField,
    WriteMetadata,
    mac_int,
)
from segctl.topology.analysis import ROUTER_ONLY_ICMPV6
from segctl.topology.model import build_graph, fabric_ports
from segctl.topology.network import Network, load_network, resolve
from segctl.topology.schema import Intent
from segctl.verifier.simulate import CT_EST, CT_NEW, CT_TRK, Packet, simulate
from segctl.verifier.symbolic import Topology
from segctl.verifier.verify import verify

ROOT = Path(__file__).resolve().parents[2]
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
    """A drop, or with ``logging.default_deny`` policy_src's logged drop (a copy to the
    controller and no forwarding action)."""
    network, programs = compiled
    logged_miss = (Controller(max_len=LOG_MAX_LEN),)
    uplink_tables = {NAT_IN.id, UPLINK_IN.id, NAT_OUT.id, UPLINK_OUT.id}
    uplinks = {x.switch for x in network.externals}
    for name, prog in programs.items():
        for table in TABLES:
            if table.id in uplink_tables and name not in uplinks:
                # the external networks' tables are used, and so have rules, on an uplink's switch only
                assert not [r for r in prog.rules if r.table == table.id]
                continue
            misses = [r for r in prog.rules if r.table == table.id and r.priority == 0]
            want = (
                logged_miss
                if table.id == POLICY_SRC.id and network.intent.logging.default_deny
                else (Drop(),)
            )
            assert len(misses) == 1 and misses[0].match == () and misses[0].actions == want


def test_edge_outputs_only_through_the_egress_guard(
    compiled: tuple[Network, dict[str, SwitchProgram]],
) -> None:
    net, programs = compiled
    graph = build_graph(net)
    transit = {p.vlan[t] for p in CompilePlan(net).externals for t in p.users}
    for name, prog in programs.items():
        fabric = set(fabric_ports(graph, name))
        edge = {ep.port: ep for ep in net.endpoints if ep.switch == name}
        uplinks = {x.port: x for x in net.externals if x.switch == name}
        for rule in prog.rules:
            m = _match(rule)
            for action in rule.actions:
                if not isinstance(action, Output):
                    continue
                if action.port in fabric:
                    assert rule.table == FORWARD.id
                    assert isinstance(rule.actions[0], PushVlan) and isinstance(rule.actions[1], SetField)
                    assert rule.actions[1].value in {s.vlan for s in net.segments} | transit
                    continue
                if action.port in uplinks or (action.port == IN_PORT and int(m.get("in_port", 0)) in uplinks):
                    # to the router: translated packets (53), or ARP replies to it (46)
                    assert rule.table in (UPLINK_OUT.id, NAT_IN.id), rule.to_ofctl()
                    continue
                if action.port == IN_PORT and rule.table == NAT_IN.id:
                    assert m["arp_op"] == "1" and m["arp_sha"] == uplinks[min(uplinks)].router_mac
                    continue
                if action.port == IN_PORT and rule.table == UPLINK_IN.id:
                    # the fabric's neighbour advertisement, back to the router (46 made it of
                    # the router's solicitation)
                    assert m["icmp_type"] == "136" and int(m["metadata"].split("/")[0], 16) == 0xFF000
                    continue
                assert rule.table == EGRESS.id, rule.to_ofctl()
                ep = edge[int(m["in_port"])] if action.port == IN_PORT else edge[action.port]
                value, mask = (int(x, 16) for x in m["metadata"].split("/"))
                assert value == _ctx(net, ep.tenant, ep.segment) and mask == 0xFFFFF
                assert m["dl_dst"] == ep.mac
                if action.port == IN_PORT:  # the gateway's ARP and ND responders, and nothing else
                    assert m["in_port"] == str(ep.port)
                    if "arp_sha" in m:
                        assert m["arp_sha"] == net.tenant(ep.tenant).gateway_mac
                    else:  # its advertisement for gateway6, to one of the endpoint's addresses
                        assert (m["icmp_type"], m["ipv6_src"]) == ("136", str(ep.ipv6_gateway))
                        assert m["ipv6_dst"] in {str(a) for a in ep.ipv6_sources}
                else:
                    ipv6 = {str(a) for a in ep.ipv6_sources}  # global and link-local
                    assert str(ep.ip) in (m.get("nw_dst"), m.get("arp_tpa")) or (
                        m.get("ipv6_dst") in ipv6 or m.get("nd_target") in ipv6
                    ), rule.to_ofctl()


def test_classify_binds_edge_ports_and_fabric_vlans(
    compiled: tuple[Network, dict[str, SwitchProgram]],
) -> None:
    net, programs = compiled
    graph = build_graph(net)
    by_vlan = {s.vlan: s for s in net.segments}
    plans = CompilePlan(net).externals
    transit = {p.vlan[t]: p.transit(t) for p in plans for t in p.users}
    for name, prog in programs.items():
        fabric = set(fabric_ports(graph, name))
        edge = {ep.port: ep for ep in net.endpoints if ep.switch == name}
        uplinks = {p.ext.port: p for p in plans if p.ext.switch == name}
        for rule in (r for r in prog.rules if r.table == CLASSIFY.id and r.priority > 0):
            m = _match(rule)
            port = int(m["in_port"])
            if port in uplinks:  # the outside: IPv4 or ARP requests to the public range only,
                plan = uplinks[port]  # IPv6 and solicitations to endpoints reached over IPv6
                assert m["vlan_tci"] == "0x0000/0x1fff"
                routed6 = {str(ep.ipv6) for eps in plan.inbound6.values() for ep in eps}
                if m["proto"] in ("ipv6", "icmp6"):
                    assert m.get("ipv6_dst", m.get("nd_target")) in routed6, rule.to_ofctl()
                else:
                    assert m.get("nw_dst", m.get("arp_tpa")) == str(plan.ext.cidr), rule.to_ofctl()
                assert rule.actions[0] == WriteMetadata(plan.uplink_context, 0xFFFFFFFF)
                continue
            if port in fabric and int(m["vlan_tci"].split("/")[0], 16) & 0xFFF in transit:
                vid = int(m["vlan_tci"].split("/")[0], 16) & 0xFFF
                assert m["proto"] in ("ip", "ipv6")
                assert rule.actions[1] == WriteMetadata(transit[vid], 0xFFFFFFFF)
                continue
            if rule.actions == (Drop(),):  # the RA guard (test_ra_guard_...)
                assert port in edge and edge[port].ipv6 is not None, rule.to_ofctl()
                continue
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
                     "ipv6": m.get("ipv6_src") in {str(a) for a in ep.ipv6_sources}}  # fmt: skip
            assert bound[m["proto"]], rule.to_ofctl()
            if ep.rate_pps or ep.rate_kbps:
                meter = rule.actions[0]
                assert isinstance(meter, Meter) and meter.id in {x.id for x in prog.meters}


def test_ra_guard_drops_router_only_icmpv6_from_every_ipv6_endpoint_port(
    compiled: tuple[Network, dict[str, SwitchProgram]],
) -> None:
    """Router advertisements and redirects from an endpoint port drop in table 0, above the
    spoof guard's admission (whatever their addresses); ports without IPv6 need no guard."""
    net, programs = compiled
    for name, prog in programs.items():
        guards: dict[int, set[int]] = {}
        admit: dict[tuple[int, str], int] = {}
        for rule in (r for r in prog.rules if r.table == CLASSIFY.id and r.priority > 0):
            m = _match(rule)
            if rule.actions == (Drop(),):
                assert m["proto"] == "icmp6" and set(m) == {"in_port", "proto", "icmp_type"}
                guards.setdefault(int(m["in_port"]), set()).add(int(m["icmp_type"]))
                assert rule.priority > PRIO_ENDPOINT
            elif m.get("proto") == "ipv6" and "ipv6_src" in m:  # an edge port's admission
                admit[(int(m["in_port"]), m["ipv6_src"])] = rule.priority
        with6 = {ep.port for ep in net.endpoints if ep.switch == name and ep.ipv6 is not None}
        assert set(guards) == with6 == {port for port, _ in admit}
        assert all(types == set(ROUTER_ONLY_ICMPV6) == {134, 137} for types in guards.values())


def test_ipv6_endpoints_are_bound_to_and_reached_at_their_global_and_link_local_addresses(
    compiled: tuple[Network, dict[str, SwitchProgram]],
) -> None:
    """Both addresses of an IPv6 endpoint (the link-local one is EUI-64 of its MAC unless
    declared) are admitted from its port, solicited (to the solicited-node group) and
    delivered to it, strict segment or not; nothing else."""
    net, programs = compiled
    for ep in net.endpoints:
        if ep.ipv6 is None:
            assert ep.ipv6_link_local is None
            continue
        addresses = {str(ep.ipv6), str(ep.ipv6_link_local)}
        assert str(ep.ipv6_link_local).startswith("fe80::") and len(addresses) == 2
        rules = [_match(r) for r in programs[ep.switch].rules]
        admitted = {
            m["ipv6_src"]
            for m in rules
            if m.get("ipv6_src") and m.get("in_port") == str(ep.port) and m.get("icmp_type") != "136"
        }  # (136: the gateway's advertisement back to the port, from gateway6)
        assert admitted == addresses
        to_me = [m for m in rules if m.get("dl_dst") == ep.mac and m.get("ipv6_dst")]
        delivered = {m["ipv6_dst"] for m in to_me if not m.get("nd_target")}
        solicited = {m["nd_target"] for m in to_me if m.get("nd_target")}
        assert delivered == solicited == addresses
        assert {m["ipv6_dst"] for m in to_me if m.get("nd_target")} == {"ff02::1:ff00:0/104"}


def test_conntrack_zones_are_tenant_ids(compiled: tuple[Network, dict[str, SwitchProgram]]) -> None:
    """A tenant's zone is its id; its NAT zone (uplink tables only) is ``0x1000 | id``."""
    net, programs = compiled
    ids = {t.id for t in net.tenants}
    for prog in programs.values():
        for rule in prog.rules:
            for action in rule.actions:
                if isinstance(action, Ct):
                    if rule.table in (NAT_IN.id, NAT_OUT.id):
                        assert action.zone in {NAT_ZONE_BASE | i for i in ids}, rule.to_ofctl()
                        continue
                    assert action.zone in ids and action.nat is None, rule.to_ofctl()


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


def _dst_priorities(net: Network) -> dict[str, int]:
    s2 = compile_network(net)["s2"]
    return {
        describe_cookie(r.cookie, net): r.priority
        for r in s2.rules
        if r.table == POLICY_DST.id and r.priority > 3000 - 100
    }


def test_stateful_grants_rank_above_stateless_ones_they_overlap() -> None:
    net = _network("edge-cases")
    # a-to-s (stateless) and b-to-s (stateful) never meet one packet (a and b differ): one priority
    prio = _dst_priorities(net)
    assert prio["policy lab/b-to-s"] == prio["policy lab/a-to-s"] == 3000
    stateless = [
        r for r in compile_network(net)["s2"].rules if describe_cookie(r.cookie, net) == "policy lab/a-to-s"
    ]
    assert stateless and not any(isinstance(a, Ct) for r in stateless for a in r.actions)
    # from one source on one service they overlap: the stateful grant ranks above (its commit wins)
    doc = copy.deepcopy(EDGE_CASES)
    doc["tenants"][0]["policies"][1]["from"] = {"endpoint": "a"}
    prio = _dst_priorities(resolve(Intent.model_validate(doc)))
    assert prio["policy lab/b-to-s"] > prio["policy lab/a-to-s"]


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
    gw = mac_int(net.tenant(s.tenant).gateway_mac)
    mac = mac_int(s.mac)
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


def test_one_conjunction_id_at_two_priorities_is_refused() -> None:
    """OVS asks for conjunction ids unique per table: one id at two priorities is refused."""
    a = [_conj_rule(2000, 7, 1, [("proto", "ip"), ("nw_src", "10.0.0.1")]),
         _conj_rule(2000, 7, 2, [("proto", "tcp"), ("tcp_dst", "80")])]  # fmt: skip
    moved = Rule.make(
        POLICY_SRC.id, 1999, 1, [("proto", "ip"), ("nw_src", "10.0.0.2")], [Conjunction(7, 1, 2)]
    )
    with pytest.raises(CompileError, match="conjunction 7 at priorities"):
        check_conjunctions([*a, moved], switch="s1")
    other_table = Rule.make(POLICY_DST.id, 1999, 1, moved.match, moved.actions)
    check_conjunctions([*a, other_table], switch="s1")


def _clause(cid: int, clause: int, match: list[tuple[str, str]]) -> Rule:
    return Rule.make(POLICY_SRC.id, 3000, 1, match, [Conjunction(cid, clause, 3)])


def _domain_conj(cid: int, meta: str, src: str, port: str) -> list[Rule]:
    """A policy-style conjunction whose three clauses all match metadata ``meta``."""
    m = ("metadata", meta)
    return [_clause(cid, 1, [m, ("proto", "ip"), ("nw_src", src)]),
            _clause(cid, 2, [m, ("proto", "ip"), ("nw_dst", "10.0.1.1")]),
            _clause(cid, 3, [m, ("proto", "tcp"), ("tcp_dst", port)])]  # fmt: skip


def test_conjunctions_of_two_domains_share_a_priority_only_when_disjoint() -> None:
    """Same priority, same remote and service clauses: disjoint by the domain's metadata
    (tenant 1 vs tenant 2), overlapping when both are in one domain."""
    tenant1 = _domain_conj(1, "0x1/0xfff00fff", "10.0.0.1", "80")
    tenant2 = _domain_conj(2, "0x2/0xfff00fff", "10.0.0.1", "80")
    check_conjunctions([*tenant1, *tenant2], switch="s1")
    origin = _domain_conj(2, "0x100001/0xfff00fff", "10.0.0.1", "80")  # tenant 1, ORIGIN 1
    check_conjunctions([*tenant1, *origin], switch="s1")
    same = _domain_conj(2, "0x1/0xfff00fff", "10.0.0.0/24", "0x40/0xffc0")
    with pytest.raises(CompileError, match="conjunctions 1 and 2"):
        check_conjunctions([*tenant1, *same], switch="s1")
    # a clause that does not fix the domain bits in all its flows must fall back to flow pairs
    loose = _domain_conj(2, "0x2/0xfff00fff", "10.0.0.1", "80")
    loose[1] = _clause(2, 2, [("proto", "ip"), ("nw_dst", "10.0.1.1")])
    loose[2] = _clause(2, 3, [("proto", "tcp"), ("tcp_dst", "80")])
    loose.append(_clause(2, 1, [("metadata", "0x1/0xfff00fff"), ("proto", "ip"), ("nw_src", "10.0.0.1")]))
    with pytest.raises(CompileError, match="conjunctions 1 and 2"):
        check_conjunctions([*tenant1, *loose], switch="s1")


def _meta_of(rule: Rule) -> tuple[int, int] | None:
    text = _match(rule).get("metadata")
    if text is None:
        return None
    value, _, mask = text.partition("/")
    return int(value, 16), int(mask, 16) if mask else 0xFFFFFFFF


def _domain_of(rule: Rule) -> tuple[int, int]:
    """(TENANT, ORIGIN) bits that a policy-band rule matches exactly (it must match both)."""
    meta = _meta_of(rule)
    assert meta is not None and meta[1] & 0xFFF00FFF == 0xFFF00FFF, rule.to_ofctl()
    return meta[0] & 0xFFF, meta[0] >> 20


def _conjunction_layout(programs: dict[str, SwitchProgram]) -> dict[tuple[int, int], set[tuple[int, int]]]:
    """Check the conjunction invariants of compiled programs; return, per policy-table
    (table, priority), the domains of the conjunctions found there (on any one switch)."""
    shared_levels: dict[tuple[int, int], set[tuple[int, int]]] = {}
    for prog in programs.values():
        prios: dict[tuple[int, int], set[int]] = {}
        domains: dict[tuple[int, int], set[tuple[int, int]]] = {}
        for rule in prog.rules:
            policy = (
                rule.table in (POLICY_SRC.id, POLICY_DST.id) and rule.priority <= 3000 and rule.priority > 0
            )
            conj = _match(rule).get("conj_id")
            ids = [a.id for a in rule.actions if isinstance(a, Conjunction)] + ([int(conj)] if conj else [])
            for cid in ids:
                prios.setdefault((rule.table, cid), set()).add(rule.priority)
                if policy:
                    domains.setdefault((rule.table, cid), set()).add(_domain_of(rule))
            if policy:
                _domain_of(rule)  # every policy-band rule is qualified by its domain
        assert all(len(p) == 1 for p in prios.values()), "a conjunction id at two priorities"
        assert all(len(d) == 1 for d in domains.values()), "a conjunction id in two domains"
        by_level: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for (table, cid), (prio,) in ((k, tuple(v)) for k, v in prios.items()):
            if (table, cid) in domains:
                by_level.setdefault((table, prio), []).extend(domains[(table, cid)])
        for level, doms in by_level.items():
            # conjunctions of one domain at one level never meet one packet: check_conjunctions
            # refuses them otherwise, and the verifier's findings list any overlap
            if len(set(doms)) > 1:
                shared_levels.setdefault(level, set()).update(doms)
    return shared_levels


def test_compiled_conjunctions_are_unique_per_table_and_domain(
    compiled: tuple[Network, dict[str, SwitchProgram]],
) -> None:
    """Each conjunction id sits at one priority of a table and in one context domain; every
    rule of the policy band matches its domain's TENANT and ORIGIN bits; conjunctions that
    share a (table, priority) belong to different domains or never meet one packet."""
    _conjunction_layout(compiled[1])


def test_conjunctions_of_different_tenants_share_priorities_in_a_fat_tree() -> None:
    """Per-domain ranking really reuses priorities: in a fat-tree with many tenants, policy
    conjunctions of different tenants meet at one (table, priority), and stay apart."""
    from segctl.topology.synthetic import synthetic_intent

    net = resolve(synthetic_intent(k=4, tenants=2, endpoints=24))
    programs = compile_network(net)
    shared = _conjunction_layout(programs)
    assert any(len(doms) > 1 for doms in shared.values()), "no priority shared by two domains"
    report = verify(net, {name: [r.to_flow() for r in p.rules] for name, p in programs.items()})
    assert report.ok and not report.findings


# ------------------------------------------------------------------ per-domain priorities


def _tenant_doc(intent: Intent) -> dict[str, Any]:
    return intent.model_dump(mode="json", by_alias=True, exclude_none=True)


def _add_policy(doc: dict[str, Any], tenant: int) -> None:
    policies = doc["tenants"][tenant]["policies"]
    policies.append(dict(policies[0], name="extra", services=[{"proto": "tcp", "port": 7777}]))


def _remove_policy(doc: dict[str, Any], tenant: int) -> None:
    del doc["tenants"][tenant]["policies"][0]


def _make_stateless(doc: dict[str, Any], tenant: int) -> None:
    doc["tenants"][tenant]["policies"][0]["stateful"] = False


@pytest.mark.parametrize(
    "edit", [_add_policy, _remove_policy, _make_stateless], ids=["add", "remove", "stateless"]
)
def test_one_tenant_policy_change_moves_only_that_tenants_rules(
    edit: Callable[[dict[str, Any], int], None],
) -> None:
    """Adding, removing or making stateless one policy of one tenant changes only rules of
    that tenant's contexts (policy tables, metadata TENANT = that tenant) on every switch:
    the other tenants' priorities and conjunction ids, and the shared service's rules at
    the provider, stay byte-identical (with one global ranking they were renumbered)."""
    from segctl.topology.synthetic import synthetic_intent

    intent = synthetic_intent(k=4, tenants=6, endpoints=60)
    doc = _tenant_doc(intent)
    edit(doc, 2)
    old_net, new_net = resolve(intent), resolve(Intent.model_validate(doc))
    tid = new_net.tenant(doc["tenants"][2]["name"]).id
    old, new = compile_network(old_net), compile_network(new_net)
    changed = 0
    for sw in old:
        before, after = set(old[sw].rules), set(new[sw].rules)
        for rule in before ^ after:
            assert rule.table in (POLICY_SRC.id, POLICY_DST.id), (sw, rule.to_ofctl())
            assert _domain_of(rule)[0] == tid, (sw, rule.to_ofctl())
            changed += 1
    assert changed


def test_policy_band_is_per_domain() -> None:
    """2,000 priorities per domain: two tenants with 1,500 policies each compile (3,000
    grants: more than the whole intent could have with one global ranking), 2,001 in one
    tenant is a CompileError naming the domain."""

    def intent(counts: list[int]) -> Network:
        tenants = []
        for t, n in enumerate(counts):
            eps = [{"name": f"e{i}", "segment": "s", "mac": f"02:00:00:{t:02x}:00:{i:02x}",
                    "ip": f"10.0.0.{i + 2}", "attach": f"s1:{10 * t + i + 1}"} for i in range(2)]  # fmt: skip
            pols = [{"name": f"p{k}", "from": {"endpoint": "e0"}, "to": {"endpoint": "e1"},
                     "services": [{"proto": "tcp", "port": 1 + k}]} for k in range(n)]  # fmt: skip
            tenants.append({"name": f"t{t}", "segments": [{"name": "s", "cidr": "10.0.0.0/24"}],
                            "endpoints": eps, "policies": pols})  # fmt: skip
        return resolve(
            Intent.model_validate({"fabric": {"switches": [{"name": "s1", "dpid": 1}]}, "tenants": tenants})
        )

    programs = compile_network(intent([1500, 1500]))
    prios = {r.priority for r in programs["s1"].rules if r.table == POLICY_SRC.id and 0 < r.priority <= 3000}
    assert min(prios) == 3000 - 1499
    with pytest.raises(
        CompileError,
        match="2001 policy grants need 2001 priorities in the policy_src domain of tenant t1, more than",
    ):
        compile_network(intent([3, 2001]))
    # conjunction ids hold 18 bits of cookie index: a shared service past that is refused too
    far = Grant("far", Kind.SHARED, 1, (1 << 18) - 1, (), (), (), True, 1, 2)
    with pytest.raises(CompileError, match="no conjunction id for shared tenant 1 index 262143"):
        rank_grants([far])
    assert (
        rank_grants([replace(far, cookie_index=(1 << 18) - 2)])[0].conj_id == (1 << 30) | (1 << 18) | 0x3FFFF
    )


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
    tables = text[text.index("## Tables") : text.index("### Priority bands")]
    rows = re.findall(r"^\| (\d+) \| (\w+) \|", tables, flags=re.MULTILINE)
    assert [(int(n), name) for n, name in rows] == [(t.id, t.name) for t in TABLES]
    for name, value in re.findall(r"`(PRIO_[A-Z_]+)=(\d+)`", text):
        assert getattr(pipeline, name) == int(value), name
    assert "0x1001" in text and "02:5e:00:00:00:01" in text  # the worked example's values
    golden = (GOLDEN / "leaf-spine" / "leaf1.flows").read_text()
    for line in re.findall(r"`(in_port=10,ip,vlan_tci=[^`]+|tcp,metadata=0x1001[^`]+)`", text):
        assert line in golden, line


def test_compiler_plans_paths_on_the_topology_model() -> None:
    """The compiler's next hops are the topology model's (``next_hop_ports``, ties included),
    and each one is a step down networkx's own shortest-path distance."""
    import networkx as nx

    from segctl.flows.plan import CompilePlan
    from segctl.topology.model import next_hop_ports, switch_graph
    from segctl.topology.synthetic import synthetic_intent

    for net in (_network("leaf-spine"), resolve(synthetic_intent(k=4, tenants=2, endpoints=8))):
        graph, compiler = build_graph(net), CompilePlan(net)
        plain = nx.Graph(switch_graph(graph))
        for sw in net.switches:
            hops = compiler.hops(sw.name)
            assert hops == next_hop_ports(graph, sw.name), sw.name
            dist = nx.single_source_shortest_path_length(plain, sw.name)
            for node, port in hops.items():
                assert dist[fabric_ports(graph, node)[port][0]] == dist[node] - 1


#: Digests of compiled output recorded before path planning moved onto the topology model.
COMPILED_DIGESTS = GOLDEN / "compiled.sha256"
_DIGEST_HEADER = (
    "# sha256 of every switch's flows and meters text (switch name, flows, meters in fabric order),\n"
    "# last moved when grant priorities were packed (rank_grants: grants that never meet one packet\n"
    "# share a priority and their clause flows; before that, by path planning on the topology model).\n"
    "# Regenerate with SEGCTL_UPDATE_GOLDEN=1 pytest tests/unit/test_compiler.py and review why it moved.\n"
)


def _digest_network(name: str) -> Network:
    from segctl.topology.synthetic import synthetic_intent

    kind, _, spec = name.partition(":")
    if kind == "scenario":
        return load_network(ROOT / "segctl" / "mininet_scenarios" / "intents" / f"{spec}.yaml")
    args = {k: int(v) for k, v in (item.split("=") for item in spec.split(","))}
    return resolve(synthetic_intent(**args))


def _compiled_digest(net: Network) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name, prog in compile_network(net).items():
        for text in (name, prog.flows_text(), prog.meters_text()):
            digest.update(text.encode())
    return digest.hexdigest()


def test_compiled_rules_of_scenario_and_synthetic_intents_are_unchanged() -> None:
    """Byte-identical compiled output beyond the examples' golden files: the scenario intents
    and synthetic fat-trees (k = 4, 6, 8: many equal-cost paths, so every tie-break counts)."""
    lines = [line for line in COMPILED_DIGESTS.read_text().splitlines() if not line.startswith("#")]
    recorded = dict(line.split() for line in lines)
    assert len(recorded) >= 9
    now = {name: _compiled_digest(_digest_network(name)) for name in recorded}
    if os.environ.get("SEGCTL_UPDATE_GOLDEN") == "1":
        COMPILED_DIGESTS.write_text(_DIGEST_HEADER + "".join(f"{n} {d}\n" for n, d in now.items()))
    assert now == recorded
