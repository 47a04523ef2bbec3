"""Symbolic reachability: header spaces pushed through every switch's flow tables.

Input: parsed flow tables per switch (``{switch: [Flow, ...]}``, from
:mod:`segctl.flows.ofctl`) and a :class:`Topology` (fabric links and edge ports, taken
from the resolved :class:`~segctl.topology.network.Network`, never from the compiler).
Output: for every injection point (switch, edge port) the list of :class:`Outcome`: a
header-space relation (ghost = the packet as injected, live = the packet at the end; see
:mod:`segctl.flows.headerspace`), a :class:`Disposition`, and the :class:`Hop` trace.
Every ``ct(commit)`` met is recorded as a :class:`CommitEvent`; structural problems (equal
priority overlaps, path explosion) as :class:`Finding`.

Semantics (OpenFlow 1.3 as OVS implements it, ``fail_mode=secure``):

* a table visit takes rules by descending priority; each rule takes the part of the
  remaining space it matches; rules of equal priority are taken in input order and an
  overlap between them is a ``Finding`` (OVS leaves the choice undefined);
* conjunctive matches: at one priority, the packets matching at least one flow of every
  clause ``1..n`` of ``conjunction(id, k/n)`` complete the conjunction and are looked up
  again with ``conj_id=id`` (among the table's non-conjunction rules whose ``conj_id`` is
  ``id`` or wildcarded, by priority); a non-conjunction rule of the same priority wins over
  a conjunction, and packets that complete no conjunction go on to lower priorities; rules
  that match ``conj_id`` never match a normal lookup;
* actions apply in order on the current packet: ``output`` copies it (an edge port
  delivers, a fabric port continues at the peer switch's table 0 with the pipeline fields
  reset and the VLAN tag kept, ``IN_PORT`` sends it back where it came from, an explicit
  ``output`` to the ingress port is dropped as OVS does, any other port is
  ``unconnected``); ``set_field``/``mod_dl_*``/``write_metadata`` rewrite;
  ``push_vlan`` tags an untagged packet with VID 0 (a second tag is not modelled and is
  reported ``unsupported``); ``pop_vlan``/``set_field:vlan_vid`` do nothing to an
  untagged packet; ``dec_ttl`` drops TTL 0/1 (``ttl-expired``); ``meter`` passes;
  ``controller`` is a disposition; ``goto_table`` continues;
* ``ct(zone=z, table=t)`` forks: a copy with ``ct_zone=z`` and a fresh symbolic
  ``ct_state`` (``+trk`` and exactly one of ``new``/``est``/``rel``/``inv``; ``rpl``
  free) continues at table ``t``, the original continues with the next action;
  ``ct(commit)`` records a :class:`CommitEvent`;
* a table miss drops; an action list that neither outputs, drops, sends to the controller,
  goes to a table nor recirculates drops the packet (``no output``);
* loop: entering (switch, table) with live packets that overlap a space that entered the
  same (switch, table) earlier on the same path (``in_port`` is part of the space).

Examples
--------
>>> from segctl.flows.ofctl import parse_flows
>>> tables = {"s1": parse_flows("in_port=1,actions=output:2")}
>>> topo = Topology(links={}, edges={("s1", 1): "t/a", ("s1", 2): "t/b"})
>>> result = Engine(tables, topo).run()
>>> [str(o.disposition) for o in result.outcomes[("s1", 1)]]
['delivered to t/b (s1:2)']
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from segctl.flows.headerspace import (
    BDD,
    CT_EST,
    CT_INV,
    CT_NEW,
    CT_REL,
    CT_TRK,
    HeaderSpace,
    _port16,
)
from segctl.flows.ofctl import (
    IN_PORT,
    Conjunction,
    Controller,
    Ct,
    DecTtl,
    Drop,
    Flow,
    GotoTable,
    Meter,
    Output,
    PopVlan,
    PushVlan,
    SetField,
    WriteMetadata,
)

if TYPE_CHECKING:
    from segctl.topology.network import Network

__all__ = [
    "CONTROLLER",
    "DELIVERED",
    "DROPPED",
    "LOOP",
    "MISS",
    "TRUNCATED",
    "TTL_EXPIRED",
    "UNCONNECTED",
    "UNSUPPORTED",
    "CommitEvent",
    "Disposition",
    "Engine",
    "Finding",
    "Hop",
    "Outcome",
    "Reachability",
    "Topology",
    "compute_reachability",
]

DELIVERED = "delivered"
DROPPED = "dropped"
MISS = "miss"
LOOP = "loop"
CONTROLLER = "controller"
UNCONNECTED = "unconnected"
TTL_EXPIRED = "ttl-expired"
UNSUPPORTED = "unsupported"
TRUNCATED = "truncated"

SwitchPort = tuple[str, int]


@dataclass(frozen=True)
class Topology:
    """Fabric links (both directions) and edge ports (bound endpoint, ``tenant/name``)."""

    links: Mapping[SwitchPort, SwitchPort]
    edges: Mapping[SwitchPort, str]

    @classmethod
    def from_network(cls, network: Network) -> Topology:
        links: dict[SwitchPort, SwitchPort] = {}
        for a, a_port, b, b_port in network.links:
            links[(a, a_port)] = (b, b_port)
            links[(b, b_port)] = (a, a_port)
        edges = {(ep.switch, ep.port): ep.qualified for ep in network.endpoints}
        return cls(links=links, edges=edges)


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
class Disposition:
    """What finally happened to a packet; ``kind`` is one of the module constants."""

    kind: str
    switch: str
    table: int | None = None
    port: int | None = None
    endpoint: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        if self.kind == DELIVERED:
            return f"delivered to {self.endpoint} ({self.switch}:{self.port})"
        where = f"{self.switch}" + (f" table={self.table}" if self.table is not None else "")
        where += f" port={self.port}" if self.port is not None else ""
        return f"{self.kind} at {where}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class Outcome:
    """A header-space relation (ghost = injected, live = final) and its fate."""

    ingress: SwitchPort
    space: BDD = field(compare=False)
    disposition: Disposition
    hops: tuple[Hop, ...]


@dataclass(frozen=True)
class CommitEvent:
    """A ``ct(commit)`` met on a path: the packets (relation) committed in ``zone``."""

    ingress: SwitchPort
    switch: str
    table: int
    zone: int
    space: BDD = field(compare=False)
    hops: tuple[Hop, ...]


@dataclass(frozen=True)
class Finding:
    """A structural problem of the tables (not a verdict on a property)."""

    kind: str
    switch: str
    table: int
    priority: int
    detail: str


@dataclass
class Reachability:
    """The engine's answer: outcomes per ingress, commit events, findings."""

    hs: HeaderSpace
    outcomes: dict[SwitchPort, list[Outcome]]
    commits: list[CommitEvent]
    findings: list[Finding]

    def delivered(self, ingress: SwitchPort | None = None) -> list[Outcome]:
        """Outcomes delivered to an endpoint (from one ingress, or from all)."""
        keys = [ingress] if ingress is not None else list(self.outcomes)
        return [o for k in keys for o in self.outcomes.get(k, []) if o.disposition.kind == DELIVERED]


# ---------------------------------------------------------------------------- tables


@dataclass
class _Rule:
    flow: Flow
    space: BDD
    conj_id: int | None  # the rule matches conj_id=… (only in conjunction re-lookups)
    conjunctions: tuple[Conjunction, ...]
    in_port: int | None  # the exact in_port the rule matches, None when it matches any
    metadata: tuple[int, int] | None  # the rule's (value, mask) on metadata, None when any
    _hops: dict[str, Hop] = field(default_factory=dict)

    def may_match(self, in_port: int | None, metadata: int | None) -> bool:
        """False only when the rule cannot match a packet with this (known) in_port and metadata."""
        if in_port is not None and self.in_port is not None and self.in_port != in_port:
            return False
        if metadata is not None and self.metadata is not None:
            value, mask = self.metadata
            return (metadata ^ value) & mask == 0
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
class _Level:
    priority: int
    hard: list[_Rule]
    clauses: dict[int, dict[int, list[_Rule]]]  # conj id -> clause k -> rules
    n_clauses: dict[int, int]
    conj: list[tuple[int, BDD]] = field(default_factory=list)  # (conj id, completed space), by id


@dataclass
class _Table:
    levels: list[_Level]
    rules: list[_Rule]  # non-conjunction rules by descending priority (stable)
    _by_key: dict[tuple[int | None, int | None], list[_Level]] = field(default_factory=dict)

    def levels_for(self, in_port: int | None, metadata: int | None) -> list[_Level]:
        """The levels with only the rules that can match packets of this in_port and metadata.

        A rule matching another exact ``in_port`` or a conflicting ``metadata`` can never
        hit such packets; leaving it out saves a BDD operation per rule per visit (edge
        tables are keyed by port, the later ones by tenant and segment in metadata).
        """
        key = (in_port, metadata)
        levels = self._by_key.get(key)
        if levels is None:
            levels = []
            for lv in self.levels:
                hard = [r for r in lv.hard if r.may_match(in_port, metadata)]
                if hard or lv.conj:
                    levels.append(_Level(lv.priority, hard, lv.clauses, lv.n_clauses, lv.conj))
            self._by_key[key] = levels
        return levels


def _index(hs: HeaderSpace, switch: str, flows: Sequence[Flow], findings: list[Finding]) -> dict[int, _Table]:
    by_table: dict[int, list[Flow]] = {}
    for f in flows:
        by_table.setdefault(f.table, []).append(f)
    out: dict[int, _Table] = {}
    for table, tflows in by_table.items():
        ordered = sorted(tflows, key=lambda f: -f.priority)  # stable: input order within a priority
        rules: list[_Rule] = []
        levels: dict[int, _Level] = {}
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
            rule = _Rule(f, hs.match(terms), conj.value if conj else None, conjunctions, in_port, metadata)
            level = levels.setdefault(f.priority, _Level(f.priority, [], {}, {}))
            if conjunctions:
                for c in conjunctions:
                    level.clauses.setdefault(c.id, {}).setdefault(c.clause, []).append(rule)
                    if level.n_clauses.setdefault(c.id, c.n_clauses) != c.n_clauses:
                        detail = f"conjunction {c.id} used with different clause counts"
                        findings.append(Finding("conjunction", switch, table, f.priority, detail))
            else:
                rules.append(rule)
                if rule.conj_id is None:
                    level.hard.append(rule)
        out[table] = _Table(sorted(levels.values(), key=lambda lv: -lv.priority), rules)
        for level in out[table].levels:
            _overlaps(hs, switch, table, level, findings)
    return out


def _overlaps(hs: HeaderSpace, switch: str, table: int, level: _Level, findings: list[Finding]) -> None:
    hard = level.hard
    for i, a in enumerate(hard):
        for b in hard[i + 1 :]:
            if a.flow.actions != b.flow.actions and not hs.is_empty(a.space & b.space):
                detail = f"rules at lines {a.flow.line} and {b.flow.line} overlap with different actions"
                findings.append(Finding("overlap", switch, table, level.priority, detail))
    ids = sorted(level.clauses)
    spaces = {cid: _conj_space(hs, level, cid) for cid in ids}
    level.conj = [(cid, spaces[cid]) for cid in ids]
    for i, a_id in enumerate(ids):
        for b_id in ids[i + 1 :]:
            if not hs.is_empty(spaces[a_id] & spaces[b_id]):
                detail = f"conjunctions {a_id} and {b_id} overlap"
                findings.append(Finding("conjunction-overlap", switch, table, level.priority, detail))
        for h in hard:
            if not hs.is_empty(spaces[a_id] & h.space):
                detail = f"conjunction {a_id} overlaps the rule at line {h.flow.line} of equal priority"
                findings.append(Finding("overlap", switch, table, level.priority, detail))


def _conj_space(hs: HeaderSpace, level: _Level, cid: int) -> BDD:
    n = level.n_clauses[cid]
    space = hs.true
    for k in range(1, n + 1):
        clause = hs.false
        for rule in level.clauses[cid].get(k, []):
            clause |= rule.space
        space &= clause
    return space


# ---------------------------------------------------------------------------- engine


@dataclass
class _Path:
    ingress: SwitchPort
    in_port: int
    hops: tuple[Hop, ...]
    visited: tuple[tuple[str, int, BDD], ...]
    # The packet's metadata as far as the actions on the path fix it (zero when a switch is
    # entered, then write_metadata/set_field with constants); None when not known. It only
    # narrows which rules a table visit tries, after a check that the space agrees.
    metadata: int | None = 0


class Engine:
    """Symbolic reachability over flow tables; build once, :meth:`inject` many times."""

    def __init__(
        self,
        tables: Mapping[str, Sequence[Flow]],
        topology: Topology,
        *,
        hs: HeaderSpace | None = None,
        max_steps: int = 200_000,
        ct_states: BDD | None = None,
    ) -> None:
        """``ct_states`` (a BDD over ``ct_state``) narrows what a ``ct(table=…)`` may return;
        the default is ``+trk`` with exactly one of ``new``/``est``/``rel``/``inv``."""
        self.hs = hs or HeaderSpace()
        self.topology = topology
        self.findings: list[Finding] = []
        self._tables = {sw: _index(self.hs, sw, flows, self.findings) for sw, flows in tables.items()}
        self._max_steps = max_steps
        self._steps = 0
        h = self.hs
        onehot = h.false
        for bit in (CT_NEW, CT_EST, CT_REL, CT_INV):
            onehot |= h.eq("ct_state", CT_TRK | bit, CT_TRK | CT_NEW | CT_EST | CT_REL | CT_INV)
        self._fresh_ct = onehot if ct_states is None else ct_states
        self.commits: list[CommitEvent] = []
        self._keys: dict[tuple[int | None, int | None], BDD] = {}

    def with_ct_states(self, ct_states: BDD) -> Engine:
        """An engine over the same indexed tables (rule BDDs, findings) with other ``ct_states``.

        Indexing builds every rule's BDD and checks every priority level for overlaps; the
        verifier's runs differ only in what a ``ct()`` lookup returns, so they share it.
        """
        other = copy.copy(self)  # shallow: hs, topology, findings and the index are shared
        other._steps = 0
        other._fresh_ct = ct_states
        other.commits = []
        return other

    def edge_ports(self) -> list[SwitchPort]:
        """Edge ports of switches that have tables, sorted."""
        return sorted(p for p in self.topology.edges if p[0] in self._tables)

    def inject(self, switch: str, port: int, space: BDD | None = None) -> list[Outcome]:
        """Push ``space`` (default: every packet) in at ``switch``:``port``; return its outcomes."""
        start = self.hs.injected(port)
        if space is not None:
            start &= space
        outcomes: list[Outcome] = []
        self._steps = 0
        path = _Path((switch, port), port, (), ())
        self._table(switch, 0, start, path, outcomes)
        return outcomes

    def run(self, ingress: Sequence[SwitchPort] | None = None) -> Reachability:
        """Inject every packet at every edge port (or at ``ingress``)."""
        self.commits = []
        outcomes = {p: self.inject(*p) for p in (ingress if ingress is not None else self.edge_ports())}
        return Reachability(self.hs, outcomes, list(self.commits), list(self.findings))

    # ------------------------------------------------------------------ tables

    def _table(self, switch: str, table: int, space: BDD, path: _Path, out: list[Outcome]) -> None:
        hs = self.hs
        self._steps += 1
        if self._steps > self._max_steps:
            detail = f"more than {self._max_steps} table visits from one ingress"
            self._emit(out, path, space, Disposition(TRUNCATED, switch, table, detail=detail))
            return
        for sw, tb, seen in path.visited:
            if sw == switch and tb == table:
                overlap = hs.final(space) & hs.final(seen)
                if not hs.is_empty(overlap):
                    loop = Disposition(LOOP, switch, table, detail="packet returns to this table")
                    self._emit(out, path, space & overlap, loop)
                    space &= ~overlap
        if hs.is_empty(space):
            return
        path = replace(path, visited=(*path.visited, (switch, table, space)))
        tables = self._tables.get(switch, {})
        tab = tables.get(table)
        remaining = space
        if tab is not None:
            for level in self._levels(tab, space, path):
                if hs.is_empty(remaining):
                    break
                for rule in level.hard:
                    hit = remaining & rule.space
                    if not hs.is_empty(hit):
                        remaining &= ~rule.space
                        self._rule(switch, rule, hit, path, out)
                for cid, conj_space in level.conj:
                    complete = remaining & conj_space
                    if hs.is_empty(complete):
                        continue
                    remaining &= ~complete
                    self._conj_lookup(switch, table, tab, cid, complete, path, out)
        if not hs.is_empty(remaining):
            miss = Hop(switch, table, -1, 0, "", "")
            self._emit(out, path, remaining, Disposition(MISS, switch, table), (*path.hops, miss))

    def _levels(self, tab: _Table, space: BDD, path: _Path) -> list[_Level]:
        """``tab``'s levels narrowed to the rules that can hit ``space`` (see :meth:`_Table.levels_for`).

        The key (in_port, metadata) is only used once the space is checked to lie inside it,
        so the narrowing never changes a result.
        """
        hs = self.hs
        port = _port16(path.in_port)
        key = self._keys.get((port, path.metadata))
        if key is None:
            key = hs.true if port is None else hs.eq("in_port", port)
            if path.metadata is not None:
                key &= hs.eq("metadata", path.metadata)
            self._keys[(port, path.metadata)] = key
        if hs.is_empty(space & ~key):
            return tab.levels_for(port, path.metadata)
        return tab.levels

    def _conj_lookup(
        self, switch: str, table: int, tab: _Table, cid: int, space: BDD, path: _Path, out: list[Outcome]
    ) -> None:
        for rule in tab.rules:
            if rule.conj_id not in (None, cid):
                continue
            hit = space & rule.space
            if not self.hs.is_empty(hit):
                space &= ~rule.space
                self._rule(switch, rule, hit, path, out, note=f"conjunction {cid}")
        if not self.hs.is_empty(space):
            miss = Hop(switch, table, -1, 0, f"conj_id={cid}", "", note="no conj_id flow")
            self._emit(out, path, space, Disposition(MISS, switch, table), (*path.hops, miss))

    def _emit(
        self, out: list[Outcome], path: _Path, space: BDD, d: Disposition, hops: tuple[Hop, ...] | None = None
    ) -> None:
        out.append(Outcome(path.ingress, space, d, path.hops if hops is None else hops))

    # ------------------------------------------------------------------ actions

    def _rule(
        self, switch: str, rule: _Rule, space: BDD, path: _Path, out: list[Outcome], note: str = ""
    ) -> None:
        flow = rule.flow
        meta = path.metadata
        path = replace(path, hops=(*path.hops, rule.hop(switch, note)))
        hs = self.hs
        table = flow.table
        forwarded = False
        for action in flow.actions:
            if hs.is_empty(space):
                return
            match action:
                case Output(port=port):
                    forwarded = True
                    self._output(switch, table, port, space, path, out)
                case Controller():
                    forwarded = True
                    self._emit(out, path, space, Disposition(CONTROLLER, switch, table))
                case Drop():
                    forwarded = True
                    d = Disposition(DROPPED, switch, table, detail="drop action")
                    self._emit(out, path, space, d)
                case GotoTable(table=t):
                    forwarded = True
                    self._table(switch, t, space, path, out)
                case WriteMetadata(value=v, mask=m):
                    space = hs.write_masked(space, "metadata", v, m)
                    if meta is not None:
                        meta = (meta & ~m) | (v & m)
                        path = replace(path, metadata=meta)
                case SetField(field="vlan_vid", value=v):
                    tagged = hs.eq("vlan_present", 1)
                    space = hs.set_field(space & tagged, "vlan_vid", v) | (space & ~tagged)
                case SetField(field=name, value=v):
                    space = hs.set_field(space, name, v)
                    if name == "metadata":
                        path = replace(path, metadata=v)
                case DecTtl():
                    space, expired = hs.dec_ttl(space)
                    if not hs.is_empty(expired):
                        d = Disposition(TTL_EXPIRED, switch, table, detail="dec_ttl on TTL 0 or 1")
                        self._emit(out, path, expired, d)
                case PushVlan():
                    tagged = space & hs.eq("vlan_present", 1)
                    if not hs.is_empty(tagged):
                        d = Disposition(UNSUPPORTED, switch, table, detail="push_vlan on a tagged packet")
                        self._emit(out, path, tagged, d)
                    untagged = space & hs.eq("vlan_present", 0)
                    space = hs.set_field(hs.set_field(untagged, "vlan_present", 1), "vlan_vid", 0)
                case PopVlan():
                    tagged = hs.eq("vlan_present", 1)
                    popped = hs.set_field(hs.set_field(space & tagged, "vlan_present", 0), "vlan_vid", 0)
                    space = popped | (space & ~tagged)
                case Ct(commit=commit, zone=zone, table=ct_table):
                    if commit:
                        self.commits.append(CommitEvent(path.ingress, switch, table, zone, space, path.hops))
                    if ct_table is not None:
                        forwarded = True
                        tracked = (
                            hs.forget(space, ["ct_state", "ct_zone"])
                            & hs.eq("ct_zone", zone)
                            & self._fresh_ct
                        )
                        self._table(switch, ct_table, tracked, path, out)
                case Meter() | Conjunction():
                    pass
        if not forwarded and not hs.is_empty(space):
            d = Disposition(DROPPED, switch, table, detail="no output")
            self._emit(out, path, space, d)

    def _output(
        self, switch: str, table: int, port: int, space: BDD, path: _Path, out: list[Outcome]
    ) -> None:
        if port == IN_PORT:
            port = path.in_port
        elif port == path.in_port:
            d = Disposition(DROPPED, switch, table, port, detail="output to the ingress port needs IN_PORT")
            self._emit(out, path, space, d)
            return
        peer = self.topology.links.get((switch, port))
        endpoint = self.topology.edges.get((switch, port))
        if peer is not None:
            nxt = replace(path, in_port=peer[1], metadata=0)
            self._table(peer[0], 0, self.hs.reset_pipeline(space, peer[1]), nxt, out)
        elif endpoint is not None:
            d = Disposition(DELIVERED, switch, table, port, endpoint)
            self._emit(out, path, space, d)
        else:
            d = Disposition(
                UNCONNECTED, switch, table, port, detail="port is neither a fabric link nor an endpoint"
            )
            self._emit(out, path, space, d)


def compute_reachability(
    tables: Mapping[str, Sequence[Flow]], topology: Topology, *, hs: HeaderSpace | None = None
) -> Reachability:
    """Reachability from every edge port: ``Engine(tables, topology, hs=hs).run()``."""
    return Engine(tables, topology, hs=hs).run()
