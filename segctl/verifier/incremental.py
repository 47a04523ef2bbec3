"""Incremental re-verification: after a change, prove again only the parts it can affect.

An :class:`IncrementalVerifier` proves a network one *part* per tenant (the packets its
endpoints send: :func:`~segctl.verifier.verify.prove_part`) with one scalable engine
(:class:`~segctl.verifier.wavefront.WavefrontEngine`) kept across calls: one BDD manager,
the indexed tables and the effect views. It remembers, per part, its result and the views
(switch, table, pipeline values) its runs used. A later call

1. returns the last report with a fresh time when the network and every switch's flows
   (with their lines) are the same (``mode="unchanged"``);
2. otherwise re-indexes only the switches whose flows changed, and finds the effect views
   that now differ (:meth:`~segctl.verifier.wavefront.WavefrontEngine.update`: a view is made
   of the rules its pipeline values let through; a policy of one tenant only changes views
   keyed by that tenant's metadata, since the compiler ranks priorities per tenant);
3. proves again the parts that used a changed view, whose sources' grants changed (or every
   part when the shared services change), or that handed tags to the reference engine;
   keeps the others, and merges.

The report is exactly what :func:`~segctl.verifier.verify.verify` gives for the same inputs:
a part is a function of the views it used and of its sources' expectations, both unchanged
for a kept part, and merging parts gives the same report for any split of the sources.
A change of endpoints, tenants, segments, switches or links, or a manager past its node
limit, starts over.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from segctl.openflow.ofctl import Flow
from segctl.topology.network import Network
from segctl.verifier.expectations import Expectations
from segctl.verifier.report import Part, VerificationReport, merge_parts, part_of, timestamp
from segctl.verifier.verify import prove_part
from segctl.verifier.wavefront import WavefrontEngine

__all__ = ["DEFAULT_GROWTH", "DEFAULT_MAX_NODES", "IncrementalVerifier", "Stats"]

#: Past this many BDD nodes (or DEFAULT_GROWTH times the size after the last full proof, when
#: that is more) the next call starts over in a fresh manager.
DEFAULT_MAX_NODES = 20_000_000
DEFAULT_GROWTH = 2.0

Progress = Callable[[str], None]
EndpointKey = tuple[str, str]


@dataclass(frozen=True)
class Stats:
    """What the last :meth:`IncrementalVerifier.verify` call did.

    ``mode``: ``full`` (every part proven; ``reason`` says why), ``incremental`` or
    ``unchanged``; ``parts``/``reproven``: parts in all and proven this call;
    ``reindexed``: switches whose flows changed; ``changed_views``: effect views that differ.
    """

    mode: str
    reason: str
    parts: int
    reproven: int
    switches: int
    reindexed: int
    changed_views: int
    seconds: float

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class _Kept:
    """One tenant's part, the views its runs used, and whether it needed the reference engine."""

    part: Part
    views: frozenset[tuple[str, int, tuple[int, ...]]]
    delegated: bool


def _structure(network: Network) -> tuple[object, ...]:
    """Everything but policies and shared services: when it changes, start over (the
    external networks too: an uplink failover moves the active port, and a part proven
    against the old one would read stale tables as passing)."""
    return (
        network.switches, network.links, network.tenants, network.segments, network.endpoints,
        network.externals,
    )  # fmt: skip


def _nodes(engine: WavefrontEngine) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dd warns that the unit of another statistic changed
        return int(engine.hs.bdd.statistics()["n_nodes"])


def _flows_of(tables: Mapping[str, Sequence[Flow]]) -> dict[str, tuple[tuple[Flow, int], ...]]:
    return {sw: tuple((f, f.line) for f in flows) for sw, flows in tables.items()}


class IncrementalVerifier:
    """``verify(network, tables)`` that reuses the previous call's parts (module docstring)."""

    def __init__(self, *, max_nodes: int = DEFAULT_MAX_NODES, growth: float = DEFAULT_GROWTH) -> None:
        self.max_nodes = max_nodes
        self.growth = growth
        self.stats: Stats | None = None
        self._reset()

    def _reset(self) -> None:
        self._engine: WavefrontEngine | None = None
        self._structure: tuple[object, ...] | None = None
        self._expectations: Expectations | None = None
        self._kept: dict[str, _Kept] = {}
        self._full_nodes = 0
        self._last: tuple[Network, dict[str, tuple[tuple[Flow, int], ...]], VerificationReport] | None = None

    @property
    def header_space(self) -> object:
        """The BDD manager the kept parts were proven in (None before the first call)."""
        return None if self._engine is None else self._engine.hs

    def verify(
        self, network: Network, tables: Mapping[str, Sequence[Flow]], *, progress: Progress | None = None
    ) -> VerificationReport:
        """The report :func:`~segctl.verifier.verify.verify` gives for these inputs;
        ``self.stats`` says what was proven again."""
        try:
            return self._verify(network, tables, progress or (lambda _msg: None))
        except BaseException:
            self._reset()  # never reuse half-updated state
            raise

    def _verify(
        self, network: Network, tables: Mapping[str, Sequence[Flow]], say: Progress
    ) -> VerificationReport:
        start = time.monotonic()
        flows = _flows_of(tables)
        if self._last is not None and self._last[1] == flows and network == self._last[0]:
            return self._again(network, start, say)
        reason = self._start_over_reason(network, tables)
        changed: set[tuple[str, int, tuple[int, ...]]] = set()
        reindexed = 0
        if reason:
            self._reset()
            say("indexing the flow tables")
            self._engine = WavefrontEngine(network, tables)
            self._structure = _structure(network)
            reindexed = len(tables)
        else:
            assert self._engine is not None and self._last is not None
            old = self._last[1]
            reindexed = sum(1 for sw in flows if flows[sw] != old.get(sw))
            changed = self._engine.update(tables)
        engine = self._engine
        assert engine is not None
        exp = Expectations.of(network, self._expectations)
        shared_changed = self._expectations is None or exp.shared is not self._expectations.shared
        self._expectations = exp
        reproven = 0
        parts: list[Part] = []
        for tenant in network.tenants:
            sources = frozenset(ep.key for ep in network.tenant_endpoints(tenant.name))
            kept = self._kept.get(tenant.name)
            dirty = (
                kept is None
                or kept.delegated
                or shared_changed
                or bool(kept.views & changed)
                or not sources.isdisjoint(exp.changed)
            )
            if dirty and sources:
                say(f"tenant {tenant.name}: {len(sources)} sources")
                engine.record()
                part = prove_part(network, tables, engine, sources, expectations=exp)
                kept = self._kept[tenant.name] = _Kept(part, frozenset(engine.used_views), engine.delegated)
                reproven += 1
            elif kept is not None and sources and reindexed:
                kept.part = _relined(network, tables, engine, kept.part)
            if kept is not None and sources:
                parts.append(kept.part)
        if not parts:  # no endpoint at all: one empty part still carries every count
            engine.record()
            parts.append(prove_part(network, tables, engine, frozenset(), expectations=exp))
            reproven += 1
        for name in set(self._kept) - {t.name for t in network.tenants}:
            del self._kept[name]
        findings = engine.findings()
        for part in parts:
            part.findings = findings
        report = merge_parts(network, tables, parts, start, reach=exp.reach)
        if reason:
            self._full_nodes = _nodes(engine)
        mode = "full" if reason else "incremental"
        self.stats = Stats(
            mode, reason, len(parts), reproven, len(tables), reindexed, len(changed), report.seconds
        )
        self._last = (network, flows, report)
        return _copy(report, network, report.seconds, report.generated)

    def _start_over_reason(self, network: Network, tables: Mapping[str, Sequence[Flow]]) -> str:
        if self._engine is None:
            return "first call"
        if _structure(network) != self._structure:
            return "endpoints, tenants, segments, switches or links changed"
        if not self._engine.fits(tables):
            return "the tables write or match header fields the BDD manager does not track"
        limit = max(self.max_nodes, int(self.growth * self._full_nodes))
        if _nodes(self._engine) > limit:
            return f"BDD manager over {limit:,} nodes"
        return ""

    def _again(self, network: Network, start: float, say: Progress) -> VerificationReport:
        """The last report for the same inputs (a function of them), with a fresh time."""
        assert self._last is not None and self.stats is not None
        say("same intent and tables as the last proof: its report stands")
        report = _copy(self._last[2], network, time.monotonic() - start, timestamp())
        self.stats = replace(
            self.stats, mode="unchanged", reason="", reproven=0, reindexed=0, changed_views=0,
            seconds=report.seconds,
        )  # fmt: skip
        return report


def _relined(
    network: Network, tables: Mapping[str, Sequence[Flow]], engine: WavefrontEngine, part: Part
) -> Part:
    """A kept part with its counterexamples built again from the current tables: its
    violations are the same (no view it used changed) but flows may have other lines now,
    and a trace names lines."""
    if not any(r.violations for r in part.results):
        return part
    again = part_of(
        network, tables, engine.hs, part.results, part.findings, part.observed,
        engine=part.engine, work=part.work,
    )  # fmt: skip
    again.results = part.results
    return again


def _copy(report: VerificationReport, network: Network, seconds: float, generated: str) -> VerificationReport:
    """``report`` with its own lists (a caller may change them), ``network``, ``seconds`` and
    ``generated``."""
    return replace(
        report,
        network=network,
        properties=list(report.properties),
        findings=list(report.findings),
        flow_counts=dict(report.flow_counts),
        seconds=seconds,
        generated=generated,
    )
