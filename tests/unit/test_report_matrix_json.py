"""report.json schema 2: the reachability matrix lists only the pairs that differ from its
default cell, and :func:`read_matrix` gives back every cell of the in-memory matrix."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.mutations import MUTATIONS, Flows

from segctl.flows.compiler import compile_network
from segctl.openflow.ofctl import parse_flows
from segctl.topology.network import Network, load_network, resolve
from segctl.topology.synthetic import synthetic_intent
from segctl.verifier.report import DEFAULT_CELL, SCHEMA_VERSION, MatrixCell, VerificationReport, read_matrix
from segctl.verifier.verify import verify

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
LEAF_SPINE = EXAMPLES[[p.stem for p in EXAMPLES].index("leaf-spine")]
DEFAULT = {"expected": "·", "observed": False, "status": "denied"}


def _network(name: str) -> Network:
    if name == "synthetic-k4-t3":
        return resolve(synthetic_intent(k=4, tenants=3, endpoints=24))
    return load_network(next(p for p in EXAMPLES if p.stem == name))


def _verify(network: Network, flows: Flows | None = None) -> VerificationReport:
    if flows is None:
        flows = {n: p.flows_text().splitlines() for n, p in compile_network(network).items()}
    return verify(network, {n: parse_flows("\n".join(lines) + "\n") for n, lines in flows.items()})


def _doc(report: VerificationReport) -> dict[str, Any]:
    """The document as a reader gets it (through JSON text)."""
    doc: dict[str, Any] = json.loads(json.dumps(report.to_json()))
    return doc


def _check_v2(report: VerificationReport, doc: dict[str, Any]) -> None:
    """The schema 2 matrix of ``doc`` is exactly ``report``'s in-memory matrix."""
    assert doc["schema_version"] == SCHEMA_VERSION == 3  # the matrix is as in schema 2
    matrix = doc["matrix"]
    assert "rows" not in matrix and matrix["endpoints"] == report.endpoints
    assert matrix["default"] == DEFAULT
    index = {name: i for i, name in enumerate(report.endpoints)}
    places = [(index[p["src"]], index[p["dst"]]) for p in matrix["pairs"]]
    assert places == sorted(set(places)), "pairs are listed once each, row-major"
    for p in matrix["pairs"]:
        assert set(p) == {"src", "dst", "expected", "observed", "status"}
        assert {k: p[k] for k in DEFAULT} != DEFAULT, f"{p} is the default cell"
        i, j = index[p["src"]], index[p["dst"]]
        assert MatrixCell(p["expected"], p["observed"], p["status"]) == report.matrix[i][j]
    differing = {
        (i, j)
        for i, row in enumerate(report.matrix)
        for j, cell in enumerate(row)
        if cell != MatrixCell(DEFAULT["expected"], DEFAULT["observed"], DEFAULT["status"])
    }
    assert set(places) == differing, "every cell that differs from the default is listed"
    # expanding with the default gives every cell, every field
    read = read_matrix(matrix)
    assert list(read.endpoints) == report.endpoints and read.default == DEFAULT_CELL
    assert read.rows() == report.matrix
    for src, row in zip(report.endpoints, report.matrix, strict=True):
        for dst, cell in zip(report.endpoints, row, strict=True):
            assert read.cell(src, dst) == cell
            assert ((src, dst) in read.pairs) == (cell != DEFAULT_CELL)


@pytest.mark.parametrize("name", [*(p.stem for p in EXAMPLES), "synthetic-k4-t3"])
def test_v2_matrix_round_trips(name: str) -> None:
    network = _network(name)
    report = _verify(network)
    assert report.ok
    doc = _doc(report)
    _check_v2(report, doc)
    n = len(report.endpoints)
    pairs = doc["matrix"]["pairs"]
    assert sum(p["status"] == "self" for p in pairs) == n  # the diagonal is listed
    assert {p["status"] for p in pairs} >= {"self", "allowed"} and len(pairs) < n * n
    if name == "leaf-spine":  # denied but observed (ARP inside strict acme/app): listed
        assert {
            "src": "acme/app1",
            "dst": "acme/app2",
            "expected": "·",
            "observed": True,
            "status": "denied",
        } in pairs


@pytest.mark.parametrize(
    ("mutate", "prop"), MUTATIONS, ids=[m.__name__ for m, _ in MUTATIONS]
)  # fmt: skip
def test_violating_pairs_are_listed(mutate: Callable[[Flows], None], prop: str) -> None:
    """Each mutated leaf-spine table set: the pairs the violations name are listed with status
    ``violation``, and the whole matrix still reads back cell for cell."""
    network = load_network(LEAF_SPINE)
    flows = {n: p.flows_text().splitlines() for n, p in compile_network(network).items()}
    mutate(flows)
    report = _verify(network, flows)
    assert not report.property(prop).holds
    doc = _doc(report)
    _check_v2(report, doc)
    violating = {(p["src"], p["dst"]) for p in doc["matrix"]["pairs"] if p["status"] == "violation"}
    named = {(c.src, c.dst) for c in report.violations if c.src is not None and c.dst is not None}
    assert named and named <= violating
    expected = {
        (s, d)
        for s, row in zip(report.endpoints, report.matrix, strict=True)
        for d, c in zip(report.endpoints, row, strict=True)
        if c.status == "violation"
    }
    assert violating == expected


def test_foreign_output_shows_the_leaking_pair() -> None:
    network = load_network(LEAF_SPINE)
    flows = {n: p.flows_text().splitlines() for n, p in compile_network(network).items()}
    flows["leaf1"].insert(0, "table=0,priority=60000,in_port=11,ip,actions=output:10")
    doc = _doc(_verify(network, flows))
    leak = [p for p in doc["matrix"]["pairs"] if (p["src"], p["dst"]) == ("globex/gweb1", "acme/web1")]
    assert leak == [
        {"src": "globex/gweb1", "dst": "acme/web1", "expected": "·", "observed": True, "status": "violation"}
    ]


def test_schema_1_rows_still_read() -> None:
    """A report stored before version 2 (``rows``, every cell) reads to the same cells."""
    network = load_network(LEAF_SPINE)
    report = _verify(network)
    rows = [
        [{"expected": c.expected, "observed": c.observed, "status": c.status} for c in r]
        for r in report.matrix
    ]
    read = read_matrix({"endpoints": report.endpoints, "rows": rows})
    assert read.rows() == report.matrix and read.default == DEFAULT_CELL
    assert read.pairs == read_matrix(_doc(report)["matrix"]).pairs


def _v2(**changes: Any) -> dict[str, Any]:
    matrix: dict[str, Any] = {
        "endpoints": ["t/a", "t/b"],
        "default": dict(DEFAULT),
        "pairs": [{"src": "t/a", "dst": "t/a", "expected": "·", "observed": True, "status": "self"}],
    }
    matrix.update(changes)
    return matrix


def _pair(**changes: Any) -> dict[str, Any]:
    pair: dict[str, Any] = {
        "src": "t/a",
        "dst": "t/b",
        "expected": "S",
        "observed": True,
        "status": "allowed",
    }
    pair.update(changes)
    return {k: v for k, v in pair.items() if v is not None}


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ([], "matrix: expected an object, got a list"),
        ({"default": DEFAULT, "pairs": []}, "matrix: missing field 'endpoints'"),
        (_v2(endpoints="t/a"), "matrix.endpoints: expected a list, got string 't/a'"),
        (_v2(endpoints=["t/a", 3]), "matrix.endpoints[1]: expected a string, got number 3"),
        (_v2(endpoints=["t/a", "t/b", "t/a"]), "matrix.endpoints[2]: t/a is listed twice"),
        ({"endpoints": ["t/a"], "pairs": []}, "matrix: missing field 'default'"),
        (_v2(default=None), "matrix.default: expected an object, got null"),
        (_v2(default={"expected": "·", "status": "denied"}), "matrix.default: missing field 'observed'"),
        ({"endpoints": ["t/a"], "default": DEFAULT}, "matrix: missing field 'pairs'"),
        (_v2(pairs={"t/a": []}), "matrix.pairs: expected a list, got an object"),
        (_v2(pairs=["t/a -> t/b"]), "matrix.pairs[0]: expected an object, got string 't/a -> t/b'"),
        (_v2(pairs=[_pair(src=None)]), "matrix.pairs[0]: missing field 'src'"),
        (_v2(pairs=[_pair(), _pair(dst="t/zz")]), "matrix.pairs[1].dst: unknown endpoint 't/zz'"),
        (_v2(pairs=[_pair(src="x")]), "matrix.pairs[0].src: unknown endpoint 'x'"),
        (_v2(pairs=[_pair(status=None)]), "matrix.pairs[0]: missing field 'status'"),
        (_v2(pairs=[_pair(expected=None)]), "matrix.pairs[0]: missing field 'expected'"),
        (_v2(pairs=[_pair(observed="yes")]), "matrix.pairs[0].observed: expected true or false, got string"),
        (_v2(pairs=[_pair(observed=1)]), "matrix.pairs[0].observed: expected true or false, got number 1"),
        (_v2(pairs=[_pair(status=3)]), "matrix.pairs[0].status: expected a string, got number 3"),
        (_v2(pairs=[_pair(), _pair()]), "matrix.pairs[1]: t/a -> t/b is listed twice (first as pairs[0])"),
        ({"endpoints": ["t/a", "t/b"], "rows": [[DEFAULT, DEFAULT]]}, "matrix.rows: 1 rows for 2 endpoints"),
        (
            {"endpoints": ["t/a", "t/b"], "rows": [[DEFAULT, DEFAULT], [DEFAULT]]},
            "matrix.rows[1]: expected a list of 2 cells, got 1 cells",
        ),
        (
            {"endpoints": ["t/a", "t/b"], "rows": [[DEFAULT, DEFAULT], [DEFAULT, {"status": "x"}]]},
            "matrix.rows[1][1]: missing field 'expected'",
        ),
    ],
)
def test_reader_rejects_malformed_matrices(matrix: object, message: str) -> None:
    with pytest.raises(ValueError) as err:
        read_matrix(matrix)
    assert str(err.value).startswith(message), str(err.value)


def test_reader_cell_lookup() -> None:
    read = read_matrix(_v2(pairs=[_pair()]))
    assert read.cell("t/a", "t/b") == MatrixCell("S", True, "allowed")
    assert read.cell("t/b", "t/a") == DEFAULT_CELL
    with pytest.raises(ValueError, match="matrix: unknown endpoint 't/zz'"):
        read.cell("t/a", "t/zz")
    assert read.rows() == [[DEFAULT_CELL, MatrixCell("S", True, "allowed")], [DEFAULT_CELL, DEFAULT_CELL]]
