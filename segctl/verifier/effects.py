"""A table as a function: which packets get which actions (the scalable engine's view).

The reference engine tries a table's rules one after the other for every space that
enters it. :func:`effect_view` does that once per (table, concrete pipeline values): it
partitions all packets by the rule that takes them, in the table's order (priority, then
input order; at one priority hard rules before conjunctions, conjunctions by id, then the
``conj_id`` re-lookup), and merges the parts of rules that do the same thing (equal action
lists) into one *effect*. A visit is then one AND per effect: a forwarding table with a
thousand destination MACs and three distinct actions costs three operations, not a
thousand, and the spaces that come out are the same unions the rule-by-rule walk gives.

The scalable engine keeps ``in_port`` in the packets' space (the packets of every edge port
of a switch travel together), so a view fixes the other pipeline values only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from segctl.openflow.ofctl import IN_PORT, Action, DecTtl, Output, PopVlan, PushVlan, SetField
from segctl.verifier.fields import _port16
from segctl.verifier.headerspace import BDD, CONCRETE_FIELDS, FIELDS, HeaderSpace
from segctl.verifier.symtables import METADATA_SLOT, SLOT, Key, Rule, SetFields, Table

_PIPELINE = frozenset(SLOT)

__all__ = ["SYMBOLIC_PORT", "EffectView", "effect_view"]

#: ``key[0]`` of the scalable engine's keys: ``in_port`` is in the space, not the key.
SYMBOLIC_PORT = -1
#: Effects worth an index, and the most values of the index field one effect (or a visit's
#: space) may take and still be looked up by value.
_INDEX_FROM = 8
_INDEX_LIMIT = 16
_INDEX_FIELDS = ("eth_dst", "ip_dst")
Steps = tuple[Action | SetFields, ...]


@dataclass(frozen=True)
class Param:
    """Rules that differ only in the constants one ``set_field`` run writes, merged: at step
    ``index`` the fields ``varying`` get, for each packet, the values its rule writes
    (``relation``: each rule's region, its constraint on ``varying`` dropped, with those
    values), the other fields of the run their common values."""

    index: int
    varying: frozenset[str]
    relation: BDD


@dataclass(frozen=True)
class Effect:
    """What a table does to the packets of ``region``: ``steps`` (with ``param``, a family of
    rules that differ in the values one step writes)."""

    steps: Steps
    region: BDD
    param: Param | None = None


@dataclass
class EffectView:
    """A table for packets with known pipeline values: ``effects`` in table order, each an
    action list and the packets it takes; ``miss`` the packets no rule takes (None: none)."""

    effects: list[Effect]
    miss: BDD | None
    rules: int = 0
    #: The field the effects are indexed by (each takes few of its values), the effects by
    #: value, and the effects not indexed; None when the effects are few.
    index_field: str | None = None
    by_value: dict[int, list[int]] = field(default_factory=dict)
    unindexed: list[int] = field(default_factory=list)

    def candidates(self, hs: HeaderSpace, space: BDD) -> list[Effect]:
        """The effects that may take packets of ``space`` (all of them, or through the index
        when ``space`` holds few values of the index field), in order."""
        if self.index_field is None:
            return self.effects
        values = hs.values(space, self.index_field, _INDEX_LIMIT)
        if values is None:
            return self.effects
        chosen = set(self.unindexed)
        for v in values:
            chosen.update(self.by_value.get(v, ()))
        return [self.effects[i] for i in sorted(chosen)]


def _rule_candidates(table: Table, port: int | None, metadata: int) -> list[Rule]:
    """The table's non-conjunction rules that may match (``port`` None: symbolic), in order."""
    return table._candidates(port, metadata)


class _Spaces:
    """Rule and conjunction spaces as packets with ``key`` see them: cofactored by the concrete
    pipeline values but ``in_port``, which the scalable engine keeps in the space."""

    def __init__(self, hs: HeaderSpace, key: Key) -> None:
        self.hs, self.key = hs, key
        symbolic = key[0] == SYMBOLIC_PORT
        names = CONCRETE_FIELDS[1:] if symbolic else CONCRETE_FIELDS
        values = key[1:] if symbolic else key
        self._empty = any(v < 0 or v >> FIELDS[n] for n, v in zip(names, values, strict=True))
        self._bits: dict[str, dict[str, bool]] = {}  # per concrete field: its variables' values
        for name, value in zip(names, values, strict=True):
            width = FIELDS[name]
            self._bits[name] = {
                var: bool(value >> (width - 1 - i) & 1) for i, var in enumerate(hs.field_vars(name))
            }
        self._assignment = {var: bit for bits in self._bits.values() for var, bit in bits.items()}
        self._values = dict(zip(names, values, strict=True))

    def narrow(self, space: BDD) -> BDD:
        return self.hs.false if self._empty else self.hs.bdd.let(self._assignment, space)

    def rule(self, r: Rule) -> BDD:
        """A rule's space for these pipeline values: empty when its terms on them do not hold,
        else its match without them (built once per rule, so a view costs no BDD operation
        per rule)."""
        if not r.pipelined:
            return r.space
        if self._empty:
            return self.hs.false
        for t in r.flow.match:
            if t.field in self._values:
                value = t.value if t.field != "in_port" else _port16(t.value)
                if value is None or (self._values[t.field] ^ value) & t.mask:
                    return self.hs.false
        fixed = frozenset(self._values)
        if r.header_only is None or r.header_only[0] != fixed:
            terms = tuple(t for t in r.flow.match if t.field not in fixed and t.field != "conj_id")
            r.header_only = (fixed, self.hs.match(terms))
        return r.header_only[1]


def effect_view(hs: HeaderSpace, table: Table, key: Key) -> EffectView:
    """The effect partition of ``table`` for packets with pipeline values ``key`` (with
    ``key[0]`` :data:`SYMBOLIC_PORT` the packets carry their ``in_port``, and rules on it keep
    it in their spaces)."""
    spaces = _Spaces(hs, key)
    port = None if key[0] == SYMBOLIC_PORT else _port16(key[0])
    candidates = _rule_candidates(table, port, key[METADATA_SLOT])
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
            region = space & ~covered  # one operation (a disjointness test costs as much)
            covered |= space
            if not hs.is_empty(region):
                take(r.steps, region)
        for cid, conj in level.conj_candidates(key[METADATA_SLOT]):
            narrowed = spaces.narrow(conj)
            complete = narrowed & ~covered
            covered |= narrowed
            if hs.is_empty(complete):
                continue
            for r, space in relookup:
                if r.conj_id not in (None, cid):
                    continue
                taken = complete & space
                if hs.is_empty(taken):
                    continue
                take(r.steps, taken)
                complete &= ~space
                if hs.is_empty(complete):
                    break
            if not hs.is_empty(complete):
                misses.append(complete)
    rest = ~covered
    if not hs.is_empty(rest):
        misses.append(rest)
    effects = _families(hs, [e for steps in order for e in _merged(hs, steps, parts[steps], port)])
    view = EffectView(effects, hs.union(misses) if misses else None, len(candidates))
    if len(effects) >= _INDEX_FROM:
        _index(hs, view)
    return view


def _merged(hs: HeaderSpace, steps: Steps, regions: list[BDD], port: int | None) -> list[Effect]:
    """The rules' regions of one action list as one effect; but when the packets carry their
    ``in_port`` (``port`` None) and the actions send to ``IN_PORT``, one effect per rule: an
    ARP responder's rule pins a port and a destination MAC, and sending the union back out
    would split it port by port with one AND over the whole space each (quadratic in the
    edge ports), where each rule's region keeps the split where the MAC is (near the top)."""
    if port is None and any(isinstance(a, Output) and a.port == IN_PORT for a in steps):
        return [Effect(steps, region) for region in regions]
    return [Effect(steps, hs.union(regions))]


def _index(hs: HeaderSpace, view: EffectView) -> None:
    """Index the effects by the field (of :data:`_INDEX_FIELDS`) that pins most of them."""
    best: tuple[int, str, dict[int, list[int]], list[int]] | None = None
    for name in _INDEX_FIELDS:
        by_value: dict[int, list[int]] = {}
        unindexed: list[int] = []
        for i, effect in enumerate(view.effects):
            values = hs.values(effect.region, name, _INDEX_LIMIT)
            if values is None:
                unindexed.append(i)
            else:
                for v in values:
                    by_value.setdefault(v, []).append(i)
        indexed = len(view.effects) - len(unindexed)
        if best is None or indexed > best[0]:
            best = (indexed, name, by_value, unindexed)
    if best is not None and best[0] >= _INDEX_FROM:
        _, view.index_field, view.by_value, view.unindexed = best


_WRITES = (SetFields, SetField, DecTtl, PushVlan, PopVlan)


def _shape(steps: Steps) -> tuple[object, ...]:
    """An action list with the values of its ``set_field`` runs left out."""
    return tuple(("set", tuple(n for n, _ in a.writes)) if isinstance(a, SetFields) else a for a in steps)


def _families(hs: HeaderSpace, effects: list[Effect]) -> list[Effect]:
    """Merge effects that differ only in the values of one ``set_field`` run (a host route per
    destination, a unicast ARP rewrite per target) into one :class:`Param` effect, when it is
    exact: no header is written before that run, and every rule's region is its constraint
    on the varying fields (the same for all) times a part free of them."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, e in enumerate(effects):
        groups.setdefault(_shape(e.steps), []).append(i)
    merged: dict[int, Effect] = {}
    dropped: set[int] = set()
    for members in groups.values():
        if len(members) < 2:
            continue
        family = _family(hs, [effects[i] for i in members])
        if family is not None:
            merged[members[0]] = family
            dropped.update(members[1:])
    return [merged.get(i, e) for i, e in enumerate(effects) if i not in dropped]


def _family(hs: HeaderSpace, members: list[Effect]) -> Effect | None:
    steps = members[0].steps
    differ = [i for i, a in enumerate(steps) if any(m.steps[i] != a for m in members)]
    if len(differ) != 1 or not isinstance(steps[differ[0]], SetFields):
        return None
    index = differ[0]
    if any(
        isinstance(a, _WRITES) and not (isinstance(a, SetField) and a.field in _PIPELINE)
        for a in steps[:index]
    ):
        return None
    runs = [dict(m.steps[index].writes) for m in members]  # type: ignore[union-attr]
    varying = frozenset(hs.canonical(n) for n in runs[0] if any(r[n] != runs[0][n] for r in runs))
    if not varying or len(runs[0]) != len({hs.canonical(n) for n in runs[0]}):
        return None
    common = None
    parts = []
    for m, run in zip(members, runs, strict=True):
        on = hs.only(m.region, varying)
        rest = hs.forget(m.region, varying)
        if common is None:
            common = on
        if on != common or (on & rest) != m.region:
            return None
        values = hs.true
        for name, value in run.items():
            if hs.canonical(name) in varying:
                values &= hs.eq(hs.canonical(name), value)
        parts.append(rest & values)
    region = hs.union(m.region for m in members)
    return Effect(steps, region, Param(index, varying, hs.union(parts)))
