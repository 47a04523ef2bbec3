"""The verification report: verdicts, counterexamples, the reachability matrix.

:func:`~segctl.verifier.verify.verify` returns a :class:`VerificationReport`: per
property a verdict, what was checked, and for each violation a concrete counterexample
with its trace. ``report.to_json()`` is the versioned document described in
``docs/report.md`` (:data:`SCHEMA_VERSION`); its reachability matrix lists only the pairs
whose cell differs from :data:`DEFAULT_CELL`, and :func:`read_matrix` reads one back
(every pair, the rule applied once, here).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

from segctl.openflow.ofctl import Flow
from segctl.topology.analysis import EndpointKey, Grant, expected_reachability, grant_symbol
from segctl.topology.exposure import analyse
from segctl.topology.network import Network
from segctl.verifier.counterexample import Counterexample, build
from segctl.verifier.headerspace import BACKEND, HeaderSpace
from segctl.verifier.outside_matrix import OutsideCell, outside_cells
from segctl.verifier.properties import PropertyResult
from segctl.verifier.symtables import Finding

__all__ = [
    "DEFAULT_CELL",
    "MAX_COUNTEREXAMPLES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Found",
    "MatrixCell",
    "Part",
    "PropertyReport",
    "ReachabilityMatrix",
    "VerificationReport",
    "analysis_json",
    "matrix_json",
    "merge_parts",
    "part_of",
    "read_matrix",
    "timestamp",
]

SCHEMA = "segctl.verification-report"
#: Bumped on any incompatible change of :meth:`VerificationReport.to_json` (see docs/report.md).
SCHEMA_VERSION = 3
#: Counterexamples kept per property (the count of violations is always complete).
MAX_COUNTEREXAMPLES = 20

Progress = Callable[[str], None]
_T = TypeVar("_T")
#: JSON kinds by Python type, for :func:`read_matrix`'s messages.
_KINDS: dict[type[Any], str] = {str: "a string", bool: "true or false", list: "a list", dict: "an object"}


def timestamp() -> str:
    """Now, as a report's ``generated``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


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
    """Expected (intent) and observed (tables, new packets) reachability of one ordered pair."""

    expected: str  # grant letters: G guardrail, S intra-segment, P policy, X shared service, · none
    observed: bool  # some packet from src, every lookup new, is delivered to dst (ARP included)
    status: str  # allowed | denied | shared | violation | self


#: The cell ``report.json`` does not list (schema 2): no grant, nothing delivered, denied;
#: most ordered pairs of a multi-tenant fabric.
DEFAULT_CELL = MatrixCell("·", False, "denied")


@dataclass
class VerificationReport:
    """The result of :func:`verify`; ``ok`` when every property holds."""

    network: Network
    properties: list[PropertyReport]
    endpoints: list[str]
    cells: ReachabilityMatrix
    findings: list[Finding]
    flow_counts: dict[str, int]
    seconds: float
    engine: str = "wavefront"
    work: Mapping[str, int] = field(default_factory=dict)
    generated: str = field(default_factory=timestamp)
    #: per external network and endpoint, both ways (empty without external networks)
    outside: list[OutsideCell] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(p.holds for p in self.properties)

    @property
    def violations(self) -> list[Counterexample]:
        """Every counterexample kept, in property order."""
        return [c for p in self.properties for c in p.counterexamples]

    def property(self, pid: str) -> PropertyReport:
        return next(p for p in self.properties if p.id == pid)

    @cached_property
    def matrix(self) -> list[list[MatrixCell]]:
        """Every cell, ``matrix[i][j]`` for endpoint ``i`` sending to ``j`` (built on first use:
        N² cells; :attr:`cells` holds only the ones that differ from :data:`DEFAULT_CELL`)."""
        return self.cells.rows()

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
            "engine": {
                "name": self.engine,
                "bdd_backend": BACKEND,
                "seconds": round(self.seconds, 3),
                "work": dict(self.work),
            },
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
            "matrix": self.cells.to_json(),
            **({"outside": [c.to_json() for c in self.outside]} if self.outside else {}),
            "analysis": analysis_json(net),
        }


def analysis_json(network: Network) -> dict[str, Any]:
    """The ``analysis`` object of ``report.json``: the intent's cross-tenant paths and each
    endpoint's blast radius, from the intent alone (:mod:`segctl.topology.exposure`,
    ``docs/report.md``); computed once per network object."""
    return analyse(network).to_json()


def _cell_json(cell: MatrixCell) -> dict[str, Any]:
    return {"expected": cell.expected, "observed": cell.observed, "status": cell.status}


def matrix_json(endpoints: Sequence[str], matrix: Sequence[Sequence[MatrixCell]]) -> dict[str, Any]:
    """The ``matrix`` object of ``report.json`` (schema 2): the endpoints, :data:`DEFAULT_CELL`,
    and every ordered pair whose cell differs from it in any field, row-major.

    >>> m = matrix_json(["t/a", "t/b"], [[MatrixCell("·", True, "self"), DEFAULT_CELL],
    ...                                  [MatrixCell("S", True, "allowed"), DEFAULT_CELL]])
    >>> [(p["src"], p["dst"], p["status"]) for p in m["pairs"]]
    [('t/a', 't/a', 'self'), ('t/b', 't/a', 'allowed')]
    """
    d = DEFAULT_CELL
    pairs = [
        {"src": src, "dst": dst, "expected": c.expected, "observed": c.observed, "status": c.status}
        for src, row in zip(endpoints, matrix, strict=True)
        for dst, c in zip(endpoints, row, strict=True)
        if c.status != d.status or c.observed != d.observed or c.expected != d.expected
    ]
    return {"endpoints": list(endpoints), "default": _cell_json(d), "pairs": pairs}


@dataclass(frozen=True)
class ReachabilityMatrix:
    """A ``matrix`` object of ``report.json`` read back by :func:`read_matrix`: ``pairs`` holds
    the cells listed, every other ordered pair of ``endpoints`` has ``default``."""

    endpoints: tuple[str, ...]
    default: MatrixCell
    pairs: Mapping[tuple[str, str], MatrixCell]

    def cell(self, src: str, dst: str) -> MatrixCell:
        """The cell of ``src`` sending to ``dst`` (``ValueError`` for an unknown endpoint)."""
        hit = self.pairs.get((src, dst))
        if hit is not None:
            return hit
        for name in (src, dst):
            if name not in self._names:
                raise ValueError(f"matrix: unknown endpoint {name!r}")
        return self.default

    @cached_property
    def _names(self) -> frozenset[str]:
        return frozenset(self.endpoints)

    def to_json(self) -> dict[str, Any]:
        """The ``matrix`` object of ``report.json``: every listed pair, row-major."""
        index = {name: i for i, name in enumerate(self.endpoints)}
        pairs = sorted(self.pairs.items(), key=lambda kv: (index[kv[0][0]], index[kv[0][1]]))
        return {
            "endpoints": list(self.endpoints),
            "default": _cell_json(self.default),
            "pairs": [{"src": s, "dst": d, **_cell_json(c)} for (s, d), c in pairs if c != self.default],
        }

    def rows(self) -> list[list[MatrixCell]]:
        """Every cell, ``rows()[i][j]`` for endpoint ``i`` sending to ``j``: the shape of
        :attr:`VerificationReport.matrix`."""
        index = {name: i for i, name in enumerate(self.endpoints)}
        out = [[self.default] * len(self.endpoints) for _ in self.endpoints]
        for (src, dst), cell in self.pairs.items():
            out[index[src]][index[dst]] = cell
        return out


def read_matrix(matrix: object) -> ReachabilityMatrix:
    """Read the ``matrix`` object of a report document: schema 2 (``default`` and ``pairs``)
    or schema 1 (``rows``, every cell; reports stored before version 2 still read).

    Raises ``ValueError`` naming the place and the problem when ``matrix`` is not one (a
    missing or mistyped field, an unknown endpoint in a pair, a pair listed twice, rows of
    the wrong length).

    >>> m = read_matrix({"endpoints": ["t/a", "t/b"],
    ...                  "default": {"expected": "·", "observed": False, "status": "denied"},
    ...                  "pairs": [{"src": "t/b", "dst": "t/a", "expected": "S",
    ...                             "observed": True, "status": "allowed"}]})
    >>> m.cell("t/b", "t/a").status, m.cell("t/a", "t/b").status
    ('allowed', 'denied')
    >>> read_matrix({"endpoints": ["t/a"], "pairs": []})
    Traceback (most recent call last):
    ValueError: matrix: missing field 'default'
    """
    obj = _mapping(matrix, "matrix")
    endpoints = _field(obj, "endpoints", list, "matrix")
    for i, name in enumerate(endpoints):
        if not isinstance(name, str):
            raise ValueError(f"matrix.endpoints[{i}]: expected a string, got {_kind(name)}")
    seen: set[str] = set()
    for i, name in enumerate(endpoints):
        if name in seen:
            raise ValueError(f"matrix.endpoints[{i}]: {name} is listed twice")
        seen.add(name)
    if "pairs" not in obj and "rows" in obj:
        return _read_rows(endpoints, _field(obj, "rows", list, "matrix"))
    default = _read_cell(
        _mapping(_field(obj, "default", object, "matrix"), "matrix.default"), "matrix.default"
    )
    known = seen
    pairs: dict[tuple[str, str], MatrixCell] = {}
    first: dict[tuple[str, str], int] = {}
    for i, item in enumerate(_field(obj, "pairs", list, "matrix")):
        where = f"matrix.pairs[{i}]"
        pair = _mapping(item, where)
        src, dst = (_field(pair, end, str, where) for end in ("src", "dst"))
        for end, name in (("src", src), ("dst", dst)):
            if name not in known:
                raise ValueError(f"{where}.{end}: unknown endpoint {name!r}")
        if (src, dst) in first:
            raise ValueError(f"{where}: {src} -> {dst} is listed twice (first as pairs[{first[src, dst]}])")
        first[src, dst] = i
        pairs[src, dst] = _read_cell(pair, where)
    return ReachabilityMatrix(tuple(endpoints), default, pairs)


def _read_rows(endpoints: list[str], rows: list[Any]) -> ReachabilityMatrix:
    """A schema 1 matrix: ``rows[i][j]`` for every ordered pair."""
    if len(rows) != len(endpoints):
        raise ValueError(f"matrix.rows: {len(rows)} rows for {len(endpoints)} endpoints")
    pairs: dict[tuple[str, str], MatrixCell] = {}
    for i, (src, row) in enumerate(zip(endpoints, rows, strict=True)):
        if not isinstance(row, list) or len(row) != len(endpoints):
            size = f"{len(row)} cells" if isinstance(row, list) else _kind(row)
            raise ValueError(f"matrix.rows[{i}]: expected a list of {len(endpoints)} cells, got {size}")
        for j, (dst, item) in enumerate(zip(endpoints, row, strict=True)):
            cell = _read_cell(_mapping(item, f"matrix.rows[{i}][{j}]"), f"matrix.rows[{i}][{j}]")
            if cell != DEFAULT_CELL:
                pairs[src, dst] = cell
    return ReachabilityMatrix(tuple(endpoints), DEFAULT_CELL, pairs)


def _read_cell(obj: Mapping[str, Any], where: str) -> MatrixCell:
    return MatrixCell(
        _field(obj, "expected", str, where),
        _field(obj, "observed", bool, where),
        _field(obj, "status", str, where),
    )


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected an object, got {_kind(value)}")
    return value


def _field(obj: Mapping[str, Any], name: str, kind: type[_T], where: str) -> _T:
    """``obj[name]``, which must be a ``kind`` (``ValueError`` naming ``where`` otherwise)."""
    if name not in obj:
        raise ValueError(f"{where}: missing field {name!r}")
    value = obj[name]
    if not isinstance(value, kind):
        raise ValueError(f"{where}.{name}: expected {_KINDS[kind]}, got {_kind(value)}")
    return value


def _kind(value: object) -> str:
    """How a JSON value reads in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, Mapping):
        return "an object"
    return _KINDS.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class Found:
    """A violation as plain data: where it sorts in its property's list (the same in every
    partition of a proof), its pair, and its counterexample when one was built for it."""

    order: tuple[object, ...]
    src: str | None
    dst: str | None
    example: Counterexample | None


@dataclass
class Part:
    """One partition's share of a proof (a set of sources: plain data, it crosses processes).

    ``properties``: per property id, its counts and violations; ``observed``: per source the
    endpoints some of its new packets reach."""

    properties: dict[str, tuple[dict[str, int], list[Found]]]
    observed: dict[str, set[str]]
    findings: list[Finding]
    work: dict[str, int]
    engine: str
    #: The violations as the engine found them (BDD spaces: only in the process that proved
    #: the part; an incremental verifier rebuilds counterexamples from them when lines move).
    results: Sequence[PropertyResult] = field(default=(), compare=False, repr=False)


def part_of(
    network: Network,
    tables: Mapping[str, Sequence[Flow]],
    hs: HeaderSpace,
    results: Sequence[PropertyResult],
    findings: Sequence[Finding],
    observed: Mapping[str, set[str]],
    *,
    engine: str,
    work: Mapping[str, int],
) -> Part:
    """A partition's results with the counterexamples of its first violations of each
    property built (no later one can be among a merged report's first)."""
    props = {}
    for r in results:
        found = [
            Found(v.order, v.src, v.dst, build(network, tables, hs, v) if i < MAX_COUNTEREXAMPLES else None)
            for i, v in enumerate(r.violations)
        ]
        props[r.id] = (dict(r.checked.counts), found)
    return Part(props, {k: set(v) for k, v in observed.items()}, list(findings), dict(work), engine)


def merge_parts(
    network: Network,
    tables: Mapping[str, Sequence[Flow]],
    parts: Sequence[Part],
    started: float,
    *,
    reach: Mapping[tuple[EndpointKey, EndpointKey], tuple[Grant, ...]] | None = None,
) -> VerificationReport:
    """The report of a proof made of ``parts`` (any split of the sources gives the same one)."""
    from segctl.verifier.properties import registry_for

    reports = []
    bad: dict[str, set[str | None]] = {}
    for prop in registry_for(network):
        counts: dict[str, int] = {}
        found: list[Found] = []
        for part in parts:
            part_counts, part_found = part.properties[prop.id]
            for k, v in part_counts.items():
                counts[k] = counts.get(k, 0) + v
            found += part_found
        found.sort(key=lambda f: f.order)
        for f in found:
            if f.src is not None:
                bad.setdefault(f.src, set()).add(f.dst)
        examples = tuple(f.example for f in found[:MAX_COUNTEREXAMPLES] if f.example is not None)
        reports.append(
            PropertyReport(
                prop.id,
                prop.title,
                prop.statement,
                prop.description,
                prop.space,
                counts,
                len(found),
                examples,
            )
        )
    observed: dict[str, set[str]] = {}
    work: dict[str, int] = {}
    for part in parts:
        for src, dsts in part.observed.items():
            observed.setdefault(src, set()).update(dsts)
        for k, v in part.work.items():
            work[k] = work.get(k, 0) + v
    reach = expected_reachability(network) if reach is None else reach
    return VerificationReport(
        network=network,
        properties=reports,
        endpoints=[ep.qualified for ep in network.endpoints],
        cells=_matrix(network, observed, bad, reach),
        findings=list(parts[0].findings) if parts else [],
        flow_counts={sw: len(flows) for sw, flows in tables.items()},
        seconds=time.monotonic() - started,
        engine=parts[0].engine if parts else "",
        work=work,
        outside=outside_cells(network, observed, bad),
    )


def _matrix(
    network: Network,
    observed: Mapping[str, set[str]],
    bad: Mapping[str, set[str | None]],
    reach: Mapping[tuple[EndpointKey, EndpointKey], tuple[Grant, ...]],
) -> ReachabilityMatrix:
    """Expected vs observed per ordered pair (``bad``: per source the destinations of its
    violations), keeping the cells that differ from :data:`DEFAULT_CELL` (a pair with no
    grant, no delivery and no violation)."""
    key_of = {ep.qualified: ep.key for ep in network.endpoints}
    name_of = {key: name for name, key in key_of.items()}
    granted: dict[EndpointKey, list[str]] = {}
    for s, d in reach:
        granted.setdefault(s, []).append(name_of[d])
    pairs: dict[tuple[str, str], MatrixCell] = {}
    # A dense fabric has hundreds of thousands of cells but a handful of distinct grant
    # tuples and cells: both are looked up, not recomputed or rebuilt, per cell. Grant
    # tuples are keyed by identity; each entry holds its tuple, so no id is reused.
    kinds: dict[int, tuple[tuple[Grant, ...], str, bool]] = {}
    cells: dict[tuple[str, bool, str], MatrixCell] = {}
    default = (DEFAULT_CELL.expected, DEFAULT_CELL.observed, DEFAULT_CELL.status)
    for src_name, src_key in key_of.items():
        wrong = bad.get(src_name, set())
        seen = observed.get(src_name, set())
        # endpoints only: the outside (external:NAME) is in outside_cells
        names = {
            src_name,
            *(n for n in seen if n in key_of),
            *(n for n in wrong if n is not None and n in key_of),
        }
        names.update(granted.get(src_key, ()))
        for name in names:
            dst_key = key_of[name]
            grants = reach.get((src_key, dst_key), ())
            known = kinds.get(id(grants))
            if known is None:
                shares = any(g.kind == "shared-service" for g in grants)
                known = kinds[id(grants)] = (grants, grant_symbol(grants), shares)
            _, symbol, shared = known
            if name in wrong:
                status = "violation"
            elif src_key == dst_key:
                status = "self"
            elif shared:
                status = "shared"
            elif grants:
                status = "allowed"
            else:
                status = "denied"
            value = (symbol, name in seen, status)
            if value != default:
                cell = cells.get(value)
                if cell is None:
                    cell = cells[value] = MatrixCell(*value)
                pairs[(src_name, name)] = cell
    return ReachabilityMatrix(tuple(key_of), DEFAULT_CELL, pairs)
