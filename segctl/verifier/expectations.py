"""The intent's expectations per source endpoint, recomputed only for sources whose intent changed.

The checks of :mod:`segctl.verifier.checks` read, per source endpoint, its grants to every
destination (a *row* of :func:`~segctl.topology.analysis.expected_reachability`), and the
shared-service pairs and zone owners. A pair's grants come from its source's segment (part
of the network's structure), its source tenant's policies and groups, and the shared
services (with the groups they name): so after a call with another intent, only the rows of
the tenants whose policies or groups differ are computed again (every row when the shared
services or a group they name differ), and every other row is the *same object* as before.
The :class:`~segctl.verifier.properties.Checker` keys its cached contributions on these rows,
so an unchanged row compares by identity, and a call costs no all-pairs work.

:meth:`Expectations.of` with no previous expectations is exactly
:func:`~segctl.topology.analysis.expected_reachability` grouped per source; with them, it is
equal to that (tests/test_incremental_overhead.py), because
``expected_reachability(network, tenants)`` is the restriction of the whole relation to the
sources of ``tenants``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from segctl.topology.analysis import EndpointKey, Grant, expected_reachability
from segctl.topology.network import Network

__all__ = ["Expectations", "Pair", "PairMap", "Row"]

Pair = tuple[EndpointKey, EndpointKey]
#: One source's grants per destination, destinations in document order (never changed once built).
Row = Mapping[EndpointKey, tuple[Grant, ...]]
_EMPTY: Row = {}


class PairMap(Mapping[Pair, tuple[Grant, ...]]):
    """The rows seen as ``expected_reachability``'s mapping: pairs in (source, destination)
    document order, without building one dict of every pair."""

    def __init__(self, sources: tuple[EndpointKey, ...], rows: Mapping[EndpointKey, Row]) -> None:
        self._sources, self._rows = sources, rows

    def __getitem__(self, pair: Pair) -> tuple[Grant, ...]:
        return self._rows.get(pair[0], _EMPTY)[pair[1]]

    def get(self, pair: Pair, default: Any = None) -> Any:  # one dict lookup each, not a KeyError
        row = self._rows.get(pair[0])
        return default if row is None else row.get(pair[1], default)

    def __contains__(self, pair: object) -> bool:
        if not isinstance(pair, tuple) or len(pair) != 2:
            return False
        row = self._rows.get(pair[0])
        return row is not None and pair[1] in row

    def __iter__(self) -> Iterator[Pair]:
        for s in self._sources:
            for d in self._rows.get(s, _EMPTY):
                yield (s, d)

    def __len__(self) -> int:
        return sum(len(self._rows.get(s, _EMPTY)) for s in self._sources)


def _tenant_docs(network: Network) -> dict[str, object]:
    """Per tenant what its rows depend on besides the structure: its policies, groups and
    address sets (which its selectors name)."""
    return {t.name: (t.policies, t.groups, t.address_sets) for t in network.intent.tenants}


def _shared_doc(network: Network) -> object:
    """What the shared-service pairs depend on besides the structure: the shared services, the
    groups of every tenant they name, and the guardrails (which decide before every tenant's
    policies and narrow shared services: a change of theirs computes every row again)."""
    named = set()
    for svc in network.shared_services:
        named.add(svc.provider.tenant)
        named.update(c.tenant for c in svc.consumers)
    groups = tuple((t.name, t.groups) for t in network.intent.tenants if t.name in named)
    rails = network.intent.guardrails
    in_rails = {p.tenant for g in rails for p in (g.from_, g.to) if p.address_set is not None}
    sets = tuple((t.name, t.address_sets) for t in network.intent.tenants if t.name in in_rails)
    return (tuple(network.shared_services), groups, tuple(rails), sets)


@dataclass
class Expectations:
    """The expectations of one network, grouped per source endpoint (each group a cache key).

    ``rows``: per source its grants per destination; ``shared``: per cross-tenant pair its
    shared-service grants; ``shared_keys``: per endpoint the shared pairs it is in, either way;
    ``owners``: per zone the endpoints whose packets may be tracked there; ``changed``: the
    sources whose row was computed again (every source when there were no previous ones).
    """

    reach: PairMap
    rows: dict[EndpointKey, Row]
    shared: dict[Pair, list[Grant]]
    shared_keys: Mapping[EndpointKey, tuple[object, ...]]
    owners: dict[int, frozenset[EndpointKey]]
    owners_key: tuple[tuple[int, tuple[EndpointKey, ...]], ...]
    changed: frozenset[EndpointKey]
    _docs: dict[str, object]
    _shared_doc: object
    #: (consumer, provider) of every declared shared service, before guardrails narrow them
    #: (what replies may cross in any conntrack state; equal to ``shared``'s pairs without them)
    declared: frozenset[Pair] = frozenset()

    @classmethod
    def of(cls, network: Network, previous: Expectations | None = None) -> Expectations:
        """The expectations of ``network``, reusing ``previous`` (of a network with the same
        structure: endpoints, tenants, segments) where the intent is unchanged."""
        docs, shared_doc = _tenant_docs(network), _shared_doc(network)
        sources = tuple(ep.key for ep in network.endpoints)
        if previous is None or previous._shared_doc != shared_doc:
            rows = _rows(expected_reachability(network))
            shared, shared_keys, owners, owners_key = _shared(network, rows)
            return cls(
                PairMap(sources, rows), rows, shared, shared_keys, owners, owners_key,
                frozenset(sources), docs, shared_doc, _declared(network, shared),
            )  # fmt: skip
        tenants = {name for name, doc in docs.items() if previous._docs.get(name) != doc}
        rows = dict(previous.rows)
        changed: set[EndpointKey] = set()
        if tenants:
            fresh = _rows(expected_reachability(network, tenants))
            for ep in network.endpoints:
                if ep.tenant in tenants:
                    rows[ep.key] = fresh.get(ep.key, _EMPTY)
                    changed.add(ep.key)
        return cls(
            PairMap(sources, rows), rows, previous.shared, previous.shared_keys, previous.owners,
            previous.owners_key, frozenset(changed), docs, shared_doc, previous.declared,
        )  # fmt: skip


def _declared(network: Network, shared: Mapping[Pair, object]) -> frozenset[Pair]:
    """The declared shared-service pairs: ``shared``'s own unless guardrails narrow them."""
    if not network.intent.guardrails:
        return frozenset(shared)
    return frozenset(
        (c.key, p.key)
        for svc in network.shared_services
        for c in network.shared_consumers(svc)
        for p in network.shared_providers(svc)
    )


def _rows(reach: Mapping[Pair, tuple[Grant, ...]]) -> dict[EndpointKey, Row]:
    rows: dict[EndpointKey, dict[EndpointKey, tuple[Grant, ...]]] = {}
    for (s, d), grants in reach.items():
        rows.setdefault(s, {})[d] = tuple(grants)
    return dict(rows)


def _shared(
    network: Network, rows: Mapping[EndpointKey, Row]
) -> tuple[
    dict[Pair, list[Grant]],
    dict[EndpointKey, tuple[object, ...]],
    dict[int, frozenset[EndpointKey]],
    tuple[tuple[int, tuple[EndpointKey, ...]], ...],
]:
    """The cross-tenant (shared-service) pairs, per endpoint the ones it is in, the zone owners."""
    shared: dict[Pair, list[Grant]] = {}
    out: dict[EndpointKey, list[object]] = {}
    into: dict[EndpointKey, list[object]] = {}
    for ep in network.endpoints:
        s = ep.key
        for d, grants in rows.get(s, _EMPTY).items():
            if s[0] != d[0]:
                shared[(s, d)] = [g for g in grants if g.kind == "shared-service"]
                out.setdefault(s, []).append((d, tuple(shared[(s, d)])))
                into.setdefault(d, []).append(s)
    shared_keys: dict[EndpointKey, tuple[object, ...]] = {
        ep.key: (tuple(out.get(ep.key, ())), tuple(into.get(ep.key, ()))) for ep in network.endpoints
    }
    owner_sets: dict[int, set[EndpointKey]] = {}
    for ep in network.endpoints:
        owner_sets.setdefault(network.tenant(ep.tenant).id, set()).add(ep.key)
    for s, d in shared:
        for a, b in ((s, d), (d, s)):
            owner_sets.setdefault(network.tenant(a[0]).id, set()).add(b)
    owners = {z: frozenset(v) for z, v in owner_sets.items()}
    owners_key = tuple(sorted((z, tuple(sorted(v))) for z, v in owners.items()))
    return shared, shared_keys, owners, owners_key
