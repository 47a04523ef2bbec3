"""The topology model: a networkx graph of switches, fabric links and endpoints.

Nodes are switch names (``kind="switch"``) and ``tenant/endpoint`` names
(``kind="endpoint"``; a ``/`` can never appear in a switch name). Edges carry the port
numbers at each end in ``ports`` (``{node: port}``). Fabric links form an
``nx.MultiGraph`` so that parallel links between two switches are kept.

Path choice is deterministic: among equal-length paths the one through the
lexicographically smallest (switch, port) hops wins, so compiling twice gives
byte-identical rules and the verifier can be told which path to expect.

Examples
--------
>>> from segctl.topology.network import resolve
>>> from segctl.topology.schema import Intent
>>> net = resolve(Intent.model_validate({"fabric": {"switches": [
...     {"name": "s1", "dpid": 1}, {"name": "s2", "dpid": 2}],
...     "links": ["s1:1 <-> s2:1"]}}))
>>> graph = build_graph(net)
>>> next_hop_ports(graph, "s2")
{'s1': 1}
>>> switch_path(graph, "s1", "s2")
['s1', 's2']
"""

from __future__ import annotations

from collections import deque

import networkx as nx

from segctl.topology.network import EndpointInfo, Network

__all__ = [
    "build_graph",
    "endpoint_node",
    "fabric_ports",
    "next_hop_ports",
    "segment_links",
    "segment_switches",
    "switch_graph",
    "switch_path",
    "tenant_view",
]


def endpoint_node(ep: EndpointInfo) -> str:
    """The graph node of an endpoint: ``tenant/name``."""
    return f"{ep.tenant}/{ep.name}"


def build_graph(network: Network) -> nx.MultiGraph:
    """Build the graph of switches, fabric links and endpoint attachments."""
    graph = nx.MultiGraph(name="fabric")
    for sw in network.switches:
        graph.add_node(sw.name, kind="switch", dpid=sw.dpid)
    for a, a_port, b, b_port in network.links:
        graph.add_edge(a, b, key=f"{a}:{a_port}", kind="fabric", ports={a: a_port, b: b_port})
    for ep in network.endpoints:
        node = endpoint_node(ep)
        graph.add_node(node, kind="endpoint", tenant=ep.tenant, segment=ep.segment, mac=ep.mac, ip=str(ep.ip))
        graph.add_edge(node, ep.switch, key="attach", kind="attach", ports={ep.switch: ep.port, node: 0})
    return graph


def switch_graph(graph: nx.MultiGraph) -> nx.MultiGraph:
    """The subgraph of switches and fabric links only."""
    switches = [n for n, kind in graph.nodes(data="kind") if kind == "switch"]
    return graph.subgraph(switches)


def fabric_ports(graph: nx.MultiGraph, switch: str) -> dict[int, tuple[str, int]]:
    """Fabric ports of ``switch``: port -> (peer switch, peer port)."""
    out: dict[int, tuple[str, int]] = {}
    for _, peer, data in graph.edges(switch, data=True):
        if data["kind"] == "fabric":
            out[data["ports"][switch]] = (peer, data["ports"][peer])
    return out


def next_hop_ports(graph: nx.MultiGraph, destination: str) -> dict[str, int]:
    """For every switch that can reach ``destination``, the port of its next hop.

    A breadth-first search from ``destination`` over fabric links; among equal-length
    choices the smallest (peer name, port) wins. ``destination`` itself is absent.
    """
    if graph.nodes[destination].get("kind") != "switch":
        raise ValueError(f"{destination} is not a switch")
    dist = {destination: 0}
    choice: dict[str, int] = {}
    queue = deque([destination])
    while queue:
        node = queue.popleft()
        for peer in sorted(_switch_neighbours(graph, node)):
            if peer in dist:
                continue
            dist[peer] = dist[node] + 1
            queue.append(peer)
        # nothing else: choices are settled below once distances are known
    for sw, d in dist.items():
        if sw == destination:
            continue
        options = []
        for _, peer, data in graph.edges(sw, data=True):
            if data["kind"] == "fabric" and dist.get(peer) == d - 1:
                options.append((peer, data["ports"][sw]))
        choice[sw] = min(options)[1]
    return dict(sorted(choice.items()))


def switch_path(graph: nx.MultiGraph, source: str, destination: str) -> list[str]:
    """The deterministic shortest switch path (names), or ``[]`` when unreachable."""
    if source == destination:
        return [source]
    hops = next_hop_ports(graph, destination)
    ports = fabric_ports(graph, source)
    path = [source]
    node = source
    while node != destination:
        if node not in hops:
            return []
        ports = fabric_ports(graph, node)
        node = ports[hops[node]][0]
        path.append(node)
    return path


def segment_switches(network: Network, tenant: str, segment: str) -> list[str]:
    """Switches with at least one endpoint of the segment, in fabric order."""
    used = {ep.switch for ep in network.segment_endpoints(tenant, segment)}
    return [sw.name for sw in network.switches if sw.name in used]


def segment_links(graph: nx.MultiGraph, network: Network, tenant: str, segment: str) -> set[tuple[str, int]]:
    """The (switch, port) fabric ports that the segment's traffic uses between its switches."""
    switches = segment_switches(network, tenant, segment)
    used: set[tuple[str, int]] = set()
    for dst in switches:
        hops = next_hop_ports(graph, dst)
        for src in switches:
            node = src
            while node != dst and node in hops:
                port = hops[node]
                used.add((node, port))
                node = fabric_ports(graph, node)[port][0]
    return used


def tenant_view(graph: nx.MultiGraph, network: Network, tenant: str) -> nx.MultiGraph:
    """The tenant's endpoints, the switches they attach to, and the paths between those."""
    eps = [endpoint_node(ep) for ep in network.tenant_endpoints(tenant)]
    switches = {ep.switch for ep in network.tenant_endpoints(tenant)}
    nodes = set(eps) | switches
    for a in sorted(switches):
        for b in sorted(switches):
            nodes.update(switch_path(graph, a, b))
    return graph.subgraph(nodes).copy()


def _switch_neighbours(graph: nx.MultiGraph, node: str) -> set[str]:
    return {peer for _, peer, kind in graph.edges(node, data="kind") if kind == "fabric"}
