"""Incremental re-verification: after a change, re-do only the work the change can affect.

An :class:`IncrementalVerifier` keeps, across calls, one :class:`HeaderSpace` (so earlier
outcomes stay valid BDDs), the indexed tables of every switch, and per engine injection
(every edge port in runs A and N, every reply injection of run E) its outcomes, its commit
events and the set of table views it visited (``(switch, table, key, tci)``, see
:meth:`segctl.verifier.symtables.Table.view`). A call with the last call's inputs (an equal
network, the same flows and lines per switch) returns the last report with a fresh time
and runs nothing (``mode="unchanged"``). Any other call

1. re-indexes only the switches whose flow list changed (flows and their line numbers);
2. marks a visited view *changed* when the rules it yields (flows in order, conjunction
   spaces, the table's VLAN narrowing) differ between the old and new index; a table
   missing on one side is changed when present on the other. Line numbers do not count:
   the traces of reused outcomes that end up in a counterexample get the current lines;
3. re-runs only the injections that visited a changed view, reusing the others unchanged;
4. recomputes only the property contributions (:class:`~segctl.verifier.properties.Checker`)
   whose outcomes were re-run or whose expectations changed; the expectations themselves
   only for the sources of tenants whose policies or groups changed
   (:mod:`segctl.verifier.expectations`), and a source's granted pairs are skipped whole when
   its run N, its grants and its reply records are the last call's.

The report is exactly what :func:`segctl.verifier.verify.verify` returns for the same inputs
(which is this class, fresh, called once). A change of endpoints, tenants, segments,
switches or links, or a BDD manager over its node limit (``max_nodes``, or ``growth`` times
its size after the last full run when that is more), starts over with a full run.
See ``docs/verification.md`` ("Incremental re-verification") for the soundness argument.
"""

from __future__ import annotations

import operator
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from segctl.openflow.ofctl import Flow
from segctl.topology.network import Network
from segctl.verifier.checks import Allowed, Violation
from segctl.verifier.headerspace import BDD, CT_EST, CT_NEW, CT_RPL, CT_TRK, HeaderSpace
from segctl.verifier.properties import Checker, PropertyResult, Runs
from segctl.verifier.report import MatrixRows, VerificationReport, build_report, timestamp
from segctl.verifier.spaces import Spaces
from segctl.verifier.symbolic import CommitEvent, Engine, Outcome, Reachability, Topology, ViewKey
from segctl.verifier.symtables import Finding, Hop, Rule, Table, index_tables

__all__ = ["DEFAULT_GROWTH", "DEFAULT_MAX_NODES", "IncrementalVerifier", "Stats"]

#: Seconds between two progress messages of a long engine run.
PROGRESS_EVERY_S = 5.0
#: Past this many BDD nodes (or DEFAULT_GROWTH x the size after the last full run, when that
#: is more: a fabric whose full proof alone needs more must still be re-verified
#: incrementally) the next call starts over in a fresh manager.
DEFAULT_MAX_NODES = 20_000_000
DEFAULT_GROWTH = 2.0

SwitchPort = tuple[str, int]
Progress = Callable[[str], None]
_ReplyKey = tuple[tuple[str, str], tuple[str, str], BDD, frozenset[int]]


@dataclass(frozen=True)
class Stats:
    """What the last :meth:`IncrementalVerifier.verify` call did and reused.

    ``mode``: ``full`` (everything computed; ``reason`` says why), ``incremental``, or
    ``unchanged`` (no switch re-indexed, nothing re-run or recomputed).
    """

    mode: str
    reason: str
    ingresses: int  # edge ports injected per run
    rerun_any: int
    rerun_new: int
    replies: int
    rerun_replies: int
    switches: int
    reindexed: int
    changed_views: int
    contributions: int
    recomputed: int
    expected: int  # sources whose expectations (grants per destination) were computed again
    seconds: float

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class _Record:
    """One injection: its outcomes, commits, the views it visited, and an identity token."""

    outcomes: list[Outcome]
    commits: list[CommitEvent]
    views: Mapping[ViewKey, BDD | None]  # each visited view, the union of the spaces that entered it
    token: object = field(default_factory=object)


@dataclass(frozen=True)
class _TablePart:
    """One table of a switch: its flows (input order) and lines, its index, its findings."""

    flows: tuple[Flow, ...]
    lines: tuple[int, ...]
    table: Table
    findings: list[Finding]


def _structure(network: Network) -> tuple[object, ...]:
    """Everything but policies and shared services: when it changes, start over."""
    return (network.switches, network.links, network.tenants, network.segments, network.endpoints)


def _same_flows(old: tuple[Flow, ...], old_lines: tuple[int, ...], new: Sequence[Flow]) -> bool:
    """Equal flows with equal lines, in order (``Flow`` is frozen: the same object has the
    same line; comparing identities first runs in C, 215,734 flows in a few ms)."""
    if len(old) != len(new):
        return False
    if all(map(operator.is_, old, new)):
        return True
    return all(a is b or (a == b and line == b.line) for a, line, b in zip(old, old_lines, new, strict=True))


def _nodes(hs: HeaderSpace) -> int:
    """Nodes in the manager's unique table (dead ones included; ``len()`` would garbage-collect)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dd warns that the unit of another statistic changed
        return int(hs.bdd.statistics()["n_nodes"])


def _by_table(flows: Sequence[Flow]) -> dict[int, tuple[Flow, ...]]:
    """Each table's flows in index order (priority descending, input order within one)."""
    out: dict[int, list[Flow]] = {}
    for f in flows:
        out.setdefault(f.table, []).append(f)
    return {t: tuple(sorted(fs, key=lambda f: -f.priority)) for t, fs in out.items()}


def _copy(report: VerificationReport, network: Network, seconds: float, generated: str) -> VerificationReport:
    """``report`` with its own lists and dicts (a caller may change them; the frozen records in
    them are shared), ``network``, ``seconds`` and ``generated``."""
    return replace(
        report,
        network=network,
        properties=list(report.properties),
        matrix=[list(row) for row in report.matrix],
        findings=list(report.findings),
        flow_counts=dict(report.flow_counts),
        seconds=seconds,
        generated=generated,
    )


def _rule_id(rule: Rule) -> Flow:
    return rule.flow  # compares without the line: reused hops get the current lines (_Relines)


class IncrementalVerifier:
    """``verify(network, tables)`` that reuses the previous call's work (module docstring)."""

    def __init__(
        self, *, max_nodes: int = DEFAULT_MAX_NODES, growth: float = DEFAULT_GROWTH, precise: bool = True
    ) -> None:
        """``precise``: record the spaces that entered each view, so that a change re-runs only
        injections whose packets can meet a changed rule (not every one visiting its table).
        An OR per repeated table visit: within the noise of a full run on k=4 T=6 (7% under
        cProfile); a one-shot :func:`~segctl.verifier.verify.verify` turns it off all the same."""
        self.max_nodes = max_nodes
        self.growth = growth
        self._full_nodes = 0  # the manager's size after the last full run
        self.precise = precise
        self.stats: Stats | None = None
        self._reset()

    @property
    def header_space(self) -> HeaderSpace | None:
        """The BDD manager the kept outcomes live in (None before the first call)."""
        return self._hs

    def _reset(self) -> None:
        self._hs: HeaderSpace | None = None
        self._spaces: Spaces | None = None
        self._topology: Topology | None = None
        self._structure: tuple[object, ...] | None = None
        self._flows: dict[str, tuple[Flow, ...]] = {}
        self._lines: dict[str, tuple[int, ...]] = {}
        self._tables: dict[str, dict[int, tuple[Flow, ...]]] = {}  # per switch: _by_table
        self._parts: dict[str, dict[int, _TablePart]] = {}  # per switch and table: its index
        self._old_tables: dict[str, dict[int, tuple[Flow, ...]]] = {}  # the last _reindex's
        self._index: dict[str, dict[int, Table]] = {}
        self._findings: dict[str, list[Finding]] = {}
        self._records: dict[str, dict[SwitchPort, _Record]] = {"any": {}, "new": {}}
        self._replies: dict[_ReplyKey, _Record] = {}
        self._seen: dict[str, set[ViewKey]] = {}  # per switch: the views some record visited
        self._checker = Checker()
        self._rows: MatrixRows = {}
        self._last: tuple[tuple[str, ...], VerificationReport] | None = None  # switch order, report

    def verify(
        self, network: Network, tables: Mapping[str, Sequence[Flow]], *, progress: Progress | None = None
    ) -> VerificationReport:
        """The report :func:`segctl.verifier.verify.verify` gives for these inputs; ``self.stats``
        says what was reused."""
        try:
            return self._verify(network, tables, progress or (lambda _msg: None))
        except BaseException:
            self._reset()  # never reuse half-updated state
            raise

    def _verify(
        self, network: Network, tables: Mapping[str, Sequence[Flow]], say: Progress
    ) -> VerificationReport:
        start = time.monotonic()
        if self._same_inputs(network, tables):
            return self._again(network, start, say)
        structure = _structure(network)
        reason = ""
        if self._hs is None:
            reason = "first call"
        elif structure != self._structure:
            reason = "endpoints, tenants, segments, switches or links changed"
        elif _nodes(self._hs) > (limit := max(self.max_nodes, int(self.growth * self._full_nodes))):
            reason = f"BDD manager over {limit:,} nodes"
        if reason:
            self._reset()
            self._hs = HeaderSpace()
            self._structure = structure
            self._spaces = Spaces(self._hs, network)
            self._topology = Topology.from_network(network)  # links and edge ports: structure
        hs, spaces, topology = self._hs, self._spaces, self._topology
        assert hs is not None and spaces is not None and topology is not None
        spaces.net = network

        old_index = self._index
        reindexed = self._reindex(hs, tables)
        changed = _Changes(hs, old_index, self._index, self._changed_views(hs, old_index, reindexed))
        findings = [f for sw in tables for f in self._findings[sw]]

        engine = Engine(tables, topology, hs=hs, index=self._index, record_spaces=self.precise)
        ports = engine.edge_ports()
        say("symbolic reachability, every conntrack state")
        rerun_any = self._run("any", engine, ports, changed, say)
        say("symbolic reachability, new connections")
        new_engine = engine.with_ct_states(hs.eq("ct_state", CT_TRK | CT_NEW))
        rerun_new = self._run("new", new_engine, ports, changed, say)
        reach = {
            run: Reachability(
                hs,
                {p: self._records[run][p].outcomes for p in ports},
                [c for p in ports for c in self._records[run][p].commits],
                findings,
            )
            for run in ("any", "new")
        }
        tokens = {(run, p): self._records[run][p].token for run in ("any", "new") for p in ports}
        replies = _Replies(engine, self._replies, changed, self._note)
        runs = Runs(hs, reach["any"], reach["new"], replies, tokens)
        results = _Relines(self._index).results(self._checker.check(runs, network, spaces, progress=say))
        self._replies = replies.records

        say("building counterexamples")
        rerun_replies = replies.rerun
        exp = self._checker.expectations
        assert exp is not None
        row_keys = {
            ep.key: (tokens.get(("new", (ep.switch, ep.port))), exp.rows.get(ep.key))
            for ep in network.endpoints
        }
        report = build_report(
            network, tables, hs, runs, results, findings, start, exp.reach, self._rows, row_keys
        )
        if reason:
            self._full_nodes = _nodes(hs)
        mode = "full" if reason else "incremental"
        if not reason and not reindexed and not self._checker.recomputed:
            mode = "unchanged"
        self._last = (tuple(tables), report)
        self.stats = Stats(
            mode,
            reason,
            len(ports),
            rerun_any,
            rerun_new,
            len(replies.records),
            rerun_replies,
            len(tables),
            len(reindexed),
            len(changed.views),
            self._checker.total,
            self._checker.recomputed,
            len(exp.changed),
            report.seconds,
        )
        return _copy(report, network, report.seconds, report.generated)

    def _same_inputs(self, network: Network, tables: Mapping[str, Sequence[Flow]]) -> bool:
        """The last call's inputs again: an equal network, and the same switches in the same
        order, each with the same flows and lines in the same order."""
        if self._last is None:
            return False
        switches, report = self._last
        if network is not report.network and network != report.network:
            return False
        if tuple(tables) != switches:
            return False
        return all(_same_flows(self._flows[sw], self._lines[sw], flows) for sw, flows in tables.items())

    def _again(self, network: Network, start: float, say: Progress) -> VerificationReport:
        """The last report for the same inputs (the engine is deterministic and every check a
        function of them), with fresh ``seconds`` and ``generated``. Nothing is run, so the
        manager does not grow: its size is checked again at the next call with other inputs."""
        assert self._last is not None and self.stats is not None
        say("same intent and tables as the last proof: its report stands")
        report = _copy(self._last[1], network, time.monotonic() - start, timestamp())
        self.stats = replace(
            self.stats,
            mode="unchanged",
            reason="",
            rerun_any=0,
            rerun_new=0,
            rerun_replies=0,
            reindexed=0,
            changed_views=0,
            recomputed=0,
            expected=0,
            seconds=report.seconds,
        )
        return report

    # ------------------------------------------------------------------ tables

    def _reindex(self, hs: HeaderSpace, tables: Mapping[str, Sequence[Flow]]) -> set[str]:
        """Index the switches whose flows changed; return them (and the ones removed)."""
        index: dict[str, dict[int, Table]] = {}
        changed: set[str] = set()
        self._old_tables = {}
        for sw, flows in tables.items():
            old = self._flows.get(sw)
            if old is not None and sw in self._index and _same_flows(old, self._lines[sw], flows):
                index[sw] = self._index[sw]
                continue
            index[sw], self._findings[sw] = self._index_switch(hs, sw, flows)
            self._flows[sw] = tuple(flows)
            self._lines[sw] = tuple(f.line for f in flows)
            self._old_tables[sw] = self._tables.get(sw, {})
            self._tables[sw] = _by_table(flows)
            changed.add(sw)
        for sw in set(self._index) - set(index):
            changed.add(sw)
            self._flows.pop(sw, None)
            self._lines.pop(sw, None)
            self._findings.pop(sw, None)
            self._parts.pop(sw, None)
            self._old_tables[sw] = self._tables.pop(sw, {})
        self._index = index
        return changed

    def _index_switch(
        self, hs: HeaderSpace, switch: str, flows: Sequence[Flow]
    ) -> tuple[dict[int, Table], list[Finding]]:
        """:func:`index_tables` of one switch, table by table (tables are indexed independently),
        keeping the tables whose flows and lines are unchanged (and their warm view caches)."""
        by_table: dict[int, list[Flow]] = {}
        for f in flows:
            by_table.setdefault(f.table, []).append(f)
        old = self._parts.get(switch, {})
        parts: dict[int, _TablePart] = {}
        for t, tflows in by_table.items():
            part = old.get(t)
            if part is None or not _same_flows(part.flows, part.lines, tflows):
                found: list[Finding] = []
                table = index_tables(hs, switch, tflows, found)[t]
                part = _TablePart(tuple(tflows), tuple(f.line for f in tflows), table, found)
            parts[t] = part
        self._parts[switch] = parts
        return {t: p.table for t, p in parts.items()}, [f for p in parts.values() for f in p.findings]

    def _changed_views(
        self, hs: HeaderSpace, old: Mapping[str, Mapping[int, Table]], switches: set[str]
    ) -> set[ViewKey]:
        changed: set[ViewKey] = set()
        for sw in switches:
            before, after = self._old_tables.get(sw, {}), self._tables.get(sw, {})
            # a table with the same flows in the same order yields the same views: skip it
            tables = {t for t in before.keys() | after.keys() if before.get(t) != after.get(t)}
            for view in self._seen.get(sw, ()):
                if view[1] not in tables:
                    continue
                if _signature(hs, old.get(sw), view) != _signature(hs, self._index.get(sw), view):
                    changed.add(view)
        return changed

    # ------------------------------------------------------------------ runs

    def _run(
        self, run: str, engine: Engine, ports: Sequence[SwitchPort], changed: _Changes, say: Progress
    ) -> int:
        """Inject at every port whose record is missing or affected by a change; count them.

        Says how far it got every :data:`PROGRESS_EVERY_S` seconds (a full proof of a big
        fabric runs for minutes)."""
        old = self._records[run]
        records: dict[SwitchPort, _Record] = {}
        rerun = 0
        last = time.monotonic()
        for done, port in enumerate(ports):
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                reused = f" ({done - rerun:,} reused from the last proof)" if rerun < done else ""
                say(f"  {done:,}/{len(ports):,} edge ports{reused}")
            rec = old.get(port)
            if rec is None or changed.affects(rec):
                engine.commits = []
                outcomes = engine.inject(*port)
                rec = _Record(outcomes, list(engine.commits), engine.visits)
                self._note(rec)
                rerun += 1
            records[port] = rec
        self._records[run] = records
        return rerun

    def _note(self, rec: _Record) -> None:
        for view in rec.views:
            self._seen.setdefault(view[0], set()).add(view)


class _Replies:
    """Run E for :class:`~segctl.verifier.properties.Runs`: a granted pair's replies, reused when
    the same reply space and commit zones were injected before and no view it visited changed."""

    def __init__(
        self,
        engine: Engine,
        old: Mapping[_ReplyKey, _Record],
        changed: _Changes,
        note: Callable[[_Record], None],
    ) -> None:
        self.engine = engine
        self.note = note  # called with each new record (its views join the verifier's seen views)
        self.old = old
        self.changed = changed
        self.records: dict[_ReplyKey, _Record] = {}
        self.rerun = 0
        self._engines: dict[frozenset[int], Engine] = {}
        self._affected: set[_ReplyKey] | None = None  # the old records affected (see stale)

    def __call__(self, a: Allowed, zones: frozenset[int]) -> tuple[list[Outcome], object]:
        key = (a.src.key, a.dst.key, a.reply, zones)
        rec = self.records.get(key)  # asked for before in this call: already current
        if rec is None:
            rec = self.old.get(key)
            if rec is None or self._is_affected(key, rec):
                engine = self._engine(zones)
                outcomes = engine.inject(a.dst.switch, a.dst.port, a.reply)
                rec = _Record(outcomes, [], engine.visits)
                self.note(rec)
                self.rerun += 1
            self.records[key] = rec
        return rec.outcomes, rec.token

    def stale(self) -> set[tuple[str, str]]:
        """The sources with a last call's record affected by the changes (checked once here, so
        that the :class:`~segctl.verifier.properties.Checker` can skip the pairs of the others)."""
        if self._affected is None:
            views = self.changed.views
            self._affected = {key for key, rec in self.old.items() if views and self.changed.affects(rec)}
        return {key[0] for key in self._affected}

    def _is_affected(self, key: _ReplyKey, rec: _Record) -> bool:
        """Whether the last call's record ``rec`` of ``key`` must be run again (decided once
        per call: by :meth:`stale` when it was asked)."""
        if self._affected is not None:
            return key in self._affected
        return self.changed.affects(rec)

    def carry(self, a: Allowed, zones: frozenset[int]) -> None:
        key = (a.src.key, a.dst.key, a.reply, zones)
        self.records[key] = self.old[key]

    def _engine(self, zones: frozenset[int]) -> Engine:
        """Lookups in ``zones`` (where run N committed the connection) say ``+est+rpl``,
        lookups in any other zone ``+new`` (no entry there)."""
        engine = self._engines.get(zones)
        if engine is None:
            hs = self.engine.hs
            in_zones = hs.false
            for z in sorted(zones):
                in_zones |= hs.eq("ct_zone", z)
            states = (in_zones & hs.eq("ct_state", CT_TRK | CT_EST | CT_RPL)) | (
                ~in_zones & hs.eq("ct_state", CT_TRK | CT_NEW)
            )
            engine = self._engines[zones] = self.engine.with_ct_states(states)
        return engine


class _Changes:
    """The views whose rules changed, and whether a record is affected: it is when, in some
    changed view it visited, the rules that meet the spaces that entered it differ."""

    def __init__(
        self,
        hs: HeaderSpace,
        old: Mapping[str, Mapping[int, Table]],
        new: Mapping[str, Mapping[int, Table]],
        views: set[ViewKey],
    ) -> None:
        self.hs, self.old, self.new, self.views = hs, old, new, views

    def affects(self, rec: _Record) -> bool:
        if not self.views:
            return False
        for view in rec.views.keys() & self.views:
            space = rec.views[view]
            sw = view[0]
            if _signature(self.hs, self.old.get(sw), view, space) != _signature(
                self.hs, self.new.get(sw), view, space
            ):
                return True
        return False


def _signature(
    hs: HeaderSpace, index: Mapping[int, Table] | None, view: ViewKey, space: BDD | None = None
) -> object:
    """What a table visit yields under ``view``'s key: rules (flows) by level, the conjunction
    spaces, the conj_id re-lookup rules, and whether the table narrows by VLAN. With ``space``
    only what meets it (conjunction spaces cut to it): a visit with packets inside ``space``
    does the same thing with two tables whose signatures for ``space`` are equal."""
    table = None if index is None else index.get(view[1])
    if table is None:
        return None
    v = table.view(hs, view[2], view[3])
    if space is None:
        levels = tuple((tuple(_rule_id(r) for r, _ in hard), tuple(conj)) for hard, conj in v.levels)
        return table.by_vlan, levels, tuple(_rule_id(r) for r, _ in v.rules)
    cut = []
    for hard, conj in v.levels:
        rules = tuple(_rule_id(r) for r, rs in hard if not hs.disjoint(rs, space))
        spaces = tuple((cid, cs & space) for cid, cs in conj if not hs.disjoint(cs, space))
        if rules or spaces:
            cut.append((rules, spaces))
    rules = tuple(_rule_id(r) for r, rs in v.rules if not hs.disjoint(rs, space))
    return table.by_vlan, tuple(cut), rules


class _Relines:
    """Current line numbers for the hops of reused outcomes (only violations' traces show them).

    A reused outcome went through views whose flows are equal, in order, to the current ones;
    the rule it hit is the first current rule of its table with the same flow (an equal
    later one never matches anything), which is the one a full run would name.
    """

    def __init__(self, index: Mapping[str, Mapping[int, Table]]) -> None:
        self.index = index
        self._lines: dict[str, dict[tuple[int, int, int, str, str], int]] = {}

    def results(self, results: Sequence[PropertyResult]) -> list[PropertyResult]:
        return [replace(r, violations=tuple(self._violation(v) for v in r.violations)) for r in results]

    def _violation(self, v: Violation) -> Violation:
        outcome = v.outcome
        if outcome is not None:
            hops = self._hops(outcome.hops)
            if hops is not outcome.hops:
                outcome = replace(outcome, hops=hops)
        commit = v.commit
        if commit is not None:
            hops = self._hops(commit.hops)
            if hops is not commit.hops:
                commit = replace(commit, hops=hops)
        if outcome is v.outcome and commit is v.commit:
            return v
        return replace(v, outcome=outcome, commit=commit)

    def _hops(self, hops: tuple[Hop, ...]) -> tuple[Hop, ...]:
        out = tuple(self._hop(h) for h in hops)
        return hops if all(a is b for a, b in zip(out, hops, strict=True)) else out

    def _hop(self, hop: Hop) -> Hop:
        if hop.priority < 0:
            return hop
        lines = self._lines.get(hop.switch)
        if lines is None:
            lines = self._lines[hop.switch] = {}
            for table in self.index.get(hop.switch, {}).values():
                for rule in table.rules:
                    f = rule.flow
                    lines.setdefault((f.table, f.priority, f.cookie, f.match_text, f.actions_text), f.line)
        line = lines.get((hop.table, hop.priority, hop.cookie, hop.match, hop.actions), hop.line)
        return hop if line == hop.line else replace(hop, line=line)
