"""Symbolic reachability: header spaces pushed through every switch's flow tables.

Input: parsed flow tables per switch (``{switch: [Flow, ...]}``, from
:mod:`segctl.openflow.ofctl`) and a :class:`Topology` (fabric links and edge ports, taken
from the resolved :class:`~segctl.topology.network.Network`, never from the compiler).
Output: for every injection point (switch, edge port) the list of :class:`Outcome`: a
header-space relation (ghost = the packet as injected, live = the packet at the end; see
:mod:`segctl.verifier.headerspace`), a :class:`Disposition`, and the :class:`Hop` trace.
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
  same (switch, table) earlier on the same path with the same pipeline values.

Representation: ``in_port``, ``metadata``, ``reg0``–``reg7`` and ``ct_zone`` are only ever
written with constants, so on one path they are concrete. The engine keeps them as a tuple
(the path's key) next to a BDD over the other fields (``ct_state`` stays symbolic), looks
rules up through their cofactor by the key, and conjoins the key back on every outcome
and commit: the relations reported are the same BDDs as with those fields in the space.

Examples
--------
>>> from segctl.openflow.ofctl import parse_flows
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
from functools import cached_property
from typing import TYPE_CHECKING

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
from segctl.verifier.headerspace import (
    BDD,
    CT_EST,
    CT_INV,
    CT_NEW,
    CT_REL,
    CT_TRK,
    FIELDS,
    HeaderSpace,
)
from segctl.verifier.nat import NatModel, translate
from segctl.verifier.symtables import (
    CT_ZONE_SLOT,
    METADATA_SLOT,
    SLOT,
    Finding,
    Hop,
    Key,
    Rule,
    SetFields,
    Table,
    View,
    entry_key,
    index_tables,
    with_value,
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
    "ViewKey",
    "compute_reachability",
    "standby_name",
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
#: A table as one path saw it: (switch, table, the path's key, the VLAN TCI the view narrowed by).
ViewKey = tuple[str, int, Key, int | None]


@dataclass(frozen=True)
class Topology:
    """Fabric links (both directions) and edge ports (bound endpoint, ``tenant/name``)."""

    links: Mapping[SwitchPort, SwitchPort]
    edges: Mapping[SwitchPort, str]
    #: The active uplinks of external networks (also in ``edges``, named ``external:NAME``):
    #: packets leave the fabric there, and the outside's packets come in.
    uplinks: Mapping[SwitchPort, str] = field(default_factory=dict)
    #: The standby uplinks (also in ``edges``, named by :func:`standby_name`): the outside may
    #: send anything there too, and the fabric must neither admit nor send anything there.
    standby: Mapping[SwitchPort, str] = field(default_factory=dict)

    @classmethod
    def from_network(cls, network: Network) -> Topology:
        links: dict[SwitchPort, SwitchPort] = {}
        for a, a_port, b, b_port in network.links:
            links[(a, a_port)] = (b, b_port)
            links[(b, b_port)] = (a, a_port)
        edges = {(ep.switch, ep.port): ep.qualified for ep in network.endpoints}
        uplinks = {(x.switch, x.port): x.qualified for x in network.externals}
        taken = edges.keys() | uplinks.keys()
        standby = {p: standby_name(x.name, p) for x in network.externals for p in x.standby if p not in taken}
        return cls(links=links, edges={**edges, **uplinks, **standby}, uplinks=uplinks, standby=standby)

    def ingress_ports(self) -> list[SwitchPort]:
        """Every injected port: the endpoints' in sorted order, then the active uplinks', then
        the standby uplinks' (so an endpoint's tag, and an active uplink's, is the same with or
        without external networks or standby ports)."""
        outside = self.uplinks.keys() | self.standby.keys()
        return sorted(p for p in self.edges if p not in outside) + sorted(self.uplinks) + sorted(self.standby)


def standby_name(external: str, port: SwitchPort) -> str:
    """What a standby uplink is called where an endpoint's ``tenant/name`` would stand
    (deliveries, reports): ``standby:NAME@SWITCH:PORT`` (``external:NAME`` is the active one)."""
    return f"standby:{external}@{port[0]}:{port[1]}"


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
    """A header-space relation (ghost = injected, live = final) and its fate.

    ``relation`` leaves out the pipeline fields the path fixed (in_port, metadata, registers,
    ct_zone; ``pipeline`` is their space): enough for :meth:`HeaderSpace.origin`, and cheaper.
    ``space`` is the whole relation, built on first use.
    """

    ingress: SwitchPort
    relation: BDD = field(compare=False)
    disposition: Disposition
    hops: tuple[Hop, ...]
    pipeline: BDD | None = field(default=None, compare=False, repr=False)

    @cached_property
    def space(self) -> BDD:
        return self.relation if self.pipeline is None else self.relation & self.pipeline


@dataclass(frozen=True)
class CommitEvent:
    """A ``ct(commit)`` met on a path: the packets (relation) committed in ``zone``.

    ``relation``, ``pipeline`` and ``space`` as in :class:`Outcome`.
    """

    ingress: SwitchPort
    switch: str
    table: int
    zone: int
    relation: BDD = field(compare=False)
    hops: tuple[Hop, ...]
    pipeline: BDD | None = field(default=None, compare=False, repr=False)

    @cached_property
    def space(self) -> BDD:
        return self.relation if self.pipeline is None else self.relation & self.pipeline


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


# ---------------------------------------------------------------------------- engine


@dataclass
class _Path:
    ingress: SwitchPort
    in_port: int
    hops: tuple[Hop, ...]
    visited: tuple[tuple[str, int, Key, BDD], ...]
    # The concrete pipeline fields (in_port, metadata, registers, ct_zone): zero but in_port
    # when a switch is entered, then only written with constants (write_metadata, set_field,
    # ct(zone=…)). The path's space leaves them out; they are conjoined back on what is reported.
    key: Key
    # The VLAN TCI (present bit | VID) every packet has, as push/pop_vlan and set_field:vlan_vid
    # fix it; None when not known. It only narrows a table visit, after a check on the space.
    tci: int | None = None


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
        index: Mapping[str, Mapping[int, Table]] | None = None,
        record_spaces: bool = False,
        nat: NatModel | None = None,
    ) -> None:
        """``ct_states`` (a BDD over ``ct_state``) narrows what a ``ct(table=…)`` may return;
        the default is ``+trk`` with exactly one of ``new``/``est``/``rel``/``inv``. ``index``:
        the tables already indexed (:func:`index_tables` over ``hs``, one entry per switch of
        ``tables``); their findings are then the caller's. ``record_spaces``: :attr:`visits`
        also keeps the union of the spaces that entered each view (an OR per repeated visit;
        :mod:`segctl.verifier.incremental` uses it to tell which changed rules a path can meet)."""
        self.hs = hs or HeaderSpace.for_tables(tables)
        if not self.hs.tracks(tables):
            raise ValueError("the header space does not track every field the tables write")
        self.topology = topology
        self.findings: list[Finding] = []
        if index is None:
            index = {sw: index_tables(self.hs, sw, flows, self.findings) for sw, flows in tables.items()}
        self._tables = index
        #: What conntrack NAT may translate (``nat``: the caller's, for tables it indexed).
        self._nat = NatModel.for_tables(tables) if nat is None else nat
        #: Every table view the last :meth:`inject` visited and (``record_spaces``) the union of
        #: the spaces that entered it: its outcomes depend on these views' rules meeting them.
        self.visits: dict[ViewKey, BDD | None] = {}
        self._record_spaces = record_spaces
        self._max_steps = max_steps
        self._steps = 0
        h = self.hs
        onehot = h.false
        for bit in (CT_NEW, CT_EST, CT_REL, CT_INV):
            onehot |= h.eq("ct_state", CT_TRK | bit, CT_TRK | CT_NEW | CT_EST | CT_REL | CT_INV)
        self._fresh_ct = onehot if ct_states is None else ct_states
        self.commits: list[CommitEvent] = []
        self._fresh_by_key: dict[Key, BDD] = {}

    def with_ct_states(self, ct_states: BDD) -> Engine:
        """An engine over the same indexed tables (rule BDDs, findings) with other ``ct_states``.

        Indexing builds every rule's BDD and checks every priority level for overlaps; the
        verifier's runs differ only in what a ``ct()`` lookup returns, so they share it.
        """
        other = copy.copy(self)  # shallow: hs, topology, findings and the index are shared
        other._steps = 0
        other._fresh_ct = ct_states
        other._fresh_by_key = {}
        other.commits = []
        other.visits = {}
        return other

    def edge_ports(self) -> list[SwitchPort]:
        """Edge ports of switches that have tables, sorted."""
        return [p for p in self.topology.ingress_ports() if p[0] in self._tables]

    def inject(self, switch: str, port: int, space: BDD | None = None) -> list[Outcome]:
        """Push ``space`` (default: every packet) in at ``switch``:``port``; return its outcomes."""
        start = self.hs.injected(port)
        if space is not None:
            start &= space
        key = entry_key(port)
        outcomes: list[Outcome] = []
        self._steps = 0
        self.visits = {}
        path = _Path((switch, port), port, (), (), key)
        self._table(switch, 0, self.hs.cofactor(start, key), path, outcomes)
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
        key = path.key
        for sw, tb, k, seen in path.visited:
            if sw == switch and tb == table and k == key:
                overlap = hs.final(space) & hs.final(seen)
                if not hs.is_empty(overlap):
                    loop = Disposition(LOOP, switch, table, detail="packet returns to this table")
                    self._emit(out, path, space & overlap, loop)
                    space &= ~overlap
        if hs.is_empty(space):
            return
        path = replace(path, visited=(*path.visited, (switch, table, key, space)))
        tables = self._tables.get(switch, {})
        tab = tables.get(table)
        remaining = space
        if tab is None:
            self._visit((switch, table, key, None), space)
        else:
            tci = path.tci
            if tci is not None and (not tab.by_vlan or not hs.implies(space, hs.tci(tci))):
                tci = None
            self._visit((switch, table, key, tci), space)
            view = tab.view(hs, key, tci)
            for hard, conj in view.levels:
                if hs.is_empty(remaining):
                    break
                for rule, rule_space in hard:
                    if not hs.disjoint(remaining, rule_space):
                        hit = remaining & rule_space
                        remaining &= ~rule_space
                        self._rule(switch, rule, hit, path, out)
                for cid, conj_space in conj:
                    if hs.disjoint(remaining, conj_space):
                        continue
                    complete = remaining & conj_space
                    remaining &= ~complete
                    self._conj_lookup(switch, table, view, cid, complete, path, out)
        if not hs.is_empty(remaining):
            miss = Hop(switch, table, -1, 0, "", "")
            self._emit(out, path, remaining, Disposition(MISS, switch, table), (*path.hops, miss))

    def _visit(self, view: ViewKey, space: BDD) -> None:
        if not self._record_spaces:
            self.visits[view] = None
            return
        seen = self.visits.get(view)
        self.visits[view] = space if seen is None else seen | space

    def _conj_lookup(
        self, switch: str, table: int, view: View, cid: int, space: BDD, path: _Path, out: list[Outcome]
    ) -> None:
        for rule, rule_space in view.rules:
            if rule.conj_id not in (None, cid):
                continue
            if not self.hs.disjoint(space, rule_space):
                hit = space & rule_space
                space &= ~rule_space
                self._rule(switch, rule, hit, path, out, note=f"conjunction {cid}")
        if not self.hs.is_empty(space):
            miss = Hop(switch, table, -1, 0, f"conj_id={cid}", "", note="no conj_id flow")
            self._emit(out, path, space, Disposition(MISS, switch, table), (*path.hops, miss))

    def _emit(
        self, out: list[Outcome], path: _Path, space: BDD, d: Disposition, hops: tuple[Hop, ...] | None = None
    ) -> None:
        pipeline = self.hs.pipeline_values(path.key)
        out.append(Outcome(path.ingress, space, d, path.hops if hops is None else hops, pipeline))

    def _fresh(self, key: Key) -> BDD:
        """What a ``ct()`` lookup returns (``ct_states``) for packets with these pipeline values."""
        fresh = self._fresh_by_key.get(key)
        if fresh is None:
            fresh = self._fresh_by_key[key] = self.hs.cofactor(self._fresh_ct, key)
        return fresh

    def _write(self, path: _Path, space: BDD, name: str, value: int) -> tuple[_Path, BDD]:
        """Write a constant into a concrete pipeline field (empty when it does not fit, as in the BDD)."""
        if value >> FIELDS[name]:
            return path, self.hs.false
        return replace(path, key=with_value(path.key, SLOT[name], value)), space

    # ------------------------------------------------------------------ actions

    def _rule(
        self, switch: str, rule: Rule, space: BDD, path: _Path, out: list[Outcome], note: str = ""
    ) -> None:
        flow = rule.flow
        path = replace(path, hops=(*path.hops, rule.hop(switch, note)))
        hs = self.hs
        table = flow.table
        forwarded = False
        punts = punts_to_controller(rule.steps)
        for action in rule.steps:
            if hs.is_empty(space):
                return
            match action:
                case Output(port=port):
                    forwarded = True
                    self._output(switch, table, port, space, path, out)
                case Controller() if punts:
                    forwarded = True
                    self._emit(out, path, space, Disposition(CONTROLLER, switch, table))
                case Controller():
                    pass  # a copy (a logged decision): the packet goes on with the other actions
                case Drop():
                    forwarded = True
                    d = Disposition(DROPPED, switch, table, detail="drop action")
                    self._emit(out, path, space, d)
                case GotoTable(table=t):
                    forwarded = True
                    self._table(switch, t, space, path, out)
                case WriteMetadata(value=v, mask=m):
                    meta = path.key[METADATA_SLOT]
                    path, space = self._write(path, space, "metadata", (meta & ~m) | (v & m))
                    if m >> FIELDS["metadata"]:
                        space = hs.false
                case SetField(field="vlan_vid", value=v):
                    tagged = hs.eq("vlan_present", 1)
                    space = hs.set_field(space & tagged, "vlan_vid", v) | (space & ~tagged)
                    if path.tci is not None and path.tci & 0x1000:
                        path = replace(path, tci=0x1000 | (v & 0xFFF))
                case SetField(field=name, value=v) if name in SLOT:
                    path, space = self._write(path, space, name, v)
                case SetFields(writes=writes):
                    space = hs.set_fields(space, writes)
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
                    space = hs.set_fields(untagged, (("vlan_present", 1), ("vlan_vid", 0)))
                    path = replace(path, tci=0x1000)
                case PopVlan():
                    tagged = hs.eq("vlan_present", 1)
                    popped = hs.set_fields(space & tagged, (("vlan_present", 0), ("vlan_vid", 0)))
                    space = popped | (space & ~tagged)
                    path = replace(path, tci=0)
                case Ct(commit=commit, zone=zone, table=ct_table) as ct:
                    if commit:
                        pipeline = hs.pipeline_values(path.key)
                        commit_event = CommitEvent(
                            path.ingress, switch, table, zone, space, path.hops, pipeline
                        )
                        self.commits.append(commit_event)
                    if ct_table is not None:
                        forwarded = True
                        key = with_value(path.key, CT_ZONE_SLOT, zone)
                        tracked = hs.forget(space, ["ct_state"]) & self._fresh(key)
                        tracked = translate(hs, tracked, ct, self._nat)
                        self._table(switch, ct_table, tracked, replace(path, key=key), out)
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
            hs = self.hs
            key = entry_key(peer[1])
            entered = hs.forget(space, ["ct_state"]) & hs.eq("ct_state", 0)
            if hs.is_empty(hs.pipeline_values(key)):
                entered = hs.false  # an in_port the model cannot hold
            self._table(peer[0], 0, entered, replace(path, in_port=peer[1], key=key), out)
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
