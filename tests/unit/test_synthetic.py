"""The synthetic intent generator: valid, deterministic, and the counts it promises."""

from __future__ import annotations

from collections import Counter

import networkx as nx
import pytest

from segctl.topology.model import build_graph, switch_graph, switch_path
from segctl.topology.network import resolve
from segctl.topology.synthetic import (
    HOST_PORT_BASE,
    PROVIDER_TENANT,
    fat_tree,
    fat_tree_counts,
    policy_pair,
    synthetic_intent,
)
from segctl.topology.validate import validate_intent


@pytest.mark.parametrize("k", [2, 4, 6, 8])
def test_fat_tree_shape(k: int) -> None:
    fabric = fat_tree(k)
    core, agg, edge = fat_tree_counts(k)
    names = [s["name"] for s in fabric["switches"]]
    assert (core, agg, edge) == (k * k // 4, k * k // 2, k * k // 2)
    assert len(names) == len(set(names)) == core + agg + edge == 5 * k * k // 4
    assert len({s["dpid"] for s in fabric["switches"]}) == len(names)
    # every switch has exactly k fabric ports, except edge switches (k/2 up-links)
    intent = synthetic_intent(k=k, tenants=1, endpoints=0, shared=False)
    graph = switch_graph(build_graph(resolve(intent)))
    degree = dict(graph.degree())
    for name in names:
        want = k // 2 if name.startswith("edge") else k
        assert degree[name] == want, name
    assert nx.is_connected(graph)
    # edge to edge in another pod is 4 hops (edge-agg-core-agg-edge)
    if k >= 4:
        assert len(switch_path(build_graph(resolve(intent)), "edge0-0", f"edge{k - 1}-0")) == 5


def test_k16_has_320_switches() -> None:
    assert sum(fat_tree_counts(16)) == 320
    assert len(fat_tree(16)["switches"]) == 320


@pytest.mark.parametrize(
    ("k", "tenants", "endpoints", "segments"), [(4, 1, 1, 1), (4, 3, 12, 2), (4, 7, 50, 3), (6, 20, 95, 2)]
)
def test_valid_and_counts(k: int, tenants: int, endpoints: int, segments: int) -> None:
    intent = synthetic_intent(k=k, tenants=tenants, endpoints=endpoints, segments=segments, providers=3)
    assert validate_intent(intent) == []
    net = resolve(intent)
    workload = [ep for ep in net.endpoints if ep.tenant != PROVIDER_TENANT]
    assert len(workload) == endpoints
    assert len([ep for ep in net.endpoints if ep.tenant == PROVIDER_TENANT]) == 3
    assert len(net.tenants) == tenants + 1
    per_tenant = Counter(ep.tenant for ep in workload)
    assert max(per_tenant.values()) - min(per_tenant.values()) <= 1
    assert len(net.segments) == tenants * segments + 1
    # endpoints only on edge switches, on host ports, never twice on one port
    attach = [(ep.switch, ep.port) for ep in net.endpoints]
    assert len(attach) == len(set(attach))
    assert all(sw.startswith("edge") for sw, _ in attach)
    assert all(port > k // 2 for _, port in attach)
    # spread: the busiest edge switch has at most one more workload endpoint than the idlest
    load = Counter(ep.switch for ep in workload)
    edges = fat_tree_counts(k)[2]
    if endpoints >= edges:
        assert len(load) == edges and max(load.values()) - min(load.values()) <= 1
    # groups select by tier and partition each tenant; every tenant consumes the shared service
    for tenant in net.tenants:
        if tenant.name == PROVIDER_TENANT:
            continue
        groups = [net.group_members(tenant.name, g) for g in ("web", "app", "db")]
        assert sum(len(g) for g in groups) == per_tenant[tenant.name]
    consumers = {c.tenant for c in net.shared_services[0].consumers}
    assert consumers == {t.name for t in net.tenants} - {PROVIDER_TENANT}


def test_overlapping_address_space_across_tenants() -> None:
    net = resolve(synthetic_intent(k=4, tenants=2, endpoints=4, segments=1))
    ips = Counter(str(ep.ip) for ep in net.endpoints if ep.tenant != PROVIDER_TENANT)
    assert max(ips.values()) == 2  # both tenants own 10.0.0.10: isolation cannot rest on IPs


def test_deterministic() -> None:
    a = synthetic_intent(k=4, tenants=5, endpoints=40).model_dump(mode="json", by_alias=True)
    b = synthetic_intent(k=4, tenants=5, endpoints=40).model_dump(mode="json", by_alias=True)
    assert a == b
    assert a != synthetic_intent(k=4, tenants=5, endpoints=41).model_dump(mode="json", by_alias=True)


def test_no_shared_service() -> None:
    net = resolve(synthetic_intent(k=4, tenants=2, endpoints=6, shared=False))
    assert net.shared_services == []
    assert PROVIDER_TENANT not in {t.name for t in net.tenants}


@pytest.mark.parametrize(("a", "b", "p"), [(1, 1, 1), (10, 10, 5), (50, 7, 3)])
def test_policy_pair(a: int, b: int, p: int) -> None:
    intent = policy_pair(a, b, p)
    assert validate_intent(intent) == []
    net = resolve(intent)
    policy = net.policies("t")[0]
    src, dst = net.select("t", policy.from_), net.select("t", policy.to)
    assert len(src) == a and {ep.switch for ep in src} == {"leafA"}
    assert len(dst) == b and {ep.switch for ep in dst} == {"leafB"}
    assert len(policy.services) == p
    assert all(ep.port >= HOST_PORT_BASE for ep in net.endpoints)
    assert net.segments[0].strict


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": 3},
        {"k": 0},
        {"tenants": 0},
        {"segments": 0},
        {"services": 0},
        {"providers": 0},
        {"tenants": 4095},
    ],
)
def test_bad_arguments(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        synthetic_intent(**kwargs)


def test_two_rack_shared6_makes_the_dns_dual_stack_and_both_engines_agree() -> None:
    """``shared6`` (the bench's ``--shared6``): the DNS behind a gateway6, reached over IPv6 by
    every rack endpoint of both tenants (which share their addresses)."""
    from segctl.flows.compiler import compile_network
    from segctl.openflow.ofctl import parse_flows
    from segctl.topology.analysis import allowed_grants
    from segctl.topology.synthetic import two_rack
    from segctl.verifier.verify import verify

    with pytest.raises(ValueError, match="shared6 needs ipv6 and routed"):
        two_rack(2, ipv6=True, shared6=True)
    net = resolve(two_rack(2, ipv6=True, routed=True, shared6=True))
    dns = next(ep for ep in net.endpoints if ep.name == "dns")
    assert str(dns.ipv6) == "fd16::10" and dns.ipv6_gateway is not None
    racks = [ep for ep in net.endpoints if ep.key != dns.key]
    assert all(allowed_grants(net, ep, dns, "udp", 53, family=6) for ep in racks)
    tables = {n: parse_flows(p.flows_text()) for n, p in compile_network(net).items()}
    for engine in ("wavefront", "reference"):
        assert verify(net, tables, engine=engine).ok, engine


def test_two_rack_external_over_ipv6_gives_each_tenant_its_own_prefixes() -> None:
    """``external`` with ``ipv6`` and ``routed`` (the bench's ``--ipv6 --routed --external``):
    the uplink has IPv6, tenants stop sharing IPv6 prefixes (the outside routes to them), and
    the egress and ingress policies exist over IPv6 too; the proof holds in both engines."""
    from segctl.flows.compiler import compile_network
    from segctl.openflow.ofctl import parse_flows
    from segctl.topology.outside import external_grants, public_source6
    from segctl.topology.synthetic import two_rack
    from segctl.verifier.verify import verify

    net = resolve(two_rack(2, ipv6=True, routed=True, external=True))
    assert str(net.external("internet").cidr6) == "2001:db8:ff::/64"
    prefixes = [str(seg.cidr6) for seg in net.segments if seg.cidr6 is not None]
    assert prefixes[:4] == ["fd01::/64", "fd01:1::/64", "fd02::/64", "fd02:1::/64"]
    six = [g for g in external_grants(net) if g.family == 6]
    assert sorted({g.name for g in six}) == [
        "policy t1/in6",
        "policy t1/out6",
        "policy t2/in6",
        "policy t2/out6",
    ]
    b0 = net.endpoint("t2", "b0")
    assert str(public_source6(net, b0, "internet")) == str(b0.ipv6) and str(b0.ipv6).startswith("fd02:1::")
    assert resolve(two_rack(2, ipv6=True, external=True)).external("internet").cidr6 is None  # not routed
    tables = {n: parse_flows(p.flows_text()) for n, p in compile_network(net).items()}
    for engine in ("wavefront", "reference"):
        assert verify(net, tables, engine=engine).ok, engine
