"""The reference engine: one symbolic walk per ingress, seen as tagged relations.

:class:`ReferenceEngine` runs the path-by-path engine of :mod:`segctl.verifier.symbolic`
from every edge port in turn (one injection per port, per reply request) and folds each
outcome's origin into the :class:`~segctl.verifier.observe.RunView` of its run, tagged
with its injection's number. It is the first engine segctl had and the yardstick of the
scalable one (:mod:`segctl.verifier.wavefront`): both must give the same views, hence the
same report. ``segctl verify --engine reference`` runs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from segctl.openflow.ofctl import Flow
from segctl.topology.network import Network
from segctl.verifier.headerspace import BDD, CT_NEW, CT_TRK, HeaderSpace
from segctl.verifier.observe import BLACK_HOLES, CommitPoint, ReplyRequest, RunView, reply_states
from segctl.verifier.spaces import ETH_IP, same_address
from segctl.verifier.symbolic import DELIVERED, CommitEvent, Disposition, Engine, Outcome, Topology
from segctl.verifier.symtables import Finding

__all__ = ["ReferenceEngine"]

SwitchPort = tuple[str, int]


class _Fold:
    """Tagged unions of the packets sent, per destination, black-hole disposition and commit
    point.

    Spaces given to :meth:`deliver`, :meth:`hole` and :meth:`commit` are relations already
    tagged (the scalable engine's); :meth:`add` tags a reference injection's outcomes."""

    def __init__(self, hs: HeaderSpace, natted: bool, exits: frozenset[str] = frozenset()) -> None:
        self.hs = hs
        self._natted = natted
        self._exits = exits  # delivery names (uplinks) whose final source the view keeps
        self._keep_ip = same_address(hs, "ip_src") & same_address(hs, "ip_dst")
        self.delivered: dict[str, list[BDD]] = {}
        self.holes: dict[Disposition, list[BDD]] = {}
        self.commits: dict[CommitPoint, list[BDD]] = {}
        self.outcomes = 0

    def deliver(self, endpoint: str, relation: BDD) -> None:
        self.delivered.setdefault(endpoint, []).append(relation)

    def hole(self, disposition: Disposition, relation: BDD) -> None:
        self.holes.setdefault(disposition, []).append(relation)

    def commit(self, point: CommitPoint, relation: BDD) -> None:
        self.commits.setdefault(point, []).append(relation)

    def add(self, tag: int, outcomes: Sequence[Outcome], commits: Sequence[CommitEvent]) -> None:
        """One reference injection's outcomes and commits, tagged ``tag``."""
        label = self.hs.tag(tag)
        self.outcomes += len(outcomes)
        for o in outcomes:
            d = o.disposition
            if d.kind == DELIVERED and d.endpoint is not None:
                self.deliver(d.endpoint, o.relation & label)
            elif d.kind in BLACK_HOLES:
                self.hole(d, o.relation & label)
        for c in commits:
            self.commit((c.switch, c.table, c.zone), c.relation & label)

    def split(self, keep: BDD, *, natted: bool) -> _Fold:
        """A new fold of what was folded so far inside ``keep``; this one keeps the same
        packets (each key's relations merged into their union, which both need)."""
        out = _Fold(self.hs, natted, self._exits)
        out.outcomes = self.outcomes
        for table, into in (
            (self.delivered, out.delivered),
            (self.holes, out.holes),
            (self.commits, out.commits),
        ):
            for key, spaces in table.items():
                whole = self.hs.union(spaces)
                table[key] = [whole]  # type: ignore[index]
                into[key] = [whole & keep]  # type: ignore[index]
        return out

    def restrict(self, keep: BDD) -> None:
        """Keep only the packets of what was folded so far inside ``keep``."""
        for table in (self.delivered, self.holes, self.commits):
            for key, spaces in table.items():
                table[key] = [s & keep for s in spaces]  # type: ignore[index]

    def view(self) -> RunView:
        """The folded relations as the packets sent (one projection per key: it distributes
        over union)."""
        hs = self.hs
        out = RunView()
        for table, into in (
            (self.delivered, out.delivered),
            (self.holes, out.holes),
            (self.commits, out.commits),
        ):
            for key, relations in table.items():
                origin = hs.sent(hs.union(relations))
                if not hs.is_empty(origin):
                    into[key] = origin  # type: ignore[index]
        for name in self._exits & self.delivered.keys():
            out.exits[name] = hs.sent_keeping(hs.union(self.delivered[name]), ("ip_src", "ipv6_src"))
        if self._natted:
            ipv4 = hs.eq("eth_type", ETH_IP) & ~self._keep_ip
            for endpoint, relations in self.delivered.items():
                changed = hs.sent(hs.union(relations) & ipv4)
                if not hs.is_empty(changed):
                    out.natted[endpoint] = changed
        return out


class ReferenceEngine:
    """The path-by-path engine behind the :class:`~segctl.verifier.observe.Engine` interface."""

    name = "reference"

    def __init__(
        self, network: Network, tables: Mapping[str, Sequence[Flow]], *, hs: HeaderSpace | None = None
    ) -> None:
        self.hs = hs or HeaderSpace.for_tables(tables)
        topology = Topology.from_network(network)
        self._engine = Engine(tables, topology, hs=self.hs)
        # endpoints' ports, then uplinks' (each injected when its switch has tables)
        self._ports = topology.ingress_ports()
        self._injected = set(self._engine.edge_ports())
        self._exits = frozenset(topology.uplinks.values())
        self._engines: dict[frozenset[int], Engine] = {}
        self._counts = {"injections": 0, "outcomes": 0}

    def ingresses(self) -> list[SwitchPort]:
        return list(self._ports)

    def findings(self) -> list[Finding]:
        return list(self._engine.findings)

    def run(self, mode: str, ingresses: Sequence[SwitchPort] | None = None) -> RunView:
        hs = self.hs
        engine = self._engine
        if mode == "new":
            engine = engine.with_ct_states(hs.eq("ct_state", CT_TRK | CT_NEW))
        elif mode != "any":
            raise ValueError(f"unknown run {mode!r}")
        fold = _Fold(hs, natted=mode == "new", exits=self._exits)
        chosen = set(self._ports if ingresses is None else ingresses) & self._injected
        for i, port in enumerate(self._ports):
            if port in chosen:
                engine.commits = []
                fold.add(i, engine.inject(*port), engine.commits)
        self._count(len(chosen), fold)
        return fold.view()

    def runs(self, ingresses: Sequence[SwitchPort] | None = None) -> tuple[RunView, RunView]:
        return self.run("any", ingresses), self.run("new", ingresses)

    def replies(self, requests: Sequence[ReplyRequest]) -> RunView:
        fold = _Fold(self.hs, natted=False, exits=self._exits)
        for i, req in enumerate(requests):
            engine = self._reply_engine(req.zones)
            engine.commits = []
            fold.add(i, engine.inject(req.ingress[0], req.ingress[1], req.space), ())
        self._count(len(requests), fold)
        return fold.view()

    def work(self) -> dict[str, int]:
        return dict(self._counts)

    def _count(self, injections: int, fold: _Fold) -> None:
        self._counts["injections"] += injections
        self._counts["outcomes"] += fold.outcomes

    def _reply_engine(self, zones: frozenset[int]) -> Engine:
        engine = self._engines.get(zones)
        if engine is None:
            engine = self._engines[zones] = self._engine.with_ct_states(reply_states(self.hs, zones))
        return engine
