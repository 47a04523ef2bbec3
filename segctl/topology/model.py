"""The topology model: a networkx graph of switches, fabric links and endpoints.

Nodes are switch names (``kind="switch"``) and ``tenant/endpoint`` names
(``kind="endpoint"``; a ``/`` can never appear in a switch name). Edges carry the port
numbers at each end in ``ports`` (``{node: port}``). Fabric links form an
``nx.MultiGraph`` so that parallel links between two switches are kept.

Paths are planned here and nowhere else: :class:`FabricPaths` is the graph's fabric as
plain port maps with cached shortest-path next hops, and the compiler builds one per
compilation from this graph. Path choice is deterministic: among equal-length paths the
one through the lexicographically smallest (switch, port) hops wins, so compiling twice
gives byte-identical rules and the verifier can be told which path to expect.

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
    "FabricPaths",
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


class FabricPaths:
    """The fabric of a topology graph as plain port maps, with cached shortest-path next hops.

    The one place segctl plans paths: :func:`next_hop_ports`, :func:`switch_path`, the
    other helpers here and the compiler all walk this view. It is derived from the graph
    once (its fabric links, nothing else), so planning every destination of a large
    fabric costs one breadth-first search per destination switch, on dicts.

    Examples
    --------
    >>> from segctl.topology.network import resolve
    >>> from segctl.topology.schema import Intent
    >>> net = resolve(Intent.model_validate({"fabric": {"switches": [
    ...     {"name": "a", "dpid": 1}, {"name": "b", "dpid": 2}, {"name": "c", "dpid": 3}],
    ...     "links": ["a:1 <-> b:1", "b:2 <-> c:1"]}}))
    >>> paths = FabricPaths(build_graph(net))
    >>> paths.next_hops("c")
    {'a': 1, 'b': 2}
    >>> paths.path("a", "c")
    ['a', 'b', 'c']
    """

    def __init__(self, graph: nx.MultiGraph) -> None:
        #: ``ports[switch][port] = (peer switch, peer port)`` for every fabric port.
        self.ports: dict[str, dict[int, tuple[str, int]]] = {
            node: {} for node, kind in graph.nodes(data="kind") if kind == "switch"
        }
        for a, b, data in graph.edges(data=True):
            if data["kind"] == "fabric":
                ends = data["ports"]
                self.ports[a][ends[a]] = (b, ends[b])
                self.ports[b][ends[b]] = (a, ends[a])
        self._hops: dict[str, dict[str, int]] = {}

    def next_hops(self, destination: str) -> dict[str, int]:
        """For every switch that can reach ``destination``, the port of its next hop.

        A breadth-first search from ``destination`` over fabric links; among equal-length
        choices the smallest (peer name, port) wins. ``destination`` itself is absent; keys
        are sorted. Computed once per destination: the dict is shared, do not change it.
        """
        hops = self._hops.get(destination)
        if hops is not None:
            return hops
        if destination not in self.ports:
            raise ValueError(f"{destination} is not a switch")
        dist = {destination: 0}
        queue = deque([destination])
        while queue:
            node = queue.popleft()
            for peer, _ in self.ports[node].values():
                if peer not in dist:
                    dist[peer] = dist[node] + 1
                    queue.append(peer)
        choice: dict[str, int] = {}
        for sw in sorted(dist):
            d = dist[sw]
            if d:
                choice[sw] = min(
                    (peer, port) for port, (peer, _) in self.ports[sw].items() if dist[peer] == d - 1
                )[1]
        self._hops[destination] = choice
        return choice

    def path(self, source: str, destination: str) -> list[str]:
        """The deterministic shortest switch path (names), or ``[]`` when unreachable."""
        if source == destination:
            return [source]
        hops = self.next_hops(destination)
        path = [source]
        node = source
        while node != destination:
            if node not in hops:
                return []
            node = self.ports[node][hops[node]][0]
            path.append(node)
        return path


def next_hop_ports(graph: nx.MultiGraph, destination: str) -> dict[str, int]:
    """For every switch that can reach ``destination``, the port of its next hop.

    See :meth:`FabricPaths.next_hops` (build a :class:`FabricPaths` once to plan many
    destinations). ``ValueError`` when ``destination`` is not a switch.
    """
    return dict(FabricPaths(graph).next_hops(destination))


def switch_path(graph: nx.MultiGraph, source: str, destination: str) -> list[str]:
    """The deterministic shortest switch path (names), or ``[]`` when unreachable."""
    return FabricPaths(graph).path(source, destination)


def segment_switches(network: Network, tenant: str, segment: str) -> list[str]:
    """Switches with at least one endpoint of the segment, in fabric order."""
    used = {ep.switch for ep in network.segment_endpoints(tenant, segment)}
    return [sw.name for sw in network.switches if sw.name in used]


def segment_links(graph: nx.MultiGraph, network: Network, tenant: str, segment: str) -> set[tuple[str, int]]:
    """The (switch, port) fabric ports that the segment's traffic uses between its switches."""
    switches = segment_switches(network, tenant, segment)
    paths = FabricPaths(graph)
    used: set[tuple[str, int]] = set()
    for dst in switches:
        hops = paths.next_hops(dst)
        for src in switches:
            node = src
            while node != dst and node in hops:
                port = hops[node]
                used.add((node, port))
                node = paths.ports[node][port][0]
    return used


def tenant_view(graph: nx.MultiGraph, network: Network, tenant: str) -> nx.MultiGraph:
    """The tenant's endpoints, the switches they attach to, and the paths between those."""
    eps = [endpoint_node(ep) for ep in network.tenant_endpoints(tenant)]
    switches = {ep.switch for ep in network.tenant_endpoints(tenant)}
    nodes = set(eps) | switches
    paths = FabricPaths(graph)
    for a in sorted(switches):
        for b in sorted(switches):
            nodes.update(paths.path(a, b))
    return graph.subgraph(nodes).copy()
