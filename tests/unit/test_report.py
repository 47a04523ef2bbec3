"""Reports: versioned JSON, Markdown, self-contained HTML; ``segctl verify`` exit codes and files."""

from __future__ import annotations

import importlib
import itertools
import json
import re
from pathlib import Path

import pytest
from support.reports import write_leaf_spine as _write

from segctl.cli import main
from segctl.openflow.tables import load_flow_dir
from segctl.reports.html import SWITCH_SPACING, layout, render_html, topology_svg
from segctl.reports.markdown import render_markdown
from segctl.reports.matrix import segment_matrix
from segctl.topology.network import load_network, resolve
from segctl.topology.synthetic import synthetic_intent
from segctl.verifier.report import SCHEMA, SCHEMA_VERSION, VerificationReport, read_matrix
from segctl.verifier.verify import verify

cli_verify = importlib.import_module("segctl.cli.verify")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "leaf-spine.yaml"


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, VerificationReport]:
    flows = _write(tmp_path_factory.mktemp("leaky"), leak=True)
    network = load_network(EXAMPLE)
    return flows, verify(network, load_flow_dir(network, flows))


def test_json_schema_is_versioned_and_complete(leaky: tuple[Path, VerificationReport]) -> None:
    _, report = leaky
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["schema"] == SCHEMA and doc["schema_version"] == SCHEMA_VERSION == 3
    assert doc["engine"]["name"] == "wavefront" and "paths" not in doc["engine"] and doc["engine"]["work"]
    assert doc["ok"] is False and doc["summary"]["violations"] >= 1
    assert set(doc) >= {"generated", "network", "tables", "engine", "findings", "properties", "matrix"}
    iso = next(p for p in doc["properties"] if p["id"] == "isolation")
    assert iso["holds"] is False and iso["checked"]["header_space"]
    cx = iso["violations"][0]
    assert cx["src"] == "globex/gweb1" and cx["disposition"]["kind"] == "delivered"
    assert cx["trace"][0]["priority"] == 60000 and cx["trace"][0]["cookie"] == "0x0"
    assert (
        "tcp_dst=" in cx["replay"]["ofproto_trace_flow"]
        and "tp_dst" not in cx["replay"]["ofproto_trace_flow"]
    )
    assert doc["matrix"]["endpoints"] == [ep.qualified for ep in report.network.endpoints]
    assert doc["matrix"]["default"] == {"expected": "·", "observed": False, "status": "denied"}
    assert read_matrix(doc["matrix"]).rows() == report.matrix  # every cell, read back
    statuses = {p["status"] for p in doc["matrix"]["pairs"]}
    assert statuses == {"allowed", "denied", "shared", "violation", "self"}
    # a denied pair is listed only when it differs from the default: here ARP inside strict acme/app
    denied = [p for p in doc["matrix"]["pairs"] if p["status"] == "denied"]
    assert {(p["src"], p["dst"], p["observed"]) for p in denied} == {
        ("acme/app1", "acme/app2", True),
        ("acme/app2", "acme/app1", True),
    }


def test_markdown_and_html(leaky: tuple[Path, VerificationReport]) -> None:
    _, report = leaky
    md = render_markdown(report)
    assert "**FAIL**" in md and "## Reachability matrix" in md and "Tenant isolation #1" in md
    html = render_html(report)
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and 'class="s-violation"' in html
    # self-contained: no scripts, no external resources
    assert "<script" not in html and "<link" not in html
    assert not re.search(r"(src|href)=\"?https?:", html)
    for ep in report.network.endpoints:
        assert ep.qualified in html


def test_reports_say_where_ipv6_goes_under_the_matrix(leaky: tuple[Path, VerificationReport]) -> None:
    """An intent with IPv6 gets one sentence on where it goes (the leaf-spine example declares
    no ipv6, so its reports have none)."""
    from segctl.flows.compiler import compile_network
    from segctl.openflow.ofctl import parse_flows

    intents = EXAMPLE.parents[1] / "segctl" / "mininet_scenarios" / "intents"
    network = load_network(intents / "strict-segment.yaml")
    tables = {sw: parse_flows(p.flows_text()) for sw, p in compile_network(network).items()}
    report = verify(network, tables)
    sentence = (
        "IPv6 goes between the IPv6 endpoints of one segment, and between segments that both "
        "have a gateway6 (routed, global addresses; across tenants a shared service), under the "
        "same grants as IPv4 (a letter holds for both families there; elsewhere for IPv4 "
        "only): lab/open (o1, o2); lab/locked (k1, k2, strict)."
    )
    assert sentence in render_markdown(report) and sentence in render_html(report)
    _, plain = leaky
    assert "IPv6" not in render_markdown(plain)


def test_big_fabrics_get_the_matrix_per_segment(leaky: tuple[Path, VerificationReport]) -> None:
    """Past the endpoint limit the Markdown and HTML matrices have one cell per ordered pair of
    segments, counting the endpoint pairs per status; the violating pair's segments show it."""
    _, report = leaky
    segment = {ep.qualified: f"{ep.tenant}/{ep.segment}" for ep in report.network.endpoints}
    segments, cells = segment_matrix(report)
    assert segments == list(dict.fromkeys(segment[e] for e in report.endpoints))
    n = len(report.endpoints)
    assert sum(c.pairs for row in cells for c in row) == n * n
    bad = {
        (segment[s], segment[d])
        for s, row in zip(report.endpoints, report.matrix, strict=True)
        for d, c in zip(report.endpoints, row, strict=True)
        if c.status == "violation"
    }
    assert ("globex/web", "acme/web") in bad  # the leak: gweb1's port straight to web1's
    flagged = {
        (a, b) for a, row in zip(segments, cells, strict=True) for b, c in zip(segments, row, strict=True)
        if c.status == "violation"
    }  # fmt: skip
    assert flagged == bad

    html = render_html(report, endpoint_limit=2)
    matrix = html[html.index("<h2>Reachability matrix</h2>") : html.index("<h2>Intent analysis</h2>")]
    assert matrix.count("<td ") == len(segments) ** 2 and "report.json holds every endpoint pair" in matrix
    assert matrix.count('<td class="s-violation"') == len(bad) and "globex/web → acme/web" in matrix
    assert all(ep.qualified not in matrix for ep in report.network.endpoints if ep.qualified not in segments)
    assert len(html) < len(render_html(report))
    md = render_markdown(report, endpoint_limit=2)
    table = md[md.index("## Reachability matrix") : md.index("## Intent analysis")]
    assert "| from \\ to | " + " | ".join(segments) + " |" in table
    assert table.count("| **") == len(bad) and table.count(" violation") == len(bad)


def test_layout_puts_spines_above_leaves_and_endpoints_below() -> None:
    network = load_network(EXAMPLE)
    switches, endpoints, height = layout(network)
    assert switches["spine1"][1] < switches["leaf1"][1] == switches["leaf3"][1]
    assert all(y > switches["leaf1"][1] for _, y in endpoints.values()) and height > max(
        y for _, y in endpoints.values()
    )
    assert len(endpoints) == len(network.endpoints)


def test_big_fabric_picture_is_wide_enough_and_shows_tenants_per_switch() -> None:
    """Fat-tree k=4 with 120 endpoints: no two switches overlap (the picture widens), each
    edge switch shows one bar split by tenant instead of 15 endpoints, the legend wraps."""
    network = resolve(synthetic_intent(k=4, tenants=10, endpoints=120))
    svg = topology_svg(network)
    width = int(re.search(r'<svg [^>]*width="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    assert width >= SWITCH_SPACING * 8  # 8 edge (and 8 aggregation) switches side by side
    switches, endpoints, _ = layout(network, width=width)
    xs = sorted(x for name, (x, _) in switches.items() if name.startswith("edge"))
    assert min(b - a for a, b in itertools.pairwise(xs)) >= 88  # a switch box is 88 wide
    assert endpoints == {}  # 15 per edge switch: drawn as bars
    bars = re.findall(r"<title>([\w-]+): tenant ([\w]+), (\d+) endpoints?</title>", svg)
    per_switch: dict[str, int] = {}
    for sw, _, n in bars:
        per_switch[sw] = per_switch.get(sw, 0) + int(n)
    expected: dict[str, int] = {}
    for ep in network.endpoints:
        expected[ep.switch] = expected.get(ep.switch, 0) + 1
    assert per_switch == expected
    legend = re.findall(r'<text x="(\d+)" y="(\d+)">tenant ', svg)
    assert len(legend) == len(network.tenants) and all(int(x) < width for x, _ in legend)
    assert len({y for _, y in legend}) > 1  # 11 tenants do not fit one row of 1,100 px


def test_cli_exit_codes_and_report_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = _write(tmp_path / "clean")
    assert main(["verify", str(EXAMPLE), "--flows", str(clean), "--report", str(tmp_path / "r")]) == 0
    assert "all properties hold" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["report.html", "report.json", "report.md"]
    assert json.loads((tmp_path / "r" / "report.json").read_text())["ok"] is True

    leaky = _write(tmp_path / "leaky", leak=True)
    monkeypatch.setattr(cli_verify, "PROGRESS_AFTER_S", 0.0)  # progress at once, however fast the run
    assert main(["verify", str(EXAMPLE), "--flows", str(leaky), "-o", "json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["ok"] is False
    assert "segctl verify:" in captured.err and "segctl verify:" not in captured.out

    (leaky / "leaf1.flows").write_text("table=0,priority=1,actions=resubmit(,3)\n")
    assert main(["verify", str(EXAMPLE), "--flows", str(leaky)]) == 2
    err = capsys.readouterr().err
    assert "leaf1.flows" in err and "resubmit" in err and "Traceback" not in err

    (leaky / "leaf1.flows").unlink()
    assert main(["verify", str(EXAMPLE), "--flows", str(leaky)]) == 2
    assert "leaf1.flows: missing" in capsys.readouterr().err
    (leaky / "ghost.flows").write_text("")
    assert main(["verify", str(EXAMPLE), "--flows", str(leaky)]) == 2
    assert "switches the intent does not have: ghost" in capsys.readouterr().err
