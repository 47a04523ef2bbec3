"""The symbolic engine's view of flow tables: rules indexed by table and priority.

:func:`index_tables` turns one switch's parsed flows into :class:`Table` objects (each
rule's match as a BDD, conjunction clauses, priority levels) and records structural
:class:`Finding` objects (equal-priority overlaps, overlapping conjunctions).
:meth:`Table.view` gives the table as packets with known concrete pipeline values (a
:data:`Key`) see it: rule spaces cofactored by the key, rules that cannot match left out.
See :mod:`segctl.verifier.symbolic` for the semantics and ``docs/verification.md`` §5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from segctl.openflow.ofctl import Action, Conjunction, Flow, SetField
from segctl.verifier.fields import _port16
from segctl.verifier.headerspace import BDD, CONCRETE_FIELDS, HeaderSpace

__all__ = [
    "CT_ZONE_SLOT",
    "METADATA_SLOT",
    "SLOT",
    "Finding",
    "Hop",
    "Key",
    "Level",
    "Rule",
    "SetFields",
    "Table",
    "View",
    "entry_key",
    "index_tables",
    "with_value",
]

#: The values of :data:`~segctl.verifier.headerspace.CONCRETE_FIELDS` on a path, in that order.
Key = tuple[int, ...]
SLOT = {name: i for i, name in enumerate(CONCRETE_FIELDS)}
METADATA_SLOT, CT_ZONE_SLOT = SLOT["metadata"], SLOT["ct_zone"]


def entry_key(in_port: int) -> Key:
    """A packet entering a switch: ``in_port`` set, metadata, registers and ct_zone zero."""
    return (in_port, *(0,) * (len(CONCRETE_FIELDS) - 1))


def with_value(key: Key, slot: int, value: int) -> Key:
    return (*key[:slot], value, *key[slot + 1 :])


@dataclass(frozen=True)
class Hop:
    """One rule hit (or a table miss, ``priority=-1``) on a path."""

    switch: str
    table: int
    priority: int
    cookie: int
    match: str
    actions: str
    line: int = 0
    note: str = ""

    def __str__(self) -> str:
        if self.priority < 0:
            return f"{self.switch} table={self.table} miss"
        note = f" [{self.note}]" if self.note else ""
        return (
            f"{self.switch} table={self.table} priority={self.priority} cookie={self.cookie:#x} "
            f"{self.match or '(any)'} actions={self.actions}{note}"
        )


@dataclass(frozen=True)
class Finding:
    """A structural problem of the tables (not a verdict on a property)."""

    kind: str
    switch: str
    table: int
    priority: int
    detail: str


@dataclass(frozen=True)
class SetFields:
    """Consecutive ``set_field`` actions on packet headers, applied at once."""

    writes: tuple[tuple[str, int], ...]


@dataclass
class Rule:
    flow: Flow
    space: BDD
    conj_id: int | None  # the rule matches conj_id=… (only in conjunction re-lookups)
    conjunctions: tuple[Conjunction, ...]
    in_port: int | None  # the exact in_port the rule matches, None when it matches any
    metadata: tuple[int, int] | None  # the rule's (value, mask) on metadata, None when any
    pipelined: bool = True  # the match constrains a concrete pipeline field (its space needs a cofactor)
    vlan: tuple[int, int] | None = None  # the rule's (value, mask) on vlan_tci, None when any
    order: int = 0  # position in its table's non-conjunction rules (descending priority, stable)
    # The scalable engine's: its match without the terms on the concrete fields it was built without.
    header_only: tuple[frozenset[str], BDD] | None = None
    _hops: dict[str, Hop] = field(default_factory=dict)
    _steps: tuple[Action | SetFields, ...] | None = None

    @property
    def steps(self) -> tuple[Action | SetFields, ...]:
        """The actions, with runs of header ``set_field`` merged (one quantification, one AND)."""
        if self._steps is None:
            out: list[Action | SetFields] = []
            for a in self.flow.actions:
                if isinstance(a, SetField) and a.field != "vlan_vid" and a.field not in SLOT:
                    last = out[-1] if out else None
                    if isinstance(last, SetFields):
                        out[-1] = SetFields((*last.writes, (a.field, a.value)))
                    else:
                        out.append(SetFields(((a.field, a.value),)))
                else:
                    out.append(a)
            self._steps = tuple(out)
        return self._steps

    def may_match(self, in_port: int | None, metadata: int | None, tci: int | None = None) -> bool:
        """False only when the rule cannot match a packet with this (known) in_port, metadata
        and VLAN TCI (present bit and VID)."""
        if in_port is not None and self.in_port is not None and self.in_port != in_port:
            return False
        if metadata is not None and self.metadata is not None:
            value, mask = self.metadata
            if (metadata ^ value) & mask:
                return False
        if tci is not None and self.vlan is not None:
            value, mask = self.vlan
            return (tci ^ value) & mask & 0x1FFF == 0
        return True

    def hop(self, switch: str, note: str = "") -> Hop:
        """The trace entry of a hit (built once per rule and note: formatting is not free)."""
        hop = self._hops.get(note)
        if hop is None:
            f = self.flow
            hop = Hop(switch, f.table, f.priority, f.cookie, f.match_text, f.actions_text, f.line, note)
            self._hops[note] = hop
        return hop


@dataclass
class Level:
    priority: int
    hard: list[Rule]
    clauses: dict[int, dict[int, list[Rule]]]  # conj id -> clause k -> rules
    n_clauses: dict[int, int]
    conj: list[tuple[int, BDD]] = field(default_factory=list)  # (conj id, completed space), by id
    # ``conj`` bucketed by the metadata a clause of theirs pins (every rule of that clause
    # matches the same value/mask): a view keyed by one tenant's context looks at that
    # tenant's conjunctions only, not at every tenant's (built on first use).
    _conj_wild: list[int] | None = None
    _conj_by_meta: dict[int, dict[int, list[int]]] = field(default_factory=dict)

    def conj_candidates(self, metadata: int) -> list[tuple[int, BDD]]:
        """The conjunctions (``conj`` order) that may match packets with ``metadata``."""
        if self._conj_wild is None:
            self._conj_wild = []
            for i, (cid, _) in enumerate(self.conj):
                pinned = self._pinned_metadata(cid)
                if pinned is None:
                    self._conj_wild.append(i)
                else:
                    value, mask = pinned
                    self._conj_by_meta.setdefault(mask, {}).setdefault(value & mask, []).append(i)
        chosen = list(self._conj_wild)
        for mask, by_value in self._conj_by_meta.items():
            chosen += by_value.get(metadata & mask, ())
        return [self.conj[i] for i in sorted(chosen)]

    def _pinned_metadata(self, cid: int) -> tuple[int, int] | None:
        for rules in self.clauses.get(cid, {}).values():
            pins = {r.metadata for r in rules}
            if len(pins) == 1:
                pin = next(iter(pins))
                if pin is not None:
                    return pin
        return None


@dataclass
class View:
    """A table as packets with known pipeline values see it: each rule's space cofactored by
    those values (:meth:`HeaderSpace.cofactor`), rules and levels that cannot match left out."""

    levels: list[tuple[list[tuple[Rule, BDD]], list[tuple[int, BDD]]]]  # (hard rules, conjunctions)
    rules: list[tuple[Rule, BDD]]  # non-conjunction rules by descending priority (conj_id re-lookups)


@dataclass
class Table:
    levels: list[Level]
    rules: list[Rule]  # non-conjunction rules by descending priority (stable)
    _views: dict[tuple[Key, int | None], View] = field(default_factory=dict)
    by_vlan: bool = False  # some rule matches vlan_tci: a visit with a known TCI narrows by it
    # ``rules`` bucketed by their exact in_port / metadata, so that a view costs what its
    # candidates cost, not the whole table (a source switch sees a new key per ingress port).
    _wild: list[Rule] = field(default_factory=list)  # neither in_port nor metadata
    _by_port: dict[int, list[Rule]] = field(default_factory=dict)  # in_port, no metadata
    _by_meta: dict[int, dict[int, list[Rule]]] = field(default_factory=dict)  # mask -> value -> rules

    def __post_init__(self) -> None:
        for r in self.rules:
            if r.metadata is not None:
                value, mask = r.metadata
                self._by_meta.setdefault(mask, {}).setdefault(value, []).append(r)
            elif r.in_port is not None:
                self._by_port.setdefault(r.in_port, []).append(r)
            else:
                self._wild.append(r)

    def _candidates(self, port: int | None, metadata: int) -> list[Rule]:
        """``rules`` that may match ``port`` and ``metadata`` (in_port/metadata alone), in order."""
        out = list(self._wild)
        if port is None:
            for rules in self._by_port.values():
                out.extend(rules)
        else:
            out.extend(self._by_port.get(port, ()))
        for mask, by_value in self._by_meta.items():
            for r in by_value.get(metadata & mask, ()):
                if port is None or r.in_port is None or r.in_port == port:
                    out.append(r)
        out.sort(key=lambda r: r.order)
        return out

    def view(self, hs: HeaderSpace, key: Key, tci: int | None = None) -> View:
        """The table for packets whose concrete pipeline fields hold ``key`` (built once per key).

        A rule matching another exact ``in_port`` or a conflicting ``metadata`` is skipped
        without a BDD operation (found through buckets, not a scan); the others keep the
        part of their space that ``key`` allows (exact: ``space & values(key) ==
        cofactor(space, key) & values(key)``). With ``tci`` (the caller checked that every
        packet has it) rules matching another VLAN are skipped. A conjunction whose space
        is disjoint from ``key``'s values is skipped before any cofactor.
        """
        view = self._views.get((key, tci))
        if view is None:
            port, metadata = _port16(key[0]), key[METADATA_SLOT]
            rules: list[tuple[Rule, BDD]] = []
            hard: dict[int, list[tuple[Rule, BDD]]] = {}
            for r in self._candidates(port, metadata):
                if tci is not None and not r.may_match(None, None, tci):
                    continue
                space = hs.cofactor(r.space, key) if r.pipelined else r.space
                if hs.is_empty(space):
                    continue
                rules.append((r, space))
                if r.conj_id is None:
                    hard.setdefault(r.flow.priority, []).append((r, space))
            levels = []
            values = hs.pipeline_values(key)
            for lv in self.levels:
                conj = []
                for cid, c in lv.conj_candidates(metadata):
                    if hs.disjoint(c, values):
                        continue
                    narrowed = hs.cofactor(c, key)
                    if not hs.is_empty(narrowed):
                        conj.append((cid, narrowed))
                level_hard = hard.get(lv.priority, [])
                if level_hard or conj:
                    levels.append((level_hard, conj))
            view = self._views[(key, tci)] = View(levels, rules)
        return view


def index_tables(
    hs: HeaderSpace, switch: str, flows: Sequence[Flow], findings: list[Finding]
) -> dict[int, Table]:
    """``{table: Table}`` for one switch's flows; structural problems are appended to ``findings``."""
    by_table: dict[int, list[Flow]] = {}
    for f in flows:
        by_table.setdefault(f.table, []).append(f)
    out: dict[int, Table] = {}
    for table, tflows in by_table.items():
        ordered = sorted(tflows, key=lambda f: -f.priority)  # stable: input order within a priority
        rules: list[Rule] = []
        levels: dict[int, Level] = {}
        for f in ordered:
            conj = f.get("conj_id")
            terms = tuple(t for t in f.match if t.field != "conj_id")
            conjunctions = tuple(a for a in f.actions if isinstance(a, Conjunction))
            port = f.get("in_port")
            in_port = None if port is None else _port16(port.value)
            if port is not None and in_port is None:
                in_port = -1  # a port the model cannot hold: the rule never matches
            meta = f.get("metadata")
            metadata = None if meta is None else (meta.value, meta.mask)
            pipelined = any(t.field in SLOT for t in terms)
            tci = f.get("vlan_tci")
            vlan = None if tci is None else (tci.value, tci.mask)
            space = hs.match(terms)
            rule = Rule(
                f, space, conj.value if conj else None, conjunctions, in_port, metadata, pipelined, vlan
            )
            level = levels.setdefault(f.priority, Level(f.priority, [], {}, {}))
            if conjunctions:
                for c in conjunctions:
                    level.clauses.setdefault(c.id, {}).setdefault(c.clause, []).append(rule)
                    if level.n_clauses.setdefault(c.id, c.n_clauses) != c.n_clauses:
                        detail = f"conjunction {c.id} used with different clause counts"
                        findings.append(Finding("conjunction", switch, table, f.priority, detail))
            else:
                rule.order = len(rules)
                rules.append(rule)
                if rule.conj_id is None:
                    level.hard.append(rule)
        by_vlan = any(r.vlan is not None for r in rules)
        out[table] = Table(sorted(levels.values(), key=lambda lv: -lv.priority), rules, by_vlan=by_vlan)
        for level in out[table].levels:
            _overlaps(hs, switch, table, level, findings)
    return out


def _overlaps(hs: HeaderSpace, switch: str, table: int, level: Level, findings: list[Finding]) -> None:
    # Pairs are only searched for where a rule meets the union of the ones before it: most
    # rules of a level are disjoint, so a table of thousands costs one BDD test per rule
    # instead of one per pair. Findings keep the pairwise (i, j) order.
    hard = level.hard
    pairs: list[tuple[int, int]] = []
    union = hs.false
    for j, b in enumerate(hard):
        if not hs.disjoint(b.space, union):
            pairs.extend(
                (i, j)
                for i, a in enumerate(hard[:j])
                if a.flow.actions != b.flow.actions and not hs.disjoint(a.space, b.space)
            )
        union |= b.space
    for i, j in sorted(pairs):
        detail = f"rules at lines {hard[i].flow.line} and {hard[j].flow.line} overlap with different actions"
        findings.append(Finding("overlap", switch, table, level.priority, detail))
    ids = sorted(level.clauses)
    spaces = {cid: _conj_space(hs, level, cid) for cid in ids}
    level.conj = [(cid, spaces[cid]) for cid in ids]
    conj_pairs: set[tuple[int, int]] = set()
    union = hs.false
    for j, b_id in enumerate(ids):
        if not hs.disjoint(spaces[b_id], union):
            conj_pairs.update(
                (i, j) for i, a_id in enumerate(ids[:j]) if not hs.disjoint(spaces[a_id], spaces[b_id])
            )
        union |= spaces[b_id]
    hard_union = hs.false
    for h in hard:
        hard_union |= h.space
    for i, a_id in enumerate(ids):
        for j in range(i + 1, len(ids)):
            if (i, j) in conj_pairs:
                detail = f"conjunctions {a_id} and {ids[j]} overlap"
                findings.append(Finding("conjunction-overlap", switch, table, level.priority, detail))
        if hs.disjoint(spaces[a_id], hard_union):
            continue
        for h in hard:
            if not hs.disjoint(spaces[a_id], h.space):
                detail = f"conjunction {a_id} overlaps the rule at line {h.flow.line} of equal priority"
                findings.append(Finding("overlap", switch, table, level.priority, detail))


def _conj_space(hs: HeaderSpace, level: Level, cid: int) -> BDD:
    n = level.n_clauses[cid]
    space = hs.true
    for k in range(1, n + 1):
        clause = hs.false
        for rule in level.clauses[cid].get(k, []):
            clause |= rule.space
        space &= clause
    return space
