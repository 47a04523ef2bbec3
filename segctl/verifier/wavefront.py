"""The scalable engine: every ingress at once, tables as functions, switches in waves.

The reference engine (:mod:`segctl.verifier.reference`) walks the tables once per edge
port and splits every space rule by rule, so its cost grows with (ingress, destination,
rule) triples. This engine computes the same views (:mod:`segctl.verifier.observe`) with
three changes:

* **All ingresses together.** Every packet carries a *tag*, the number of its injection
  (a BDD field no rule reads and no action writes), so the packets of all the edge ports of
  a switch start as one space, and one table visit serves them all. At the ingress switch
  ``in_port`` is each tag's own port (:class:`~segctl.verifier.effects.PortTags`).
* **Tables as functions.** A visit is one AND per distinct action list of the table
  (:func:`~segctl.verifier.effects.effect_view`), not one per rule.
* **Waves.** What a switch sends on a fabric link arrives at the peer in the next wave;
  arrivals at the same (switch, port) in one wave are one space. Packets of different
  ingresses and destinations thus share the fabric's tables.

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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

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
)
from segctl.topology.network import Network
from segctl.verifier.effects import SYMBOLIC_PORT, EffectView, PortTags, Steps, effect_view
from segctl.verifier.headerspace import (
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
from segctl.verifier.observe import ReplyRequest, RunView, reply_states
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

SwitchPort = tuple[str, int]
#: Variable order, top first: pipeline, forwarding-relevant headers, then the source's identity.
WAVEFRONT_ORDER: tuple[str, ...] = (
    "in_port", "metadata", *(f"reg{i}" for i in range(8)), "ct_state", "ct_zone",
    "eth_dst", "eth_type", "vlan_present", "vlan_vid", "ip_proto", "ip_dst", "nw_ttl", "tp_src", "tp_dst",
    "icmp_type", "icmp_code", "arp_op", "arp_tha", "ipv6_dst", "nd_target", "nd_sll",
    "tag", "eth_src", "ip_src", "arp_sha", "ipv6_src",
)  # fmt: skip
_SYMBOLIC_KEY: Key = (SYMBOLIC_PORT, *(0,) * (len(entry_key(0)) - 1))


@dataclass
class _Walk:
    """One run in progress: what a ``ct()`` lookup returns, the views gathered, the tags
    handed to the reference engine, the arrivals of the next wave."""

    fresh: Callable[[int], BDD]  # zone -> ct_state space
    fold: _Fold
    delegated: set[int] = field(default_factory=set)
    arrivals: dict[SwitchPort, tuple[BDD, dict[str, BDD]]] = field(default_factory=dict)
    visits: int = 0


class WavefrontEngine:
    """The scalable engine behind the :class:`~segctl.verifier.observe.Engine` interface."""

    name = "wavefront"

    def __init__(
        self, network: Network, tables: Mapping[str, Sequence[Flow]], *, hs: HeaderSpace | None = None
    ) -> None:
        self.hs = hs or HeaderSpace(WAVEFRONT_ORDER)
        self.topology = Topology.from_network(network)
        self._findings: list[Finding] = []
        self._index: dict[str, dict[int, Table]] = {
            sw: index_tables(self.hs, sw, flows, self._findings) for sw, flows in tables.items()
        }
        self._ports = sorted(self.topology.edges)
        self._views: dict[tuple[str, int, Key], EffectView] = {}
        self._port_tags: dict[str, PortTags] = {}
        h = self.hs
        self._start = (h.eq("vlan_present", 1) | h.eq("vlan_vid", 0)) & h.eq("ct_state", 0) & h.identity()
        onehot = h.false
        for bit in (CT_NEW, CT_EST, CT_REL, CT_INV):
            onehot |= h.eq("ct_state", CT_TRK | bit, CT_TRK | CT_NEW | CT_EST | CT_REL | CT_INV)
        self._any_states = onehot
        self._counts = {"waves": 0, "table visits": 0, "views": 0, "delegated": 0}

    def ingresses(self) -> list[SwitchPort]:
        return list(self._ports)

    def findings(self) -> list[Finding]:
        return list(self._findings)

    def work(self) -> dict[str, int]:
        return dict(self._counts)

    # ------------------------------------------------------------------ runs

    def run(self, mode: str) -> RunView:
        hs = self.hs
        if mode == "any":
            states = self._any_states
        elif mode == "new":
            states = hs.eq("ct_state", CT_TRK | CT_NEW)
        else:
            raise ValueError(f"unknown run {mode!r}")
        injections = [(i, port, None) for i, port in enumerate(self._ports) if port[0] in self._index]
        walk = _Walk(lambda _zone: states, _Fold(hs, natted=mode == "new"))
        self._walk(walk, injections)
        if walk.delegated:
            self._delegate(walk, {t: (self._ports[t], None) for t in walk.delegated}, lambda _t: states)
        return walk.fold.view()

    def replies(self, requests: Sequence[ReplyRequest]) -> RunView:
        hs = self.hs
        zones: dict[int, list[int]] = {}
        for r, req in enumerate(requests):
            for z in req.zones:
                zones.setdefault(z, []).append(r)
        in_zone = {z: hs.tag_set(tags) for z, tags in zones.items()}
        est, new = hs.eq("ct_state", CT_TRK | CT_EST | CT_RPL), hs.eq("ct_state", CT_TRK | CT_NEW)

        def fresh(zone: int) -> BDD:
            tags = in_zone.get(zone)
            return new if tags is None else (tags & est) | (~tags & new)

        injections = [(r, req.ingress, req.space) for r, req in enumerate(requests) if req.ingress[0] in self._index]
        walk = _Walk(fresh, _Fold(hs, natted=False))
        self._walk(walk, injections)
        if walk.delegated:
            chosen = {t: (requests[t].ingress, requests[t].space) for t in walk.delegated}
            self._delegate(walk, chosen, lambda t: reply_states(hs, requests[t].zones))
        return walk.fold.view()

    def _walk(self, walk: _Walk, injections: Sequence[tuple[int, SwitchPort, BDD | None]]) -> None:
        """Every injection, switch by switch, then the arrivals wave by wave."""
        hs = self.hs
        by_switch: dict[str, dict[int, list[tuple[int, BDD | None]]]] = {}
        for tag, (switch, port), space in injections:
            by_switch.setdefault(switch, {}).setdefault(port, []).append((tag, space))
        for switch in sorted(by_switch):
            ports = by_switch[switch]
            port_of = {t: p for p, items in ports.items() for t, _ in items}
            tags = PortTags(hs, {p: hs.tag_set(t for t, _ in items) for p, items in ports.items()}, port_of)
            parts = []
            for items in ports.values():
                plain = [t for t, s in items if s is None]
                if plain:
                    parts.append(hs.tag_set(plain))
                parts += [hs.tag(t) & s for t, s in items if s is not None]
            space = hs.union(parts) & self._start
            self._table(walk, switch, 0, _SYMBOLIC_KEY, space, (), {switch: hs.tag_part(space)}, tags)
        while walk.arrivals:
            self._counts["waves"] += 1
            wave, walk.arrivals = walk.arrivals, {}
            for (switch, port), (space, visited) in sorted(wave.items(), key=lambda kv: kv[0]):
                been = visited.get(switch)
                if been is not None:
                    again = hs.tag_part(space) & been
                    if not hs.is_empty(again):
                        space &= ~self._give_up(walk, again)
                        if hs.is_empty(space):
                            continue
                seen = dict(visited)
                seen[switch] = hs.tag_part(space) if been is None else been | hs.tag_part(space)
                self._table(walk, switch, 0, entry_key(port), space, (), seen, None)

    def _give_up(self, walk: _Walk, tags: BDD) -> BDD:
        """Hand ``tags`` (a space over the tag) to the reference engine; return them."""
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
            engine = Engine({}, self.topology, hs=self.hs, index=self._index, ct_states=states(tag))
            engine.commits = []
            walk.fold.add(tag, engine.inject(port[0], port[1], space), engine.commits)

    # ------------------------------------------------------------------ tables

    def _view(self, switch: str, table: Table, number: int, key: Key, ports: PortTags | None) -> EffectView:
        """The effect view (cached: by the engine for concrete keys, by ``ports`` for the
        ingress switch's symbolic ones, whose in_port follows that run's tags)."""
        cache = self._views if ports is None else ports.views
        view = cache.get((switch, number, key))
        if view is None:
            view = cache[(switch, number, key)] = effect_view(self.hs, table, key, ports)
            self._counts["views"] += 1
        return view

    def _table(
        self,
        walk: _Walk,
        switch: str,
        table: int,
        key: Key,
        space: BDD,
        trail: tuple[tuple[int, Key], ...],
        visited: dict[str, BDD],
        ports: PortTags | None,
    ) -> None:
        hs = self.hs
        if (table, key) in trail:
            self._give_up(walk, hs.tag_part(space))
            return
        self._counts["table visits"] += 1
        tab = self._index.get(switch, {}).get(table)
        if tab is None:
            walk.fold.hole(Disposition(MISS, switch, table), space)
            return
        view = self._view(switch, tab, table, key, ports)
        trail = (*trail, (table, key))
        for steps, region in view.effects:
            if hs.disjoint(space, region):
                continue
            self._steps(walk, switch, table, key, space & region, steps, trail, visited, ports)
        if view.miss is not None:
            missed = space & view.miss
            if not hs.is_empty(missed):
                walk.fold.hole(Disposition(MISS, switch, table), missed)

    def _steps(
        self,
        walk: _Walk,
        switch: str,
        table: int,
        key: Key,
        space: BDD,
        steps: Steps,
        trail: tuple[tuple[int, Key], ...],
        visited: dict[str, BDD],
        ports: PortTags | None,
    ) -> None:
        hs = self.hs
        for action in steps:
            if hs.is_empty(space):
                return
            match action:
                case Output(port=port):
                    self._output(walk, switch, table, key, port, space, visited, ports)
                case Controller():
                    walk.fold.hole(Disposition(CONTROLLER, switch, table), space)
                case Drop():
                    pass
                case GotoTable(table=t):
                    self._table(walk, switch, t, key, space, trail, visited, ports)
                case WriteMetadata(value=v, mask=m):
                    meta = (key[METADATA_SLOT] & ~m) | (v & m)
                    if m >> FIELDS["metadata"] or meta >> FIELDS["metadata"]:
                        return
                    key = with_value(key, METADATA_SLOT, meta)
                case SetField(field="vlan_vid", value=v):
                    tagged = hs.eq("vlan_present", 1)
                    space = hs.set_field(space & tagged, "vlan_vid", v) | (space & ~tagged)
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
                    space = hs.set_fields(space & hs.eq("vlan_present", 0), (("vlan_present", 1), ("vlan_vid", 0)))
                case PopVlan():
                    tagged = hs.eq("vlan_present", 1)
                    popped = hs.set_fields(space & tagged, (("vlan_present", 0), ("vlan_vid", 0)))
                    space = popped | (space & ~tagged)
                case Ct(commit=commit, zone=zone, table=ct_table):
                    if commit:
                        walk.fold.commit((switch, table, zone), space)
                    if ct_table is not None:
                        zoned = with_value(key, CT_ZONE_SLOT, zone)
                        tracked = hs.forget(space, ["ct_state"]) & walk.fresh(zone)
                        self._table(walk, switch, ct_table, zoned, tracked, trail, visited, ports)
                case Meter() | Conjunction():
                    pass

    def _output(
        self,
        walk: _Walk,
        switch: str,
        table: int,
        key: Key,
        port: int,
        space: BDD,
        visited: dict[str, BDD],
        ports: PortTags | None,
    ) -> None:
        hs = self.hs
        if ports is not None:  # at the ingress switch: in_port is each tag's own port
            if port == IN_PORT:
                for p in sorted({ports.port_of[t] for t in hs.tags(space)}):
                    self._leave(walk, switch, table, p, space & ports.at(p), visited)
                return
            space &= ~ports.at(port)  # OVS drops an output to the ingress port
            if hs.is_empty(space):
                return
        elif port == IN_PORT:
            port = key[0]
        elif port == key[0]:
            return  # dropped: output to the ingress port needs IN_PORT
        self._leave(walk, switch, table, port, space, visited)

    def _leave(self, walk: _Walk, switch: str, table: int, port: int, space: BDD, visited: dict[str, BDD]) -> None:
        hs = self.hs
        peer = self.topology.links.get((switch, port))
        endpoint = self.topology.edges.get((switch, port))
        if peer is not None:
            if hs.is_empty(hs.pipeline_values(entry_key(peer[1]))):
                return  # an in_port the model cannot hold
            entered = hs.forget(space, ["ct_state"]) & hs.eq("ct_state", 0)
            old = walk.arrivals.get(peer)
            if old is None:
                walk.arrivals[peer] = (entered, dict(visited))
            else:
                merged = dict(old[1])
                for sw, tags in visited.items():
                    merged[sw] = merged[sw] | tags if sw in merged else tags
                walk.arrivals[peer] = (old[0] | entered, merged)
        elif endpoint is not None:
            walk.fold.deliver(endpoint, space)
        else:
            detail = "port is neither a fabric link nor an endpoint"
            walk.fold.hole(Disposition(UNCONNECTED, switch, table, port, detail=detail), space)

