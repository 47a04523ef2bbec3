"""The topology model: graph shape, deterministic shortest paths, segment links, tenant view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segctl.topology.model import (
    build_graph,
    endpoint_node,
    fabric_ports,
    next_hop_ports,
    segment_links,
    segment_switches,
    switch_graph,
    switch_path,
    tenant_view,
)
from segctl.topology.network import Network, load_network, resolve
from segctl.topology.schema import Intent

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def net() -> Network:
    return load_network(EXAMPLES / "leaf-spine.yaml")


def fabric(switches: int, links: list[str]) -> Network:
    return resolve(
        Intent.model_validate(
            {
                "fabric": {
                    "switches": [{"name": f"s{i}", "dpid": i} for i in range(1, switches + 1)],
                    "links": links,
                }
            }
        )
    )


def test_graph_has_switches_links_and_endpoints(net: Network) -> None:
    graph = build_graph(net)
    switches = [n for n, k in graph.nodes(data="kind") if k == "switch"]
    endpoints = [n for n, k in graph.nodes(data="kind") if k == "endpoint"]
    assert switches == ["spine1", "spine2", "leaf1", "leaf2", "leaf3", "leaf4"]
    assert len(endpoints) == len(net.endpoints) == 8
    assert graph.nodes["acme/web1"]["segment"] == "web"
    assert graph.nodes["globex/gweb1"]["ip"] == graph.nodes["acme/web1"]["ip"]  # same address, two nodes
    assert switch_graph(graph).number_of_edges() == 8
    assert fabric_ports(graph, "leaf1") == {1: ("spine1", 1), 2: ("spine2", 1)}
    assert fabric_ports(graph, "spine2") == {
        1: ("leaf1", 2),
        2: ("leaf2", 2),
        3: ("leaf3", 2),
        4: ("leaf4", 2),
    }
    ep = net.endpoint("acme", "db1")
    assert graph.edges[endpoint_node(ep), "leaf3", "attach"]["ports"]["leaf3"] == 10


def test_leaf_spine_paths_prefer_the_smallest_spine(net: Network) -> None:
    graph = build_graph(net)
    assert switch_path(graph, "leaf1", "leaf3") == ["leaf1", "spine1", "leaf3"]
    assert switch_path(graph, "leaf3", "leaf1") == ["leaf3", "spine1", "leaf1"]
    assert switch_path(graph, "spine2", "spine1") == ["spine2", "leaf1", "spine1"]
    assert switch_path(graph, "leaf2", "leaf2") == ["leaf2"]
    assert switch_path(graph, "leaf4", "leaf1") == ["leaf4", "spine1", "leaf1"]  # leaf4 has no endpoints
    assert next_hop_ports(graph, "leaf3") == {"leaf1": 1, "leaf2": 1, "leaf4": 1, "spine1": 3, "spine2": 3}


def test_next_hops_do_not_depend_on_link_order() -> None:
    links = ["s1:1 <-> s2:1", "s1:2 <-> s3:1", "s2:2 <-> s4:1", "s3:2 <-> s4:2", "s4:3 <-> s5:1"]
    one = build_graph(fabric(5, links))
    two = build_graph(fabric(5, list(reversed(links))))
    for dst in ("s1", "s4", "s5"):
        assert next_hop_ports(one, dst) == next_hop_ports(two, dst)
    assert switch_path(one, "s1", "s4") == ["s1", "s2", "s4"]


def test_parallel_links_are_kept_and_the_smaller_port_wins() -> None:
    graph = build_graph(fabric(2, ["s1:7 <-> s2:7", "s1:3 <-> s2:4"]))
    assert graph.number_of_edges("s1", "s2") == 2
    assert fabric_ports(graph, "s1") == {7: ("s2", 7), 3: ("s2", 4)}
    assert next_hop_ports(graph, "s2") == {"s1": 3}
    assert next_hop_ports(graph, "s1") == {"s2": 4}


def test_unreachable_switches_have_no_path() -> None:
    graph = build_graph(fabric(3, ["s1:1 <-> s2:1"]))
    assert "s3" not in next_hop_ports(graph, "s1")
    assert switch_path(graph, "s3", "s1") == []
    assert switch_path(graph, "s1", "s3") == []


def test_next_hop_to_a_non_switch_is_refused(net: Network) -> None:
    with pytest.raises(ValueError, match="is not a switch"):
        next_hop_ports(build_graph(net), "acme/web1")


def test_segment_links(net: Network) -> None:
    graph = build_graph(net)
    assert segment_switches(net, "acme", "web") == ["leaf1", "leaf2"]
    assert segment_links(graph, net, "acme", "web") == {
        ("leaf1", 1),
        ("spine1", 2),
        ("leaf2", 1),
        ("spine1", 1),
    }
    assert segment_links(graph, net, "acme", "db") == set()  # one endpoint, nothing crosses the fabric
    assert segment_links(graph, net, "globex", "web") == {
        ("leaf1", 1),
        ("spine1", 3),
        ("leaf3", 1),
        ("spine1", 1),
    }


def test_tenant_view(net: Network) -> None:
    graph = build_graph(net)
    view = tenant_view(graph, net, "globex")
    assert set(view.nodes) == {"globex/gweb1", "globex/gweb2", "leaf1", "leaf3", "spine1"}
    assert not any(n.startswith("acme/") for n in view.nodes)
    infra = tenant_view(graph, net, "infra")
    assert set(infra.nodes) == {"infra/dns1", "leaf3"}


@st.composite
def random_fabrics(draw: st.DrawFn) -> tuple[int, list[str]]:
    n = draw(st.integers(2, 7))
    ports = dict.fromkeys(range(1, n + 1), 0)

    def port(sw: int) -> int:
        ports[sw] += 1
        return ports[sw]

    links = []
    for sw in range(2, n + 1):  # a random spanning tree keeps the fabric connected
        peer = draw(st.integers(1, sw - 1))
        links.append((sw, peer))
    links += draw(
        st.lists(st.tuples(st.integers(1, n), st.integers(1, n)).filter(lambda t: t[0] != t[1]), max_size=6)
    )
    order = draw(st.permutations(links))
    return n, [f"s{a}:{port(a)} <-> s{b}:{port(b)}" for a, b in order]


@settings(max_examples=100, deadline=None)
@given(random_fabrics())
def test_next_hops_follow_shortest_paths(fab: tuple[int, list[str]]) -> None:
    n, links = fab
    graph = build_graph(fabric(n, links))
    plain = nx.Graph(switch_graph(graph))
    for dst in (f"s{i}" for i in range(1, n + 1)):
        dist = nx.single_source_shortest_path_length(plain, dst)
        hops = next_hop_ports(graph, dst)
        assert set(hops) == set(dist) - {dst}
        for sw, port in hops.items():
            peer = fabric_ports(graph, sw)[port][0]
            assert dist[peer] == dist[sw] - 1
            options = [
                (p_sw, p) for p, (p_sw, _) in fabric_ports(graph, sw).items() if dist[p_sw] == dist[sw] - 1
            ]
            assert (peer, port) == min(options)  # documented tie-break: smallest (peer, port)
        for src in dist:
            path = switch_path(graph, src, dst)
            assert len(path) == dist[src] + 1 and path[0] == src and path[-1] == dst


@settings(max_examples=50, deadline=None)
@given(random_fabrics(), st.randoms())
def test_next_hops_are_deterministic_under_link_order(fab: tuple[int, list[str]], rnd: Any) -> None:
    n, links = fab
    shuffled = list(links)
    rnd.shuffle(shuffled)
    one, two = build_graph(fabric(n, links)), build_graph(fabric(n, shuffled))
    for dst in (f"s{i}" for i in range(1, n + 1)):
        assert next_hop_ports(one, dst) == next_hop_ports(two, dst)
