"""What the scenario reports show, computed once for Markdown and HTML (pure, no I/O).

A matrix phase becomes a grid of :class:`Cell` (rows send, columns receive). Every cell
has exactly one :attr:`Cell.kind`:

``allowed``
    every probe of the pair agrees three ways (observed = expected = predicted) and at
    least one service passed; :attr:`Cell.passed` lists them.
``denied``
    every probe agrees and none passed.
``disagree``
    at least one probe's observed, expected and predicted outcomes differ;
    :attr:`Cell.disagreements` holds those probes.
``not-probed``
    no probe ran for the pair; :attr:`Cell.reason` says why (the destination's address also
    belongs to the source's own tenant, or the phase probed other pairs only).
``self``
    the diagonal.

Probes the verifier could not predict (``predicted is None``) still need observed =
expected; they are listed in :attr:`Cell.unpredicted` and never count as agreeing by
prediction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from segctl.mininet_scenarios.runner import MatrixPhase, ProbeRow, RunResult

__all__ = [
    "NOT_PREDICTED_REASON",
    "PHASE_SUBSET_REASON",
    "UNADDRESSABLE_REASON",
    "Cell",
    "CellKind",
    "endpoint_names",
    "failure_reasons",
    "grid",
    "outcome",
    "probed_services",
    "verification_doc",
]

CellKind = Literal["allowed", "denied", "disagree", "not-probed", "self"]

UNADDRESSABLE_REASON = "address also in own tenant"
PHASE_SUBSET_REASON = "not probed in this phase"
NOT_PREDICTED_REASON = (
    "the reply walks several conntrack zones (consumers in several tenants share the client's "
    "address); the simulator takes one state per ct() call"
)


@dataclass(frozen=True)
class Cell:
    """One ordered pair of one phase."""

    kind: CellKind
    passed: tuple[str, ...] = ()  # services that passed live (all agree)
    probed: int = 0
    disagreements: tuple[ProbeRow, ...] = ()
    unpredicted: tuple[str, ...] = ()
    reason: str = ""

    def summary(self, services: int) -> str:
        """Short text for a grid cell: ``all 7``, the passed services, ``denied``..."""
        if self.kind == "self":
            return "—"
        if self.kind == "not-probed":
            return f"not probed: {self.reason}"
        if self.kind == "denied":
            return "denied"
        if self.kind == "allowed" and len(self.passed) == self.probed == services:
            return f"all {services}"
        return " ".join(self.passed)

    def disagreement_groups(self) -> list[tuple[str, tuple[str, ...]]]:
        """The disagreeing probes grouped by outcome: ``("observed pass, expected pass,
        predicted drop", ("icmp", "tcp/80"))``, in probe order."""
        groups: dict[str, list[str]] = {}
        for r in self.disagreements:
            key = (
                f"observed {outcome(r.observed)}, expected {outcome(r.expected)}, "
                f"predicted {outcome(r.predicted)}"
            )
            groups.setdefault(key, []).append(r.probe.service)
        return [(k, tuple(v)) for k, v in groups.items()]

    def unpredicted_text(self, services: int) -> str:
        """``all 7`` or the services the verifier could not predict."""
        if len(self.unpredicted) == self.probed == services:
            return f"all {services}"
        return " ".join(self.unpredicted)


def outcome(value: bool | None) -> str:
    """``pass`` / ``drop`` / ``not predicted``."""
    return "not predicted" if value is None else ("pass" if value else "drop")


def endpoint_names(result: RunResult) -> list[str]:
    """Grid order: the intent's endpoint order, then any other name a probe used."""
    names = [ep.qualified for ep in result.network.endpoints] if result.network is not None else []
    for phase in result.phases:
        for row in phase.rows:
            for key in (row.probe.src, row.probe.dst):
                name = "/".join(key)
                if name not in names:
                    names.append(name)
    return names


def _unaddressable(result: RunResult) -> set[tuple[str, str]]:
    pairs = set()
    for text in result.unaddressable:
        src, _, dst = text.partition(" -> ")
        pairs.add((src.strip(), dst.strip()))
    return pairs


def probed_services(phase: MatrixPhase) -> list[str]:
    """Every service the phase probed, in probe order."""
    out: list[str] = []
    for row in phase.rows:
        if row.probe.service not in out:
            out.append(row.probe.service)
    return out


def _cell(rows: list[ProbeRow]) -> Cell:
    bad = tuple(r for r in rows if not r.agree)
    unpredicted = tuple(r.probe.service for r in rows if r.predicted is None)
    passed = tuple(r.probe.service for r in rows if r.observed and r.agree)
    kind: CellKind = "disagree" if bad else ("allowed" if passed else "denied")
    return Cell(kind, passed, len(rows), bad, unpredicted)


def grid(result: RunResult, phase: MatrixPhase, names: Iterable[str]) -> dict[tuple[str, str], Cell]:
    """Every ordered pair of ``names`` for ``phase``."""
    rows: dict[tuple[str, str], list[ProbeRow]] = {}
    for row in phase.rows:
        rows.setdefault(("/".join(row.probe.src), "/".join(row.probe.dst)), []).append(row)
    unaddressable = _unaddressable(result)
    order = list(names)
    out: dict[tuple[str, str], Cell] = {}
    for src in order:
        for dst in order:
            if src == dst:
                out[src, dst] = Cell("self")
            elif (src, dst) in rows:
                out[src, dst] = _cell(rows[src, dst])
            elif (src, dst) in unaddressable:
                out[src, dst] = Cell("not-probed", reason=UNADDRESSABLE_REASON)
            else:
                out[src, dst] = Cell("not-probed", reason=PHASE_SUBSET_REASON)
    return out


def verification_doc(result: RunResult) -> dict[str, Any] | None:
    """The verifier's JSON report (schema ``segctl.verification-report``, docs/report.md), if it ran."""
    report = result.verification.get("report") if result.verification.get("available") else None
    return report if isinstance(report, dict) else None


def failure_reasons(result: RunResult) -> list[str]:
    """Why the run failed, one line per cause (empty when it passed)."""
    out = []
    if result.error:
        out.append(f"error: {result.error}")
    if not result.phases:
        out.append("no matrix phase ran")
    for p in result.phases:
        if p.predictor:
            out.append(f"phase {p.name}: predicted matrix unavailable ({p.predictor})")
        bad = sum(1 for r in p.rows if not r.agree)
        if bad:
            out.append(f"phase {p.name}: {bad} probe(s) where observed, expected and predicted disagree")
    out += [f"check failed: {c.name}" for c in result.checks if not c.passed]
    if not result.verification:
        out.append("live verification did not run")
    elif not result.verification.get("available"):
        out.append(f"live verification unavailable: {result.verification.get('reason', '?')}")
    elif not result.live_verified:
        doc = verification_doc(result) or {}
        n = doc.get("summary", {}).get("violations", "?")
        out.append(f"live verification: {n} violation(s) on the flows dumped at the end")
    return out
