"""The verifier's entry point and its report.

:func:`verify` takes the resolved intent and the flow tables (parsed ``ovs-ofctl`` text,
from the compiler's files or dumped from live switches; never the compiler itself) and
returns a :class:`VerificationReport`: per property a verdict, what was checked, and for
each violation a concrete counterexample with its trace. ``report.to_json()`` is the
versioned document described in ``docs/report.md`` (:data:`SCHEMA_VERSION`).

>>> from segctl.topology.network import load_network  # doctest: +SKIP
>>> report = verify(load_network("examples/two-tenants.yaml"), tables)  # doctest: +SKIP
>>> report.ok, [p.id for p in report.properties if not p.holds]  # doctest: +SKIP
(True, [])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from segctl.flows.counterexample import Counterexample, build
from segctl.flows.headerspace import BACKEND, HeaderSpace
from segctl.flows.ofctl import Flow
from segctl.flows.properties import PropertyResult, Runs
from segctl.flows.symbolic import DELIVERED, Finding
from segctl.topology.analysis import expected_reachability, grant_symbol
from segctl.topology.network import Network

__all__ = [
    "MAX_COUNTEREXAMPLES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "MatrixCell",
    "PropertyReport",
    "VerificationReport",
    "build_report",
    "verify",
]

SCHEMA = "segctl.verification-report"
#: Bumped on any incompatible change of :meth:`VerificationReport.to_json` (see docs/report.md).
SCHEMA_VERSION = 1
#: Counterexamples kept per property (the count of violations is always complete).
MAX_COUNTEREXAMPLES = 20

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PropertyReport:
    """One property's verdict, what it checked, and counterexamples of its violations."""

    id: str
    title: str
    statement: str
    checked: str
    space: str
    counts: Mapping[str, int]
    violation_count: int
    counterexamples: tuple[Counterexample, ...]

    @property
    def holds(self) -> bool:
        return self.violation_count == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "statement": self.statement,
            "holds": self.holds,
            "checked": {"description": self.checked, "header_space": self.space, "counts": dict(self.counts)},
            "violation_count": self.violation_count,
            "violations": [c.to_json() for c in self.counterexamples],
        }


@dataclass(frozen=True)
class MatrixCell:
    """Expected (intent) and observed (tables, new IPv4) reachability of one ordered pair."""

    expected: str  # grant letters: S intra-segment, P policy, X shared service, · none
    observed: bool  # some new IPv4 packet from src is delivered to dst
    status: str  # allowed | denied | shared | violation | self


@dataclass
class VerificationReport:
    """The result of :func:`verify`; ``ok`` when every property holds."""

    network: Network
    properties: list[PropertyReport]
    endpoints: list[str]
    matrix: list[list[MatrixCell]]
    findings: list[Finding]
    flow_counts: dict[str, int]
    seconds: float
    paths: int
    generated: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    @property
    def ok(self) -> bool:
        return all(p.holds for p in self.properties)

    @property
    def violations(self) -> list[Counterexample]:
        """Every counterexample kept, in property order."""
        return [c for p in self.properties for c in p.counterexamples]

    def property(self, pid: str) -> PropertyReport:
        return next(p for p in self.properties if p.id == pid)

    def to_json(self) -> dict[str, Any]:
        """The versioned report document (``docs/report.md``)."""
        net = self.network
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "generated": self.generated,
            "ok": self.ok,
            "summary": {
                "properties": len(self.properties),
                "holding": sum(p.holds for p in self.properties),
                "violations": sum(p.violation_count for p in self.properties),
            },
            "network": {
                "switches": [s.name for s in net.switches],
                "links": [{"a": f"{a}:{ap}", "b": f"{b}:{bp}"} for a, ap, b, bp in net.links],
                "tenants": [{"name": t.name, "id": t.id, "gateway_mac": t.gateway_mac} for t in net.tenants],
                "endpoints": [
                    {
                        "name": ep.qualified,
                        "tenant": ep.tenant,
                        "segment": ep.segment,
                        "mac": ep.mac,
                        "ip": str(ep.ip),
                        "attach": f"{ep.switch}:{ep.port}",
                    }
                    for ep in net.endpoints
                ],
            },
            "tables": {"flow_counts": dict(self.flow_counts)},
            "engine": {"bdd_backend": BACKEND, "seconds": round(self.seconds, 3), "paths": self.paths},
            "findings": [
                {
                    "kind": f.kind,
                    "switch": f.switch,
                    "table": f.table,
                    "priority": f.priority,
                    "detail": f.detail,
                }
                for f in self.findings
            ],
            "properties": [p.to_json() for p in self.properties],
            "matrix": {
                "endpoints": self.endpoints,
                "rows": [
                    [{"expected": c.expected, "observed": c.observed, "status": c.status} for c in row]
                    for row in self.matrix
                ],
            },
        }


def verify(
    network: Network,
    tables: Mapping[str, Sequence[Flow]],
    *,
    progress: Progress | None = None,
) -> VerificationReport:
    """Check every property of ``network`` against ``tables``; never consults the compiler.

    A full proof: one call of a fresh :class:`~segctl.flows.incremental.IncrementalVerifier`
    (the same code re-verifies incrementally when the verifier is kept across calls).
    """
    from segctl.flows.incremental import IncrementalVerifier  # (incremental imports this module)

    return IncrementalVerifier().verify(network, tables, progress=progress)


def build_report(
    network: Network,
    tables: Mapping[str, Sequence[Flow]],
    hs: HeaderSpace,
    runs: Runs,
    results: Sequence[PropertyResult],
    findings: Sequence[Finding],
    seconds: float,
) -> VerificationReport:
    """The report of ``results`` (counterexamples built from ``tables``, the matrix from run N)."""
    reports = [_property_report(network, tables, hs, r) for r in results]
    endpoints, matrix = _matrix(network, runs.new.outcomes, results)
    paths = sum(len(v) for v in runs.any.outcomes.values()) + sum(len(v) for v in runs.new.outcomes.values())
    return VerificationReport(
        network=network,
        properties=reports,
        endpoints=endpoints,
        matrix=matrix,
        findings=list(findings),
        flow_counts={sw: len(flows) for sw, flows in tables.items()},
        seconds=seconds,
        paths=paths,
    )


def _property_report(
    network: Network, tables: Mapping[str, Sequence[Flow]], hs: HeaderSpace, result: PropertyResult
) -> PropertyReport:
    examples = tuple(build(network, tables, hs, v) for v in result.violations[:MAX_COUNTEREXAMPLES])
    return PropertyReport(
        result.id,
        result.title,
        result.statement,
        result.checked.description,
        result.checked.space,
        result.checked.counts,
        len(result.violations),
        examples,
    )


def _matrix(
    network: Network, outcomes: Mapping[tuple[str, int], Sequence[Any]], results: Sequence[PropertyResult]
) -> tuple[list[str], list[list[MatrixCell]]]:
    reach = expected_reachability(network)
    bad = {(v.src, v.dst) for r in results for v in r.violations}
    observed: set[tuple[str, str]] = set()
    for ep in network.endpoints:
        for o in outcomes.get((ep.switch, ep.port), []):
            if o.disposition.kind == DELIVERED and o.disposition.endpoint:
                observed.add((ep.qualified, o.disposition.endpoint))
    rows = []
    for src in network.endpoints:
        row = []
        for dst in network.endpoints:
            grants = reach.get((src.key, dst.key), ())
            seen = (src.qualified, dst.qualified) in observed
            if (src.qualified, dst.qualified) in bad:
                status = "violation"
            elif src.key == dst.key:
                status = "self"
            elif any(g.kind == "shared-service" for g in grants):
                status = "shared"
            elif grants:
                status = "allowed"
            else:
                status = "denied"
            row.append(MatrixCell(grant_symbol(grants), seen, status))
        rows.append(row)
    return [ep.qualified for ep in network.endpoints], rows
