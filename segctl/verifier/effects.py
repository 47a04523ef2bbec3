"""A table as a function: which packets get which actions (the scalable engine's view).

The reference engine tries a table's rules one after the other for every space that
enters it. :func:`effect_view` does that once per (table, concrete pipeline values): it
partitions all packets by the rule that takes them, in the table's order (priority, then
input order; at one priority hard rules before conjunctions, conjunctions by id, then the
``conj_id`` re-lookup), and merges the parts of rules that do the same thing (equal action
lists) into one *effect*. A visit is then one AND per effect: a forwarding table with a
thousand destination MACs and three distinct actions costs three operations, not a
thousand, and the spaces that come out are the same unions the rule-by-rule walk gives.

At an ingress switch the scalable engine does not know ``in_port`` concretely: every edge
port's packets travel together, tagged with their injection. A rule on ``in_port=p`` then
applies to the tags injected at ``p`` (:class:`PortTags`), and the view is built with that
relation instead of a concrete ``in_port``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from segctl.openflow.ofctl import Action
from segctl.verifier.headerspace import BDD, CONCRETE_FIELDS, HeaderSpace, _port16
from segctl.verifier.symtables import METADATA_SLOT, Key, Rule, SetFields, Table

__all__ = ["SYMBOLIC_PORT", "EffectView", "PortTags", "effect_view"]

#: ``key[0]`` of a path whose ``in_port`` is each tag's own injection port.
SYMBOLIC_PORT = -1
Steps = tuple[Action | SetFields, ...]


@dataclass
class PortTags:
    """The tags injected at each edge port of one switch (one run's injections)."""

    hs: HeaderSpace
    tags: Mapping[int, BDD]  # port -> tag set
    port_of: Mapping[int, int]  # tag -> port
    views: dict[tuple[str, int, Key], EffectView] = field(default_factory=dict)  # filled by the engine
    _relation: BDD | None = None

    def at(self, port: int) -> BDD:
        return self.tags.get(port, self.hs.false)

    def relation(self) -> BDD:
        """``in_port`` is the port the tag was injected at."""
        if self._relation is None:
            hs = self.hs
            self._relation = hs.union(hs.eq("in_port", p) & tags for p, tags in sorted(self.tags.items()))
        return self._relation


@dataclass
class EffectView:
    """A table for packets with known pipeline values: ``effects`` in table order, each an
    action list and the packets it takes; ``miss`` the packets no rule takes (None: none)."""

    effects: list[tuple[Steps, BDD]]
    miss: BDD | None
    rules: int = 0
    _order: dict[Steps, int] = field(default_factory=dict)


def _rule_candidates(table: Table, port: int | None, metadata: int) -> list[Rule]:
    """The table's non-conjunction rules that may match (``port`` None: symbolic), in order."""
    return table._candidates(port, metadata)


class _Spaces:
    """Rule and conjunction spaces as packets with ``key`` see them."""

    def __init__(self, hs: HeaderSpace, key: Key, ports: PortTags | None) -> None:
        self.hs, self.key, self.ports = hs, key, ports
        if ports is None:
            self._values = hs.pipeline_values(key)
            self._cube = hs._concrete_cube
        else:  # in_port is symbolic: fix the other concrete fields only
            names = CONCRETE_FIELDS[1:]
            self._values = hs.true
            for name, value in zip(names, key[1:], strict=True):
                self._values &= hs.eq(name, value)
            self._cube = hs._cube(v for n in names for v in hs.field_vars(n))
        self._in_port_cube = hs._cube(hs.field_vars("in_port"))

    def narrow(self, space: BDD) -> BDD:
        hs = self.hs
        out = hs._exist(self._cube, space & self._values)
        if self.ports is not None and "in_port" in hs.fields_of(out):
            out = hs._exist(self._in_port_cube, out & self.ports.relation())
        return out

    def rule(self, r: Rule) -> BDD:
        return self.narrow(r.space) if r.pipelined else r.space


def effect_view(hs: HeaderSpace, table: Table, key: Key, ports: PortTags | None = None) -> EffectView:
    """The effect partition of ``table`` for packets with pipeline values ``key`` (with
    ``ports``, ``key[0]`` is :data:`SYMBOLIC_PORT` and ``in_port`` follows the tags)."""
    spaces = _Spaces(hs, key, ports)
    port = None if ports is not None else _port16(key[0])
    metadata = key[METADATA_SLOT]
    candidates = _rule_candidates(table, port, metadata)
    by_level: dict[int, list[tuple[Rule, BDD]]] = {}
    relookup: list[tuple[Rule, BDD]] = []
    for r in candidates:
        space = spaces.rule(r)
        if hs.is_empty(space):
            continue
        relookup.append((r, space))
        if r.conj_id is None:
            by_level.setdefault(r.flow.priority, []).append((r, space))
    parts: dict[Steps, list[BDD]] = {}
    order: list[Steps] = []
    covered = hs.false
    misses: list[BDD] = []

    def take(steps: Steps, region: BDD) -> None:
        if steps not in parts:
            parts[steps] = []
            order.append(steps)
        parts[steps].append(region)

    for level in table.levels:
        hard = by_level.get(level.priority, [])
        for r, space in hard:
            region = space if hs.disjoint(space, covered) else space & ~covered
            covered |= space
            if not hs.is_empty(region):
                take(r.steps, region)
        for cid, conj in level.conj:
            narrowed = spaces.narrow(conj)
            complete = narrowed & ~covered
            covered |= narrowed
            if hs.is_empty(complete):
                continue
            for r, space in relookup:
                if r.conj_id not in (None, cid) or hs.disjoint(complete, space):
                    continue
                take(r.steps, complete & space)
                complete &= ~space
                if hs.is_empty(complete):
                    break
            if not hs.is_empty(complete):
                misses.append(complete)
    rest = ~covered
    if not hs.is_empty(rest):
        misses.append(rest)
    effects = [(steps, hs.union(parts[steps])) for steps in order]
    return EffectView(effects, hs.union(misses) if misses else None, len(candidates))
