"""The intent analysis in reports: ``analysis`` in report.json, its Markdown and HTML sections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segctl.flows.compiler import compile_network
from segctl.openflow.ofctl import parse_flows
from segctl.reports import html, markdown
from segctl.reports.analysis import ROWS_SHOWN
from segctl.topology.exposure import analyse
from segctl.topology.network import Network, load_network, resolve
from segctl.topology.synthetic import synthetic_intent
from segctl.verifier.report import VerificationReport
from segctl.verifier.verify import verify

ROOT = Path(__file__).resolve().parents[2]


def _report(network: Network) -> VerificationReport:
    tables = {sw: parse_flows(p.flows_text(), source=sw) for sw, p in compile_network(network).items()}
    return verify(network, tables)


@pytest.fixture(scope="module")
def leaf_spine() -> VerificationReport:
    return _report(load_network(ROOT / "examples" / "leaf-spine.yaml"))


@pytest.fixture(scope="module")
def pivot() -> VerificationReport:
    """The shared-dns scenario intent: its provider shares a segment (two cross-tenant paths)."""
    return _report(load_network(ROOT / "segctl" / "mininet_scenarios" / "intents" / "shared-dns.yaml"))


def test_report_json_carries_the_analysis(leaf_spine: VerificationReport) -> None:
    doc = json.loads(json.dumps(leaf_spine.to_json()))
    assert doc["analysis"] == analyse(leaf_spine.network).to_json()
    assert doc["analysis"]["graph"] == {"endpoints": 8, "edges": 17, "classes": 5}
    assert doc["analysis"]["cross_tenant_paths"] == []
    assert doc["analysis"]["blast_radius"][0] == {"endpoint": "acme/web1", "per_hop": [4, 1], "total": 5}
    assert doc["schema_version"] == 3  # an added object: readers of the matrix and properties are unaffected


def test_a_clean_intent_says_none(leaf_spine: VerificationReport) -> None:
    md = markdown.render_markdown(leaf_spine)
    section = md[md.index("## Intent analysis") : md.index("## Violations")]
    assert "**Cross-tenant paths**: none; every tenant reaches other tenants only over its" in section
    assert "8 endpoints, 17 allowed connections" in section
    assert "| acme/web1 | 4, 1 | 5 |" in section and "| infra/dns1 | - | 0 |" in section
    page = html.render_html(leaf_spine)
    assert "<section><h2>Intent analysis</h2>" in page
    assert "<b>Cross-tenant paths</b>: <span class='ok'>none</span>" in page
    assert "<tr><td>acme/web1</td><td>4, 1</td><td>5</td></tr>" in page


def test_cross_tenant_paths_are_listed(pivot: VerificationReport) -> None:
    assert pivot.ok  # the tables implement the intent faithfully: the finding is about the intent
    paths = pivot.to_json()["analysis"]["cross_tenant_paths"]
    assert [(p["tenant"], p["target"], p["sources"]) for p in paths] == [
        ("red", "infra/ntp1", 2),
        ("blue", "infra/ntp1", 1),
    ]
    md = markdown.render_markdown(pivot)
    assert (
        "| red | infra/ntp1 | 2 | red/r1 -[shared-service dns]-> infra/dns1 -[intra-segment svc]-> "
        "infra/ntp1 |"
    ) in md
    page = html.render_html(pivot)
    assert "<b>Cross-tenant paths</b>: <span class='bad'>2</span>" in page
    assert "blue/b1 -[shared-service dns]-&gt; infra/dns1 -[intra-segment svc]-&gt; infra/ntp1" in page


def test_long_tables_show_the_largest_rows_and_count_the_rest() -> None:
    analysis = analyse(resolve(synthetic_intent(k=4, tenants=3, endpoints=30)))
    assert len(analysis.blast_radius) == 32 > ROWS_SHOWN
    lines = markdown._analysis(analysis)
    assert sum(line.startswith("| t0") or line.startswith("| shared/") for line in lines) == ROWS_SHOWN
    assert lines[-1] == f"\n({32 - ROWS_SHOWN} more endpoints in `report.json`.)"
    assert f"{32 - ROWS_SHOWN} more endpoints in report.json." in html._analysis(analysis)
