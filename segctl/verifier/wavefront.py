"""The scalable engine: every ingress at once, tables as functions, switches in waves.

The reference engine (:mod:`segctl.verifier.reference`) walks the tables once per edge
port and splits every space rule by rule, so its cost grows with (ingress, destination,
rule) triples. This engine computes the same views (:mod:`segctl.verifier.observe`) with
three changes:

* **All ingresses together.** Every packet carries a *tag*, the number of its injection
  (a BDD field no rule reads and no action writes), so the packets of all the edge ports of
  a switch start as one space, and one table visit serves them all. At the ingress switch
  ``in_port`` stays in the space, each tag bound to its own port (the injection in
  :meth:`WavefrontEngine._walk`), and a view keeps rules' ``in_port`` terms
  (:data:`~segctl.verifier.effects.SYMBOLIC_PORT`).
* **Tables as functions.** A visit is one AND per distinct action list of the table
  (:func:`~segctl.verifier.effects.effect_view`), not one per rule.
* **Waves.** What a switch sends on a fabric link arrives at the peer in the next wave;
  arrivals at the same (switch, port) in one wave are one space. Packets of different
  ingresses and destinations thus share the fabric's tables.
* **Runs any and new in one walk** (:meth:`WavefrontEngine.runs`): the packets carry
  :data:`~segctl.verifier.headerspace.ALL_NEW`, cleared by a lookup that says anything but
  ``+trk+new``; run new is run any's relations with it set.

The BDD variable order (:data:`WAVEFRONT_ORDER`) puts what identifies the source (tag,
``eth_src``, ``ip_src``, ARP sender) at the bottom and what steers forwarding (destination,
protocol, ports, conntrack) above it, so that many sources under one forwarding decision
share one sub-BDD instead of copying it per source.

Loops: a tag whose packets come back to a switch they were at, or to a table and pipeline
state of the same switch visit, is *handed to the reference engine* (same manager, same
indexed tables) for that run, and its part of the views is the reference's: loops are
rare (never on compiled tables) and their exact semantics (:mod:`segctl.verifier.symbolic`)
are path-based.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from segctl.openflow.ofctl import (
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
    punts_to_controller,
)
from segctl.topology.network import Network
from segctl.verifier.effects import SYMBOLIC_PORT, Effect, EffectView, effect_view
from segctl.verifier.fields import _port16
from segctl.verifier.headerspace import (
    ALL_NEW,
    BDD,
    CT_EST,
    CT_INV,
    CT_NEW,
    CT_REL,
    CT_RPL,
    CT_TRK,
    FIELDS,
    HeaderSpace,
)
from segctl.verifier.nat import NatModel, translate
from segctl.verifier.observe import ReplyRequest, RunView, reply_states, requests_union
from segctl.verifier.reference import _Fold
from segctl.verifier.symbolic import (
    CONTROLLER,
    MISS,
    UNCONNECTED,
    UNSUPPORTED,
    Disposition,
    Engine,
    Topology,
)
from segctl.verifier.symtables import (
    CT_ZONE_SLOT,
    METADATA_SLOT,
    SLOT,
    Finding,
    Key,
    SetFields,
    Table,
    entry_key,
    index_tables,
    with_value,
)

__all__ = ["WAVEFRONT_ORDER", "WavefrontEngine"]

#: Where a table's effect sends packets on within the switch: (table, pipeline values, space).
_Goto = Callable[[int, "Key", "BDD"], None]
#: A place packets wait at in a switch: table, pipeline values.
_Slot = tuple[int, tuple[int, ...]]


@dataclass(frozen=True)
class _At:
    """Where an effect applies (switch, table, pipeline values) and the switches its packets'
    tags have been at."""

    switch: str
    table: int
    key: tuple[int, ...]
    visited: dict[str, BDD]


SwitchPort = tuple[str, int]
#: Variable order, top first: pipeline, forwarding-relevant headers, then the source's identity.
WAVEFRONT_ORDER: tuple[str, ...] = (
    "metadata", *(f"reg{i}" for i in range(8)), "ct_state", "all_new", "ct_zone",
    "vlan_present", "vlan_vid", "eth_type", "eth_dst", "ip_proto", "ip_dst", "nw_ttl", "tp_src", "tp_dst",
    "icmp_type", "icmp_code", "arp_op", "arp_tha", "ipv6_dst", "nd_target", "nd_sll", "nd_tll", "nd_reserved",
    "nd_options_type", "tag", "in_port", "eth_src", "ip_src", "arp_sha", "ipv6_src",
)  # fmt: skip
_SYMBOLIC_KEY: Key = (SYMBOLIC_PORT, *(0,) * (len(entry_key(0)) - 1))


@dataclass
class _Walk:
    """One run in progress: what a ``ct()`` lookup returns, the views gathered, the tags
    handed to the reference engine, the spaces waiting at each switch for the next wave."""

    fresh: Callable[[int], BDD]  # zone -> ct_state space
    fold: _Fold
    #: Keep ALL_NEW: 1 while every lookup on the path said +trk+new (runs any and new at once).
    history: bool = False
    delegated: set[int] = field(default_factory=set)
    # next wave: switch -> (table, key) -> what waits there
    waiting: dict[str, dict[_Slot, _Pending]] = field(default_factory=dict)


@dataclass
class _Pending:
    """The packets waiting at one (table, pipeline values) of a switch, and per switch the
    tags that have been there before."""

    space: BDD
    visited: dict[str, BDD]

    def merge(self, space: BDD, visited: Mapping[str, BDD]) -> None:
        self.space |= space
        merged = dict(self.visited)  # a new dict: items of one switch visit share theirs
        for sw, tags in visited.items():
            merged[sw] = merged[sw] | tags if sw in merged else tags
        self.visited = merged


#: Rewritable fields that only packets of one ethertype have (every rule on them matches it:
#: the parser requires ``arp``, ``ipv6`` or ``icmp6`` of a match or ``set_field`` on them).
_ETHERTYPE_ONLY: dict[int, tuple[str, ...]] = {
    0x0806: ("arp_op", "arp_sha", "arp_tha"),
    0x86DD: ("ipv6_src", "ipv6_dst", "nd_target", "nd_sll", "nd_tll", "nd_reserved", "nd_options_type"),
}


def _identity(hs: HeaderSpace, tables: Mapping[str, Sequence[Flow]]) -> BDD:
    """ghost == live for every rewritable field, but for those only ARP (or only IPv6) packets
    have, on other packets: no rule reads or writes them there (each such rule matches the
    ethertype), so their ghost and live bits are left free and the packets sent are the same
    (the origin of a free field is free either way), without a 336-node identity chain (ARP)
    or a 1,000-node one (IPv6 rewrites) under every other packet. When some rule touches them
    without matching the ethertype, the identity is kept for every packet."""
    groups = {eth: [n for n in names if n in hs.rewritable] for eth, names in _ETHERTYPE_ONLY.items()}
    kind_of = {n: eth for eth, names in groups.items() for n in names}
    for flows in tables.values():
        for f in flows:
            term = f.get("eth_type")
            eth = None if term is None else term.value
            touched = [t.field for t in f.match] + [
                hs.canonical(a.field) for a in f.actions if isinstance(a, SetField)
            ]
            for name in touched:
                kind = kind_of.get(name)
                if kind is not None and kind != eth:  # touched on other packets: kept everywhere
                    groups[kind] = []
                    kind_of = {n: k for n, k in kind_of.items() if k != kind}
    grouped = {n for names in groups.values() for n in names}
    out = hs.ghost_copy(hs.true, [n for n in hs.rewritable if n not in grouped])
    for eth, names in groups.items():
        if not names:
            continue
        on = hs.eq("eth_type", eth)
        out &= (on & hs.ghost_copy(hs.true, names)) | ~on
    return out


def _signature(table: Table | None, key: Key) -> object:
    """What an effect view of ``table`` for pipeline values ``key`` is made of: the rules
    (and conjunction clause rules) the values let through, in table order."""
    if table is None:
        return None
    port = None if key[0] == SYMBOLIC_PORT else key[0]
    rules = list(table._candidates(port, key[METADATA_SLOT]))
    clauses = [r for level in table.levels for cs in level.clauses.values() for rs in cs.values() for r in rs]
    return tuple((f.priority, f.match, f.actions) for r in (*rules, *clauses) if _passes(f := r.flow, key))


def _passes(flow: Flow, key: Key) -> bool:
    """Whether the flow's terms on concrete pipeline fields hold for ``key`` (in_port aside
    when it is in the space)."""
    for t in flow.match:
        slot = SLOT.get(t.field)
        if slot is None or (slot == 0 and key[0] == SYMBOLIC_PORT):
            continue
        value = t.value if slot else _port16(t.value)
        if value is None or (key[slot] ^ value) & t.mask:
            return False
    return True


def _fields_read(table: Table) -> frozenset[int]:
    """The slots of the concrete pipeline fields but in_port (which is in the space) that some
    rule (or conjunction clause) of ``table`` matches."""
    rules = list(table.rules)
    for level in table.levels:
        for clauses in level.clauses.values():
            for members in clauses.values():
                rules.extend(members)
    return frozenset(SLOT[t.field] for r in rules for t in r.flow.match if t.field in SLOT)


class WavefrontEngine:
    """The scalable engine behind the :class:`~segctl.verifier.observe.Engine` interface."""

    name = "wavefront"

    def __init__(
        self, network: Network, tables: Mapping[str, Sequence[Flow]], *, hs: HeaderSpace | None = None
    ) -> None:
        self.hs = hs or HeaderSpace.for_tables(tables, WAVEFRONT_ORDER)
        if not self.hs.tracks(tables):
            raise ValueError("the header space does not track every field the tables write")
        self.topology = Topology.from_network(network)
        self._findings_by: dict[str, list[Finding]] = {}
        self._index: dict[str, dict[int, Table]] = {}
        self._flows: dict[str, dict[int, tuple[Flow, ...]]] = {}
        self._nat_parts: dict[str, NatModel] = {}
        for sw, flows in tables.items():
            self._index_switch(sw, flows)
        self._nat = NatModel.merge(self._nat_parts.values())
        self._ports = self.topology.ingress_ports()
        self._views: dict[tuple[str, int, Key], EffectView] = {}
        #: The views used since the last :meth:`record` (switch, table, pipeline values read),
        #: and whether a tag was handed to the reference engine (which reads whole tables).
        self.used_views: set[tuple[str, int, Key]] = set()
        self.delegated = False
        self._used: dict[
            tuple[str, int], frozenset[int]
        ] = {}  # per table: the concrete fields (slots) it reads
        h = self.hs
        self._start = (h.eq("vlan_present", 1) | h.eq("vlan_vid", 0)) & h.eq("ct_state", 0)
        self._identity = _identity(h, tables)
        onehot = h.false
        for bit in (CT_NEW, CT_EST, CT_REL, CT_INV):
            onehot |= h.eq("ct_state", CT_TRK | bit, CT_TRK | CT_NEW | CT_EST | CT_REL | CT_INV)
        self._any_states = onehot
        self._new_state = h.eq("ct_state", CT_TRK | CT_NEW)  # run new's answer, a new connection's
        self._counts = {"waves": 0, "table visits": 0, "views": 0, "delegated": 0}

    def ingresses(self) -> list[SwitchPort]:
        return list(self._ports)

    def findings(self) -> list[Finding]:
        return [f for sw in self._index for f in self._findings_by.get(sw, [])]

    def record(self) -> None:
        """Start recording the views a run uses (:attr:`used_views`, :attr:`delegated`)."""
        self.used_views = set()
        self.delegated = False

    def _index_switch(self, switch: str, flows: Sequence[Flow]) -> None:
        found: list[Finding] = []
        self._index[switch] = index_tables(self.hs, switch, flows, found)
        self._findings_by[switch] = found
        self._nat_parts[switch] = NatModel.of_switch(switch, flows)
        per: dict[int, list[Flow]] = {}
        for f in flows:
            per.setdefault(f.table, []).append(f)
        self._flows[switch] = {t: tuple(fs) for t, fs in per.items()}

    def fits(self, tables: Mapping[str, Sequence[Flow]]) -> bool:
        """Whether :meth:`update` can take ``tables``: the manager tracks the origin of every
        field they write, the ghost identity injected packets get is the same, and so is what
        conntrack NAT may have translated each zone's connections with (the walk, not the
        cached views, applies it)."""
        if not (self.hs.tracks(tables) and _identity(self.hs, tables) == self._identity):
            return False
        parts = {**self._nat_parts, **{sw: NatModel.of_switch(sw, flows) for sw, flows in tables.items()}}
        return NatModel.merge(parts.values()) == self._nat

    def update(self, tables: Mapping[str, Sequence[Flow]]) -> set[tuple[str, int, Key]]:
        """Take new flow tables for the same switches: re-index the switches whose flows
        changed and return the views (cached ones) that would now differ; they are dropped
        from the cache. A view is unchanged when the rules it is made of (those the pipeline
        values let through, with their priorities, matches and actions; lines do not count)
        are the same, in order."""
        changed: set[tuple[str, int, Key]] = set()
        for sw, flows in tables.items():
            per: dict[int, list[Flow]] = {}
            for f in flows:
                per.setdefault(f.table, []).append(f)
            new = {t: tuple(fs) for t, fs in per.items()}
            old = self._flows.get(sw, {})
            if new == old and all(a.line == b.line for t in new for a, b in zip(new[t], old[t], strict=True)):
                continue
            old_index = self._index.get(sw, {})
            self._index_switch(sw, flows)
            tables_changed = {t for t in new.keys() | old.keys() if new.get(t) != old.get(t)}
            reread = set()  # tables now reading other pipeline fields: their view keys mean other things
            for number in tables_changed:
                before = self._used.pop((sw, number), None)
                after = _fields_read(self._index[sw][number]) if number in self._index[sw] else frozenset()
                if before is not None and before != after:
                    reread.add(number)
            for key in [k for k in self._views if k[0] == sw]:
                _, number, view_key = key
                if number not in tables_changed:
                    continue
                if number in reread or _signature(old_index.get(number), view_key) != _signature(
                    self._index[sw].get(number), view_key
                ):
                    changed.add(key)
                    del self._views[key]
        self._nat = NatModel.merge(self._nat_parts.values())
        return changed

    def work(self) -> dict[str, int]:
        return dict(self._counts)

    # ------------------------------------------------------------------ runs

    def run(self, mode: str, ingresses: Sequence[SwitchPort] | None = None) -> RunView:
        any_view, new_view = self.runs(ingresses)
        if mode == "any":
            return any_view
        if mode == "new":
            return new_view
        raise ValueError(f"unknown run {mode!r}")

    def runs(self, ingresses: Sequence[SwitchPort] | None = None) -> tuple[RunView, RunView]:
        """Runs ``any`` and ``new`` in one walk. The ``ct()`` lookups answer as in run any,
        and every packet carries :data:`ALL_NEW`, 1 until a lookup on its path says anything
        but ``+trk+new``: the packets with it set are exactly run new's (every table sees the
        same headers and ``ct_state`` as there), so run new is read off run any's relations
        instead of walked again."""
        hs = self.hs
        chosen = set(self._ports if ingresses is None else ingresses)
        injections: list[tuple[int, SwitchPort, ReplyRequest | None]] = [
            (i, port, None) for i, port in enumerate(self._ports) if port[0] in self._index and port in chosen
        ]
        states = self._any_states
        exits = frozenset(self.topology.uplinks.values())
        walk = _Walk(lambda _zone: states, _Fold(hs, natted=False, exits=exits), history=True)
        self._walk(walk, injections)
        new_fold = walk.fold.split(hs.eq(ALL_NEW, 1), natted=True)
        any_fold = walk.fold
        if walk.delegated:
            chosen_tags = {t: (self._ports[t], None) for t in walk.delegated}
            self._delegate(replace(walk, fold=any_fold), chosen_tags, lambda _t: states)
            self._delegate(replace(walk, fold=new_fold), chosen_tags, lambda _t: self._new_state)
        return any_fold.view(), new_fold.view()

    def replies(self, requests: Sequence[ReplyRequest]) -> RunView:
        hs = self.hs
        zones: dict[int, list[int]] = {}
        for r, req in enumerate(requests):
            for z in req.zones:
                zones.setdefault(z, []).append(r)
        in_zone = {z: hs.tag_set(tags) for z, tags in zones.items()}
        est, new = hs.eq("ct_state", CT_TRK | CT_EST | CT_RPL), self._new_state

        def fresh(zone: int) -> BDD:
            tags = in_zone.get(zone)
            return new if tags is None else (tags & est) | (~tags & new)

        injections = [
            (r, req.ingress, req) for r, req in enumerate(requests) if req.ingress[0] in self._index
        ]
        walk = _Walk(fresh, _Fold(hs, natted=False, exits=frozenset(self.topology.uplinks.values())))
        self._walk(walk, injections)
        if walk.delegated:
            chosen = {t: (requests[t].ingress, requests[t].space) for t in walk.delegated}
            self._delegate(walk, chosen, lambda t: reply_states(hs, requests[t].zones))
        return walk.fold.view()

    def _walk(self, walk: _Walk, injections: Sequence[tuple[int, SwitchPort, ReplyRequest | None]]) -> None:
        """Every injection (``None``: every packet) at its switch, then wave after wave the
        packets each switch sent to its peers, until none is left."""
        hs = self.hs
        by_switch: dict[str, dict[int, list[tuple[int, ReplyRequest | None]]]] = {}
        for tag, (switch, port), req in injections:
            by_switch.setdefault(switch, {}).setdefault(port, []).append((tag, req))
        for switch, ports in sorted(by_switch.items()):
            parts = []
            requests: list[tuple[int, ReplyRequest]] = []
            for port, items in sorted(ports.items()):
                plain = [t for t, r in items if r is None]
                if plain:
                    parts.append(hs.eq("in_port", port) & hs.tag_set(plain))
                requests += [(t, r) for t, r in items if r is not None]
            # one union per switch: a group's shared destinations are ANDed once, not per replier
            parts.append(requests_union(hs, requests, at_ingress=True))
            space = hs.union(parts) & self._start & self._identity
            if walk.history:
                space &= hs.eq(ALL_NEW, 1)
            walk.waiting.setdefault(switch, {})[(0, _SYMBOLIC_KEY)] = _Pending(space, {})
        while walk.waiting:
            self._counts["waves"] += 1
            wave, walk.waiting = walk.waiting, {}
            for switch, pending in sorted(wave.items()):
                self._switch(walk, switch, pending)

    def _switch(self, walk: _Walk, switch: str, pending: dict[_Slot, _Pending]) -> None:
        """One switch's share of a wave: its tables in ascending order, each (table, pipeline
        values) once with everything that reached it (goto only goes forward; a ``ct()`` that
        recirculates to this table or an earlier one hands its tags to the reference)."""
        hs = self.hs
        for item in pending.values():  # what arrived: tags back at a switch they were at are loop candidates
            tags = hs.tag_part(item.space)
            been = item.visited.get(switch)
            if been is not None:
                again = tags & been
                if not hs.is_empty(again):
                    item.space &= ~self._give_up(walk, again)
                    tags &= ~again
            # the tags that entered: what the switch's later tables see is a part of them
            item.visited = {**item.visited, switch: tags if been is None else been | tags}
        heap = list(pending)
        heapq.heapify(heap)
        done: set[_Slot] = set()
        while heap:
            table, key = heapq.heappop(heap)
            if (table, key) in done:
                continue
            done.add((table, key))
            item = pending[(table, key)]
            if hs.is_empty(item.space):
                continue
            visited = item.visited  # never changed in place: a merge replaces its entries

            def goto(
                next_table: int,
                next_key: Key,
                space: BDD,
                table: int = table,
                key: Key = key,
                visited: dict[str, BDD] = visited,
            ) -> None:
                backwards = next_table < table or (next_table == table and next_key == key)
                if backwards or (next_table, next_key) in done:
                    space &= ~self._give_up(walk, hs.tag_part(space))  # a loop candidate
                    if hs.is_empty(space):
                        return
                slot = pending.get((next_table, next_key))
                if slot is None:
                    pending[(next_table, next_key)] = _Pending(space, visited)
                    heapq.heappush(heap, (next_table, next_key))
                else:
                    slot.merge(space, visited)

            self._table(walk, switch, table, key, item.space, visited, goto)

    def _give_up(self, walk: _Walk, tags: BDD) -> BDD:
        """Hand ``tags`` (a space over the tag) to the reference engine; return them."""
        self.delegated = True
        found = self.hs.tags(tags)
        walk.delegated.update(found)
        self._counts["delegated"] += len(found)
        return self.hs.tag_set(found)

    def _delegate(
        self,
        walk: _Walk,
        chosen: Mapping[int, tuple[SwitchPort, BDD | None]],
        states: Callable[[int], BDD],
    ) -> None:
        """Replace the views of the ``chosen`` tags by the reference engine's, run in this
        manager over the same indexed tables (``states``: a tag's ``ct()`` answers)."""
        walk.fold.restrict(~self.hs.tag_set(chosen))
        for tag, (port, space) in sorted(chosen.items()):
            engine = Engine(
                {}, self.topology, hs=self.hs, index=self._index, ct_states=states(tag), nat=self._nat
            )
            engine.commits = []
            walk.fold.add(tag, engine.inject(port[0], port[1], space), engine.commits)

    # ------------------------------------------------------------------ tables

    def _view(self, switch: str, table: Table, number: int, key: Key) -> EffectView:
        """The effect view, cached under the pipeline values the table's rules read (a table
        that matches only metadata has one view per metadata value)."""
        used = self._used.get((switch, number))
        if used is None:
            used = self._used[(switch, number)] = _fields_read(table)
        key = tuple(v if i in used or (i == 0 and v == SYMBOLIC_PORT) else 0 for i, v in enumerate(key))
        self.used_views.add((switch, number, key))
        view = self._views.get((switch, number, key))
        if view is None:
            view = self._views[(switch, number, key)] = effect_view(self.hs, table, key)
            self._counts["views"] += 1
        return view

    def _table(
        self, walk: _Walk, switch: str, table: int, key: Key, space: BDD, visited: dict[str, BDD], goto: _Goto
    ) -> None:
        hs = self.hs
        self._counts["table visits"] += 1
        tab = self._index.get(switch, {}).get(table)
        if tab is None:
            walk.fold.hole(Disposition(MISS, switch, table), space)
            return
        view = self._view(switch, tab, table, key)
        for effect in view.candidates(hs, space):
            # one AND, tested for emptiness: a separate disjointness test costs as much (dd's
            # ``<=`` builds ``b | ~a``) and the AND was then built again for every effect taken
            taken = space & effect.region
            if hs.is_empty(taken):
                continue
            self._steps(walk, _At(switch, table, key, visited), taken, effect, goto)
        if view.miss is not None:
            missed = space & view.miss
            if not hs.is_empty(missed):
                walk.fold.hole(Disposition(MISS, switch, table), missed)

    def _steps(self, walk: _Walk, at: _At, space: BDD, effect: Effect, goto: _Goto) -> None:
        """Apply one effect's actions, in order (``at``: where, and what the path carries)."""
        hs = self.hs
        switch, table, key = at.switch, at.table, at.key
        param = effect.param
        punts = punts_to_controller(effect.steps)
        for i, action in enumerate(effect.steps):
            if hs.is_empty(space):
                return
            if param is not None and i == param.index:
                assert isinstance(action, SetFields)
                written = {hs.canonical(n): v for n, v in action.writes}
                fixed = [(n, v) for n, v in written.items() if n not in param.varying]
                space = hs.set_fields(hs.forget(space, param.varying) & param.relation, fixed)
                continue
            match action:
                case Output(port=port):
                    self._output(walk, replace(at, key=key), port, space)
                case Controller() if punts:
                    walk.fold.hole(Disposition(CONTROLLER, switch, table), space)
                case Controller():
                    pass  # a copy (a logged decision): the packet goes on with the other actions
                case Drop():
                    pass
                case GotoTable(table=t):
                    goto(t, key, space)
                case WriteMetadata(value=v, mask=m):
                    meta = (key[METADATA_SLOT] & ~m) | (v & m)
                    if m >> FIELDS["metadata"] or meta >> FIELDS["metadata"]:
                        return
                    key = with_value(key, METADATA_SLOT, meta)
                case SetField(field="vlan_vid", value=v):
                    tagged = hs.eq("vlan_present", 1)
                    space = hs.set_field(space & tagged, "vlan_vid", v) | (space & ~tagged)
                case SetField(field="in_port", value=v):
                    space = hs.set_field(space, "in_port", v)  # in_port is in the space here
                case SetField(field=name, value=v) if name in SLOT:
                    if v >> FIELDS[name]:
                        return
                    key = with_value(key, SLOT[name], v)
                case SetFields(writes=writes):
                    space = hs.set_fields(space, writes)
                case DecTtl():
                    space, _expired = hs.dec_ttl(space)
                case PushVlan():
                    tagged = space & hs.eq("vlan_present", 1)
                    if not hs.is_empty(tagged):
                        detail = "push_vlan on a tagged packet"
                        walk.fold.hole(Disposition(UNSUPPORTED, switch, table, detail=detail), tagged)
                    untagged = space & hs.eq("vlan_present", 0)
                    space = hs.set_fields(untagged, (("vlan_present", 1), ("vlan_vid", 0)))
                case PopVlan():
                    tagged = hs.eq("vlan_present", 1)
                    popped = hs.set_fields(space & tagged, (("vlan_present", 0), ("vlan_vid", 0)))
                    space = popped | (space & ~tagged)
                case Ct(commit=commit, zone=zone, table=ct_table) as ct:
                    if commit:
                        walk.fold.commit((switch, table, zone), space)
                    if ct_table is not None:
                        tracked = hs.forget(space, ["ct_state"]) & walk.fresh(zone)
                        if walk.history:  # ALL_NEW stays 1 only where this lookup says new
                            said_new = self._new_state
                            tracked = (tracked & said_new) | hs.set_field(tracked & ~said_new, ALL_NEW, 0)
                        tracked = translate(hs, tracked, ct, self._nat)
                        goto(ct_table, with_value(key, CT_ZONE_SLOT, zone), tracked)
                case Meter() | Conjunction():
                    pass

    def _output(self, walk: _Walk, at: _At, port: int, space: BDD) -> None:
        hs = self.hs
        if at.key[0] != SYMBOLIC_PORT:  # in_port is the key's
            if port == IN_PORT:
                port = at.key[0]
            elif port == at.key[0]:
                return  # OVS drops an output to the ingress port without IN_PORT
            self._leave(walk, at, port, space)
            return
        if port == IN_PORT:  # in_port is in the space: each tag's own port
            for p in hs.values(space, "in_port", 1 << 16) or ():
                self._leave(walk, at, p, space & hs.eq("in_port", p))
            return
        self._leave(walk, at, port, space & ~hs.eq("in_port", port))

    def _leave(self, walk: _Walk, at: _At, port: int, space: BDD) -> None:
        hs = self.hs
        if hs.is_empty(space):
            return
        switch, table = at.switch, at.table
        peer = self.topology.links.get((switch, port))
        endpoint = self.topology.edges.get((switch, port))
        if peer is not None:
            if peer[1] >> FIELDS["in_port"]:
                return  # an in_port the model cannot hold
            dropped = ["in_port", "ct_state"] if at.key[0] == SYMBOLIC_PORT else ["ct_state"]
            entered = hs.forget(space, dropped) & hs.eq("ct_state", 0)
            arrival = (0, entry_key(peer[1]))
            slot = walk.waiting.setdefault(peer[0], {}).get(arrival)
            if slot is None:
                walk.waiting[peer[0]][arrival] = _Pending(entered, dict(at.visited))
            else:
                slot.merge(entered, at.visited)
        elif endpoint is not None:
            walk.fold.deliver(endpoint, space)
        else:
            detail = "port is neither a fabric link nor an endpoint"
            walk.fold.hole(Disposition(UNCONNECTED, switch, table, port, detail=detail), space)
