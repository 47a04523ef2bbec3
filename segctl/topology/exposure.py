"""Intent analysis on the allowed-connection graph: cross-tenant paths and blast radius.

The *allowed-connection graph* has the endpoints as nodes and an edge ``src -> dst`` for
every pair of the expected reachability relation (:func:`~segctl.topology.analysis.expected_reachability`):
``src`` may open a connection to ``dst`` on some service. :func:`connection_graph` builds
it as a ``networkx.DiGraph``; :func:`analyse` answers two questions about it
(``docs/intent.md``, "Intent analysis"):

* **Cross-tenant paths.** A path ``c → p → v₂ → … → t`` of at least two edges whose first
  edge crosses a tenant boundary (a shared-service grant, the only cross-tenant grant),
  ending at an endpoint ``t`` that ``c`` has no direct grant to and that is in another
  tenant than ``c``, or in ``c``'s own tenant but out of ``c``'s reach inside it. It
  means a compromised provider ``p`` lets ``c`` go further than its grants say. A
  correct intent has none.
* **Blast radius.** For each endpoint, how many endpoints a compromised one reaches in
  1, 2, … hops and in total (the breadth-first layers of the graph from it).

Neither enumerates paths or endpoint pairs. Endpoints with the same grants (the same
grants as a source, as a destination, in the same tenant) are interchangeable in the
graph, so the search runs on these *classes* with the grants as the edges between them:
each grant links every class of its sources to every class of its destinations, which
is the product the relation expands, without expanding it. One breadth-first search per
class gives the blast radius of all its endpoints (a class reaches a class whole, except
the searching endpoint itself), and one search per set of first tenant crossings gives
the cross-tenant paths. Grants stay inside a tenant except shared services, so a search
sees one tenant and the providers it consumes; the cost grows with the grants and the
classes, not with the endpoint pairs (``docs/performance.md``).

Examples
--------
>>> from segctl.topology.network import load_network
>>> result = analyse(load_network("examples/two-tenants.yaml"))  # doctest: +SKIP
>>> result.cross_tenant_paths, result.blast_radius[0]  # doctest: +SKIP
((), BlastRadius(endpoint=('red', 'r1'), per_hop=(1,)))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx

from segctl.topology.analysis import EndpointKey, GrantSet, Reachability, expected_reachability, grant_sets
from segctl.topology.network import EndpointInfo, Network, per_network

__all__ = ["BlastRadius", "CrossTenantPath", "IntentAnalysis", "analyse", "connection_graph"]


def _name(key: EndpointKey) -> str:
    return f"{key[0]}/{key[1]}"


@dataclass(frozen=True)
class CrossTenantPath:
    """Endpoints of ``tenant`` reach ``target`` beyond their grants, through another tenant.

    ``path`` is one shortest witness (a consumer, the provider it crosses into, …,
    ``target``) and ``grants`` the grant of each of its edges (``kind name``);
    ``sources`` counts the endpoints of ``tenant`` with such a path to ``target``.
    """

    tenant: str
    target: EndpointKey
    path: tuple[EndpointKey, ...]
    grants: tuple[str, ...]
    sources: int

    def describe(self) -> str:
        """``acme/web1 -[shared-service dns]-> infra/dns1 -[intra-segment svc]-> infra/ntp1``."""
        parts = [_name(self.path[0])]
        for grant, node in zip(self.grants, self.path[1:], strict=True):
            parts.append(f"-[{grant}]-> {_name(node)}")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "target": _name(self.target),
            "sources": self.sources,
            "path": [_name(k) for k in self.path],
            "grants": list(self.grants),
        }


@dataclass(frozen=True)
class BlastRadius:
    """What a compromised ``endpoint`` reaches: ``per_hop[i]`` endpoints first at hop ``i + 1``."""

    endpoint: EndpointKey
    per_hop: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.per_hop)

    def to_json(self) -> dict[str, Any]:
        return {"endpoint": _name(self.endpoint), "per_hop": list(self.per_hop), "total": self.total}


@dataclass(frozen=True)
class IntentAnalysis:
    """The analysis of one intent: graph size, cross-tenant paths, blast radius (largest first)."""

    endpoints: int
    edges: int  # ordered endpoint pairs with a grant: the size of the expected reachability relation
    classes: int  # interchangeable-endpoint classes the searches ran on
    cross_tenant_paths: tuple[CrossTenantPath, ...]
    blast_radius: tuple[BlastRadius, ...]

    def to_json(self) -> dict[str, Any]:
        """The ``analysis`` object of ``report.json`` and ``segctl show -o json`` (docs/report.md)."""
        return {
            "graph": {"endpoints": self.endpoints, "edges": self.edges, "classes": self.classes},
            "cross_tenant_paths": [p.to_json() for p in self.cross_tenant_paths],
            "blast_radius": [b.to_json() for b in self.blast_radius],
        }


def connection_graph(network: Network, reach: Reachability | None = None) -> nx.DiGraph:
    """The allowed-connection graph: ``tenant/name`` nodes (with ``tenant``), an edge per
    granted pair with its ``grants`` (``kind name`` texts). Holds every pair: for small
    intents and tests; :func:`analyse` never builds it."""
    reach = expected_reachability(network) if reach is None else reach
    graph = nx.DiGraph()
    for ep in network.endpoints:
        graph.add_node(ep.qualified, tenant=ep.tenant)
    for (src, dst), grants in reach.items():
        graph.add_edge(_name(src), _name(dst), grants=[f"{g.kind} {g.name}" for g in grants])
    return graph


# ---------------------------------------------------------------------------- the class graph


@dataclass(frozen=True)
class _Class:
    tenant: str
    members: tuple[int, ...]  # endpoint positions, document order
    sources_of: tuple[int, ...]  # grants (positions in the grant list) its members are sources of
    destinations_of: tuple[int, ...]


class _ClassGraph:
    """Endpoints grouped into classes, and the grants as edges between the classes."""

    def __init__(self, network: Network) -> None:
        self.endpoints: tuple[EndpointInfo, ...] = network.endpoints
        self.grants: list[GrantSet] = grant_sets(network)
        position = {ep.key: i for i, ep in enumerate(self.endpoints)}
        self.tenant_order = {t.name: i for i, t in enumerate(network.tenants)}
        as_source: list[list[int]] = [[] for _ in self.endpoints]
        as_destination: list[list[int]] = [[] for _ in self.endpoints]
        for g, item in enumerate(self.grants):
            for ep in item.sources:
                as_source[position[ep.key]].append(g)
            for ep in item.destinations:
                as_destination[position[ep.key]].append(g)
        by_key: dict[tuple[str, tuple[int, ...], tuple[int, ...]], list[int]] = {}
        for i, ep in enumerate(self.endpoints):
            key = (ep.tenant, tuple(sorted(set(as_source[i]))), tuple(sorted(set(as_destination[i]))))
            by_key.setdefault(key, []).append(i)
        self.classes = [_Class(t, tuple(m), s, d) for (t, s, d), m in by_key.items()]
        self.class_of = [0] * len(self.endpoints)
        #: per grant, the classes of its destinations
        self.targets: list[list[int]] = [[] for _ in self.grants]
        for c, cls in enumerate(self.classes):
            for i in cls.members:
                self.class_of[i] = c
            for g in cls.destinations_of:
                self.targets[g].append(c)

    def direct(self, c: int) -> set[int]:
        """The classes one hop from class ``c`` (its own when one of its grants points back at it)."""
        return {m for g in self.classes[c].sources_of for m in self.targets[g]}

    def size(self, c: int) -> int:
        return len(self.classes[c].members)

    def layers(self, start: int) -> list[list[int]]:
        """Breadth-first layers of classes from class ``start`` (layer ``i``: hop ``i + 1``).

        A grant is expanded once: every class it leads to is found the first time. ``start``
        appears in a layer when its other members are reached (its own grants, or a cycle).
        """
        seen_grants: set[int] = set()
        seen = set()
        out: list[list[int]] = []
        frontier = [start]
        while frontier:
            layer: list[int] = []
            for c in frontier:
                for g in self.classes[c].sources_of:
                    if g in seen_grants:
                        continue
                    seen_grants.add(g)
                    for m in self.targets[g]:
                        if m not in seen:
                            seen.add(m)
                            layer.append(m)
            if layer:
                out.append(layer)
            frontier = layer
        return out

    def search(self, roots: Sequence[int], *, tenant: str | None = None) -> dict[int, tuple[int, int, int]]:
        """Classes reachable from ``roots`` (themselves at level 1): class -> (level, parent
        class, grant), parent -1 for a root. With ``tenant``, only classes of that tenant."""
        found: dict[int, tuple[int, int, int]] = {r: (1, -1, -1) for r in roots}
        seen_grants: set[int] = set()
        frontier = list(roots)
        level = 1
        while frontier:
            level += 1
            nxt: list[int] = []
            for c in frontier:
                for g in self.classes[c].sources_of:
                    if g in seen_grants:
                        continue
                    seen_grants.add(g)
                    for m in self.targets[g]:
                        if m not in found and (tenant is None or self.classes[m].tenant == tenant):
                            found[m] = (level, c, g)
                            nxt.append(m)
            frontier = nxt
        return found


# ---------------------------------------------------------------------------- the analyses


def _blast_radius(graph: _ClassGraph) -> tuple[tuple[BlastRadius, ...], int]:
    """Every endpoint's blast radius, largest total first (then document order), and the
    number of edges of the allowed-connection graph."""
    rows: list[BlastRadius] = []
    edges = 0
    for c, cls in enumerate(graph.classes):
        per_hop = [sum(graph.size(m) for m in layer) - layer.count(c) for layer in graph.layers(c)]
        while per_hop and per_hop[-1] == 0:
            per_hop.pop()
        direct = graph.direct(c)
        edges += len(cls.members) * (sum(graph.size(m) for m in direct) - (c in direct))
        rows += [BlastRadius(graph.endpoints[i].key, tuple(per_hop)) for i in cls.members]
    rows.sort(key=lambda b: -b.total)  # stable: document order among equals
    return tuple(rows), edges


@dataclass
class _Finding:
    sources: int
    rank: tuple[int, int]  # (path length, first source position): the witness is the smallest
    consumer: int
    target_class: int
    found: dict[int, tuple[int, int, int]]


def _cross_tenant_paths(graph: _ClassGraph) -> tuple[CrossTenantPath, ...]:
    findings: dict[tuple[str, int], _Finding] = {}
    searches: dict[tuple[int, ...], dict[int, tuple[int, int, int]]] = {}
    for k, cls in enumerate(graph.classes):
        direct = graph.direct(k)
        crossings = tuple(sorted(m for m in direct if graph.classes[m].tenant != cls.tenant))
        if not crossings:
            continue
        found = searches.get(crossings)
        if found is None:
            found = searches[crossings] = graph.search(crossings)
        inside: dict[int, tuple[int, int, int]] | None = None
        for m, (level, _, _) in found.items():
            if m in direct:
                continue
            if graph.classes[m].tenant == cls.tenant:  # back in its own tenant: out of reach inside?
                if inside is None:
                    own = sorted(m for m in direct if graph.classes[m].tenant == cls.tenant)
                    inside = graph.search(own, tenant=cls.tenant)
                if m in inside:
                    continue
            for t in graph.classes[m].members:
                sources = len(cls.members) - (m == k)
                if not sources:
                    continue
                first = next(i for i in cls.members if i != t)
                key = (cls.tenant, t)
                hit = findings.get(key)
                if hit is None:
                    findings[key] = _Finding(sources, (level, first), k, m, found)
                    continue
                hit.sources += sources
                if (level, first) < hit.rank:
                    hit.rank, hit.consumer, hit.target_class, hit.found = (level, first), k, m, found
    order = sorted(findings, key=lambda key: (graph.tenant_order[key[0]], key[1]))
    return tuple(_witness(graph, tenant, t, findings[tenant, t]) for tenant, t in order)


def _witness(graph: _ClassGraph, tenant: str, target: int, finding: _Finding) -> CrossTenantPath:
    """The endpoints and grants of the finding's shortest path, class by class."""
    chain = [finding.target_class]
    grants: list[int] = []
    while True:
        _, parent, grant = finding.found[chain[-1]]
        if parent < 0:
            break
        grants.append(grant)
        chain.append(parent)
    chain.reverse()
    grants.reverse()
    consumer = graph.classes[finding.consumer]
    first = chain[0]
    grants.insert(0, next(g for g in consumer.sources_of if first in graph.targets[g]))
    path = [finding.rank[1]]
    for c in chain[:-1]:
        members = graph.classes[c].members
        path.append(next((i for i in members if i not in path and i != target), members[0]))
    path.append(target)
    return CrossTenantPath(
        tenant,
        graph.endpoints[target].key,
        tuple(graph.endpoints[i].key for i in path),
        tuple(f"{graph.grants[g].grant.kind} {graph.grants[g].grant.name}" for g in grants),
        finding.sources,
    )


def _analyse(network: Network) -> IntentAnalysis:
    graph = _ClassGraph(network)
    radius, edges = _blast_radius(graph)
    return IntentAnalysis(
        len(network.endpoints), edges, len(graph.classes), _cross_tenant_paths(graph), radius
    )


# the last analyses, by network object (a report renders its JSON, Markdown and HTML from one)
_CACHE: dict[int, IntentAnalysis] = {}


def analyse(network: Network) -> IntentAnalysis:
    """Cross-tenant paths and blast radius of ``network``'s intent (see the module docstring).

    Remembered per network object while it lives, so a report's three renderings and the
    JSON compute it once.
    """
    return per_network(_CACHE, network, _analyse)
