"""Scenario reports (``report.html``, ``report.md``, ``verification.html``) from real data.

No Mininet here: the run result is built from the leaf-spine scenario intent, its real
probe plan, the intent's expectations, the verifier's simulator on the compiled tables
(the predicted matrix) and :func:`segctl.verifier.verify.verify` on those tables (with a
leak rule for the failing case). One probe is flipped to make a disagreement.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from segctl.flows.compiler import compile_network
from segctl.mininet_scenarios.predict import load_predictor
from segctl.mininet_scenarios.probes import expected_outcome, plan_probes
from segctl.mininet_scenarios.report import VERIFICATION_HTML, markdown, render_html, write_reports
from segctl.mininet_scenarios.report_model import UNADDRESSABLE_REASON, grid
from segctl.mininet_scenarios.runner import Check, MatrixPhase, ProbeRow, RunResult
from segctl.mininet_scenarios.scenarios import intent_path
from segctl.openflow.ofctl import Flow, parse_flows
from segctl.topology.network import Network, load_network
from segctl.verifier.verify import verify

INTENT = intent_path("leaf-spine.yaml")
#: globex/gweb1 (leaf1:11) straight to acme/web1 (leaf1:10): a cross-tenant leak.
LEAK = "table=0,priority=60000,in_port=11,ip,actions=output:10"


def _tables(network: Network, *, leak: bool) -> dict[str, list[Flow]]:
    out = {}
    for name, prog in compile_network(network).items():
        text = (LEAK + "\n" if leak and name == "leaf1" else "") + prog.flows_text()
        out[name] = parse_flows(text, source=name)
    return out


def _result(*, leak: bool = False, flip: bool = False) -> RunResult:
    network = load_network(INTENT)
    tables = _tables(network, leak=leak)
    predictor, why = load_predictor(network, tables)
    assert predictor is not None, why
    plan = plan_probes(network)
    rows = [
        ProbeRow(p, expected_outcome(network, p), expected_outcome(network, p), predictor(p))
        for p in plan.probes
    ]
    if flip:  # the first allowed probe is observed dropped
        i = next(i for i, r in enumerate(rows) if r.expected)
        rows[i] = ProbeRow(rows[i].probe, False, True, rows[i].predicted, "timeout")
    web1 = network.endpoint("acme", "web1").key
    bystanders = tuple(r for r in rows if web1 not in (r.probe.src, r.probe.dst))
    report = verify(network, tables)
    return RunResult(
        "leaf-spine",
        "three tenants",
        str(INTENT),
        "mnabc",
        rules_source="static ovs-ofctl bundle (requested)",
        phases=[
            MatrixPhase("baseline", tuple(rows), "", 3.0),
            MatrixPhase("during flood", bystanders, "", 1.0),
        ],
        checks=[
            Check("forged source MAC dropped", True, "captured nowhere"),
            Check("meter drops", not flip, "x"),
        ],
        unaddressable=[f"{'/'.join(a)} -> {'/'.join(b)}" for a, b in plan.unaddressable],
        verification={"available": True, "report": report.to_json()},
        seconds=12.5,
        network=network,
        verification_report=report,
    )


@pytest.fixture(scope="module")
def clean() -> RunResult:
    return _result()


@pytest.fixture(scope="module")
def broken() -> RunResult:
    return _result(leak=True, flip=True)


def _cell_classes(page: str) -> set[str]:
    return set(re.findall(r"<td class='c-([a-z-]+)'", page))


def test_clean_run_passes_and_page_has_topology_svg_and_no_raw_json(clean: RunResult) -> None:
    assert clean.passed
    page = render_html(clean, verification_html=VERIFICATION_HTML)
    assert '<header class="pass"><h1>Scenario leaf-spine — PASS' in page
    assert page.count("<svg") == 1 and "tenant globex" in page  # the verifier's topology picture
    for fact in ("static ovs-ofctl bundle (requested)", "mnabc", "12.5 s", str(INTENT)):
        assert fact in page
    assert '"schema_version"' not in page and "<pre>" not in page  # no JSON dump any more
    # self-contained: no external script, stylesheet or image
    assert not re.search(r"<script|<link|src=['\"]?http|@import", page)
    assert _cell_classes(page) == {"allowed", "denied", "not-probed", "self"}


def test_not_probed_cells_are_marked_with_their_reason(clean: RunResult) -> None:
    assert clean.network is not None
    names = [ep.qualified for ep in clean.network.endpoints]
    baseline, flood = clean.phases
    cells = grid(clean, baseline, names)
    assert cells["acme/web1", "globex/gweb1"].kind == "not-probed"
    assert cells["acme/web1", "globex/gweb1"].reason == UNADDRESSABLE_REASON
    assert cells["acme/web1", "acme/web1"].kind == "self"
    assert cells["acme/app1", "acme/db1"].kind == "allowed" and cells["acme/app1", "acme/db1"].passed
    assert cells["acme/db1", "acme/web1"].kind == "denied"
    # the flood phase left acme/web1 out: its row says so instead of staying blank
    assert grid(clean, flood, names)["acme/web1", "acme/app1"].reason == "not probed in this phase"
    page = render_html(clean)
    assert f"not probed: {UNADDRESSABLE_REASON}" in page and "not probed: not probed in this phase" in page
    assert "<td class='c-'" not in page and "<td class=''" not in page  # no unclassified cell
    md = markdown(clean)
    assert f"not probed: {UNADDRESSABLE_REASON}" in md and "|  |" not in md


def test_property_table_and_link_to_verifier_page(clean: RunResult, tmp_path: Path) -> None:
    paths = write_reports(clean, tmp_path)
    assert set(paths) == {"json", "md", "html", "verification_html"}
    assert paths["verification_html"].name == VERIFICATION_HTML
    full = paths["verification_html"].read_text()
    assert "segctl verification report" in full and "<svg" in full
    page = paths["html"].read_text()
    assert f"href='{VERIFICATION_HTML}'" in page
    assert f"]({VERIFICATION_HTML})" in paths["md"].read_text()
    for pid in ("isolation", "conformance", "allowed-delivered", "spoof-guard", "loop-free", "commit-safety"):
        assert f"<td class='mono'>{pid}</td>" in page
    assert "all headers × all ct states" in page and "cross-tenant deliveries" in page
    doc = json.loads(paths["json"].read_text())  # the existing keys stay
    assert {"scenario", "verdict", "phases", "checks", "unaddressable_pairs", "live_verification"} <= set(doc)
    assert doc["live_verification"]["report"]["ok"] is True


def test_failing_run_spells_out_disagreements_and_counterexamples(broken: RunResult, tmp_path: Path) -> None:
    assert not broken.passed
    page = write_reports(broken, tmp_path)["html"].read_text()
    assert '<header class="fail"><h1>Scenario leaf-spine — FAIL' in page
    assert "check failed: meter drops" in page and "violation(s) on the flows dumped at the end" in page
    assert "disagree" in _cell_classes(page)
    assert "observed drop, expected pass, predicted pass" in page  # the flipped probe, three values
    assert "observed pass, expected pass, predicted drop" in page  # what the leak does to the prediction
    # the counterexample: packet, hop trace with the leak rule, disposition
    assert "<h3>Tenant isolation #1</h3>" in page and "Hop trace" in page
    assert "in_port=11,eth_type=0x0800" in page and "delivered to acme/web1" in page
    md = markdown(broken)
    assert "**✗**" in md and "### Tenant isolation #1" in md and "| hop | switch |" in md


def test_no_verification_says_why() -> None:
    result = RunResult("x", "t", "i.yaml", "mnabc", error="TimeoutError: rules never arrived")
    page = render_html(result)
    assert "NOT RUN" in page and "the scenario stopped before the end" in page
    assert "no matrix phase ran" in page and "TimeoutError" in page
    assert "Not run" in markdown(result)
