"""The outside's table in the reports: one row per endpoint on small fabrics; past the
limit, the endpoints of a segment whose cells read the same share a row, and an endpoint
with a violation keeps its own."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from support.agreement import compiled_lines
from support.random_tables import parse_tables

from segctl.reports.html import render_html
from segctl.reports.markdown import render_markdown
from segctl.reports.matrix import outside_table
from segctl.topology.network import load_network
from segctl.verifier.report import VerificationReport
from segctl.verifier.verify import verify

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "internet.yaml"


def _report() -> VerificationReport:
    network = load_network(EXAMPLE)
    return verify(network, parse_tables(compiled_lines(network)))


def test_small_fabrics_get_a_row_per_endpoint_big_ones_per_segment() -> None:
    report = _report()
    _, rows, hidden = outside_table(report)
    assert [(r.name, r.public, r.count) for r in rows] == [
        ("acme/web1", "198.51.100.20", 1),
        ("acme/app1", "198.51.100.10", 1),
        ("acme/app2", "198.51.100.10", 1),
        ("globex/gweb1", "198.51.100.11", 1),
        ("globex/gweb2", "198.51.100.11", 1),
    ]
    assert hidden == 0

    _, rows, hidden = outside_table(report, limit=3)
    assert [(r.name, r.public, r.count) for r in rows] == [
        ("acme/web1", "198.51.100.20", 1),
        ("acme/app (2 endpoints)", "198.51.100.10", 2),
        ("globex/web (2 endpoints)", "198.51.100.11", 2),
    ]
    outside = render_markdown(report, endpoint_limit=3).split("### The outside")[1].split("\n#")[0]
    assert "| acme/app (2 endpoints) | 198.51.100.10 |" in outside and "| acme/app1 |" not in outside
    assert "<th>acme/app (2 endpoints)</th>" in render_html(report, endpoint_limit=3)


def test_an_endpoint_with_a_violation_keeps_its_own_row_first() -> None:
    report = _report()
    cells = [
        dataclasses.replace(c, egress=dataclasses.replace(c.egress, status="violation"))
        if c.endpoint == "acme/app2"
        else c
        for c in report.outside
    ]
    report.outside = cells
    _, rows, _ = outside_table(report, limit=1)
    assert [r.name for r in rows] == ["acme/app2", "acme/web1", "acme/app1", "globex/web (2 endpoints)"]
