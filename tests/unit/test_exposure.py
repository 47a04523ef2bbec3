"""Intent analysis (cross-tenant paths, blast radius): hand-computed cases, and the class-graph
search against a brute force over the full allowed-connection graph with networkx."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from support.random_intents import intents

from segctl.topology.analysis import expected_reachability
from segctl.topology.exposure import BlastRadius, CrossTenantPath, analyse, connection_graph
from segctl.topology.network import Network, load_network, resolve
from segctl.topology.schema import Intent
from segctl.topology.synthetic import synthetic_intent

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
SCENARIO_INTENTS = sorted((ROOT / "segctl" / "mininet_scenarios" / "intents").glob("*.yaml"))


def _radius(network: Network) -> dict[str, tuple[int, ...]]:
    return {f"{b.endpoint[0]}/{b.endpoint[1]}": b.per_hop for b in analyse(network).blast_radius}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_the_examples_have_no_cross_tenant_path(path: Path) -> None:
    assert analyse(load_network(path)).cross_tenant_paths == ()


def test_leaf_spine_blast_radius_by_hand() -> None:
    net = load_network(ROOT / "examples" / "leaf-spine.yaml")
    radius = _radius(net)
    # web1: web2 (segment), app1, app2 (web-to-app), dns1 (shared); then db1 through an app server
    assert radius["acme/web1"] == (4, 1)
    assert radius["acme/app1"] == (2,)  # db1 and dns1
    assert radius["acme/db1"] == (1,)  # dns1 only
    assert radius["infra/dns1"] == ()  # a provider opens nothing
    assert radius["globex/gweb1"] == (2,)  # gweb2 and dns1
    result = analyse(net)
    totals = [b.total for b in result.blast_radius]
    assert totals == sorted(totals, reverse=True)
    assert [b.endpoint for b in result.blast_radius][:2] == [("acme", "web1"), ("acme", "web2")]
    assert result.edges == len(expected_reachability(net)) == 17


def test_a_provider_sharing_a_segment_is_a_pivot() -> None:
    """The shared-dns scenario: dns1 shares a non-strict segment with ntp1, so a consumer of
    dns1 reaches ntp1 through it (red: both endpoints; blue: only its resolver b1)."""
    net = load_network(ROOT / "segctl" / "mininet_scenarios" / "intents" / "shared-dns.yaml")
    paths = analyse(net).cross_tenant_paths
    assert paths == (
        CrossTenantPath(
            "red",
            ("infra", "ntp1"),
            (("red", "r1"), ("infra", "dns1"), ("infra", "ntp1")),
            ("shared-service dns", "intra-segment svc"),
            2,
        ),
        CrossTenantPath(
            "blue",
            ("infra", "ntp1"),
            (("blue", "b1"), ("infra", "dns1"), ("infra", "ntp1")),
            ("shared-service dns", "intra-segment svc"),
            1,
        ),
    )
    assert paths[0].describe() == (
        "red/r1 -[shared-service dns]-> infra/dns1 -[intra-segment svc]-> infra/ntp1"
    )
    assert paths[0].to_json() == {
        "tenant": "red",
        "target": "infra/ntp1",
        "sources": 2,
        "path": ["red/r1", "infra/dns1", "infra/ntp1"],
        "grants": ["shared-service dns", "intra-segment svc"],
    }
    # making the provider's segment strict removes the pivot
    doc = net.intent.model_dump(mode="json", by_alias=True, exclude_none=True)
    doc["tenants"][2]["segments"][0]["strict"] = True
    assert analyse(resolve(Intent.model_validate(doc))).cross_tenant_paths == ()


def _mutual(*, a_reaches_b: str | None) -> Network:
    """t1/a consumes t2/p; t2/p consumes t1/b: a reaches b through t2. ``a_reaches_b``: how a
    reaches b inside t1 as well (None: not at all, "direct": a policy, "hop": via c)."""
    seg = {"name": "lan", "cidr": "10.1.0.0/24", "gateway": "10.1.0.1", "strict": True}
    eps = [
        {"name": n, "segment": "lan", "mac": f"02:00:00:00:01:0{i}", "ip": f"10.1.0.1{i}",
         "attach": f"s1:{i}"}
        for i, n in enumerate(["a", "b", "c"], start=1)
    ]  # fmt: skip

    def allow(name: str, src: str, dst: str) -> dict[str, Any]:
        any_ip = [{"proto": "any"}]
        return {"name": name, "from": {"endpoint": src}, "to": {"endpoint": dst}, "services": any_ip}

    policies: list[dict[str, Any]] = []
    if a_reaches_b == "direct":
        policies.append(allow("ab", "a", "b"))
    if a_reaches_b == "hop":
        policies += [allow("ac", "a", "c"), allow("cb", "c", "b")]
    doc = {
        "fabric": {"switches": [{"name": "s1", "dpid": 1}]},
        "tenants": [
            {"name": "t1", "segments": [seg], "endpoints": eps,
             "groups": [{"name": "a", "members": ["a"]}], "policies": policies},
            {"name": "t2", "segments": [{"name": "svc", "cidr": "10.2.0.0/24", "gateway": "10.2.0.1"}],
             "endpoints": [{"name": "p", "segment": "svc", "mac": "02:00:00:00:02:01", "ip": "10.2.0.10",
                            "attach": "s1:9"}],
             "groups": [{"name": "p", "members": ["p"]}]},
        ],
        "shared_services": [
            {"name": "up", "provider": {"tenant": "t2", "endpoints": ["p"]},
             "consumers": [{"tenant": "t1", "group": "a"}], "services": [{"proto": "tcp", "port": 80}]},
            {"name": "back", "provider": {"tenant": "t1", "endpoints": ["b"]},
             "consumers": [{"tenant": "t2", "group": "p"}], "services": [{"proto": "tcp", "port": 81}]},
        ],
    }  # fmt: skip
    return resolve(Intent.model_validate(doc))


def test_a_round_trip_through_another_tenant_counts_only_when_the_tenant_forbids_it() -> None:
    paths = analyse(_mutual(a_reaches_b=None)).cross_tenant_paths
    assert [(p.tenant, p.target, p.path) for p in paths] == [
        ("t1", ("t1", "b"), (("t1", "a"), ("t2", "p"), ("t1", "b")))
    ]
    assert analyse(_mutual(a_reaches_b="direct")).cross_tenant_paths == ()
    assert analyse(_mutual(a_reaches_b="hop")).cross_tenant_paths == ()


def _tenant(name: str, octet: int, eps: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "segments": [{"name": "lan", "cidr": f"10.{octet}.0.0/24", "gateway": f"10.{octet}.0.1"}],
        "endpoints": [
            {"name": e, "segment": "lan", "mac": f"02:00:00:00:{octet:02x}:{i:02x}",
             "ip": f"10.{octet}.0.{10 + i}", "attach": f"s1:{octet * 10 + i}"}
            for i, e in enumerate(eps)
        ],
        **extra,
    }  # fmt: skip


def test_a_chain_of_shared_services_pivots_through_two_tenants() -> None:
    """t1 consumes t2/p; p shares a segment with q; q consumes t3/r: t1/a reaches q and r."""
    doc = {
        "fabric": {"switches": [{"name": "s1", "dpid": 1}]},
        "tenants": [
            _tenant("t1", 1, ["a", "b"]),
            _tenant("t2", 2, ["p", "q"], groups=[{"name": "q", "members": ["q"]}]),
            _tenant("t3", 3, ["r"]),
        ],
        "shared_services": [
            {"name": "s12", "provider": {"tenant": "t2", "endpoints": ["p"]}, "consumers": [{"tenant": "t1"}],
             "services": [{"proto": "any"}]},
            {"name": "s23", "provider": {"tenant": "t3", "endpoints": ["r"]},
             "consumers": [{"tenant": "t2", "group": "q"}], "services": [{"proto": "any"}]},
        ],
    }  # fmt: skip
    paths = analyse(resolve(Intent.model_validate(doc))).cross_tenant_paths
    assert [(p.tenant, p.target, p.sources, p.grants) for p in paths] == [
        ("t1", ("t2", "q"), 2, ("shared-service s12", "intra-segment lan")),
        ("t1", ("t3", "r"), 2, ("shared-service s12", "intra-segment lan", "shared-service s23")),
    ]
    assert paths[1].path == (("t1", "a"), ("t2", "p"), ("t2", "q"), ("t3", "r"))


def test_blast_radius_counts_an_endpoint_once_and_never_itself() -> None:
    net = _mutual(a_reaches_b="hop")
    radius = _radius(net)
    assert radius["t1/a"] == (2, 1)  # p and c, then b (through either)
    assert radius["t2/p"] == (1,)  # b: it never comes back to p
    assert radius["t1/b"] == ()


def test_synthetic_scale_runs_on_classes_not_pairs() -> None:
    """k=8, 100 tenants, 2,000 endpoints: 601 classes (segment x tier per tenant, plus the
    DNS providers), every endpoint's radius, and no cross-tenant path."""
    net = resolve(synthetic_intent(k=8, tenants=100, endpoints=2000))
    result = analyse(net)
    assert result.classes == 601
    assert result.cross_tenant_paths == ()
    assert len(result.blast_radius) == len(net.endpoints)
    assert result.edges == len(expected_reachability(net))
    assert analyse(net) is result  # remembered for the report's renderings


# --------------------------------------------------------------------------- brute force


def _brute_force_radius(graph: nx.DiGraph) -> dict[str, tuple[int, ...]]:
    out = {}
    for node in graph:
        dist = nx.single_source_shortest_path_length(graph, node)
        hops = [0] * max(dist.values())
        for other, d in dist.items():
            if other != node:
                hops[d - 1] += 1
        out[node] = tuple(hops)
    return out


def _brute_force_paths(graph: nx.DiGraph) -> dict[tuple[str, str], tuple[int, int]]:
    """(source tenant, target) -> (sources, shortest witness length), straight from the definition."""
    tenant = dict(graph.nodes(data="tenant"))
    found: dict[tuple[str, str], dict[str, int]] = {}
    for c in graph:
        inside = nx.descendants(graph.subgraph(n for n in graph if tenant[n] == tenant[c]), c)
        for p in graph.successors(c):
            if tenant[p] == tenant[c]:
                continue
            for t, d in nx.single_source_shortest_path_length(graph, p).items():
                if d == 0 or t == c or graph.has_edge(c, t):
                    continue
                if tenant[t] == tenant[c] and t in inside:
                    continue
                best = found.setdefault((tenant[c], t), {})
                best[c] = min(best.get(c, 1 << 30), d + 1)
    return {key: (len(by_c), min(by_c.values())) for key, by_c in found.items()}


def _check_witness(graph: nx.DiGraph, finding: CrossTenantPath) -> None:
    names = [f"{k[0]}/{k[1]}" for k in finding.path]
    tenant = dict(graph.nodes(data="tenant"))
    assert tenant[names[0]] == finding.tenant and tenant[names[1]] != finding.tenant
    assert names[-1] == f"{finding.target[0]}/{finding.target[1]}"
    for (a, b), grant in zip(pairwise(names), finding.grants, strict=True):
        assert grant in graph.edges[a, b]["grants"], (a, b, grant)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(intents(max_shared=5))
def test_class_search_agrees_with_a_brute_force_on_the_full_graph(doc: dict[str, Any]) -> None:
    net = resolve(Intent.model_validate(doc))
    graph = connection_graph(net)
    result = analyse(net)
    assert result.edges == graph.number_of_edges()
    assert _radius(net) == _brute_force_radius(graph)
    totals = [b.total for b in result.blast_radius]
    assert totals == sorted(totals, reverse=True)
    got = {
        (p.tenant, f"{p.target[0]}/{p.target[1]}"): (p.sources, len(p.path) - 1)
        for p in result.cross_tenant_paths
    }
    assert got == _brute_force_paths(graph)
    for finding in result.cross_tenant_paths:
        _check_witness(graph, finding)


def test_blast_radius_json() -> None:
    assert BlastRadius(("t", "a"), (3, 1)).to_json() == {"endpoint": "t/a", "per_hop": [3, 1], "total": 4}
