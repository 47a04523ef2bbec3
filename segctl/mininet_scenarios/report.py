"""Scenario reports: ``report.json`` (stable schema), ``report.md``, ``report.html`` and the
verifier's own ``verification.html`` next to them.

Both human reports have the same sections: verdict and run facts (and, on failure, why),
the topology, per phase the three-way matrix (observed / expected / predicted, cells
classified by :mod:`segctl.mininet_scenarios.report_model`) with its disagreements, the
scenario checks, and the live verification as a property table with every counterexample
packet and its hop trace. The HTML page is in :mod:`segctl.mininet_scenarios.report_html`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from segctl.mininet_scenarios.report_html import render_html
from segctl.mininet_scenarios.report_model import (
    NOT_PREDICTED_REASON,
    endpoint_names,
    failure_reasons,
    grid,
    outcome,
    probed_services,
    verification_doc,
)
from segctl.mininet_scenarios.runner import MatrixPhase, RunResult
from segctl.reports.html import render_html as verification_page

__all__ = ["VERIFICATION_HTML", "markdown", "render_html", "write_reports"]

#: File name of the verifier's own HTML report, written next to ``report.html``.
VERIFICATION_HTML = "verification.html"

_LEGEND = (
    "Rows send, columns receive. A cell lists the services that passed live when observed, "
    "expected (intent) and predicted (verifier's simulator on the live flows) agree: `all N` = "
    "every probed service; `denied` = all three say nothing passes; **✗** = disagreement, with "
    "the three outcomes spelled out; `not probed (…)` = no probe ran, with the reason; — = self; "
    f"◇ = not predicted ({NOT_PREDICTED_REASON}), observed and expected still agree."
)


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _phase_md(result: RunResult, phase: MatrixPhase, names: list[str]) -> list[str]:
    cells = grid(result, phase, names)
    services = probed_services(phase)
    out = ["", f"## Phase {phase.name}: {'all three agree' if phase.agree else '**DISAGREE**'}", ""]
    out.append(
        f"{len(phase.rows)} probes in {phase.seconds:.1f} s; services per pair: {', '.join(services)}. "
        f"Passed: observed {sum(r.observed for r in phase.rows)}, expected "
        f"{sum(r.expected for r in phase.rows)}, predicted {sum(1 for r in phase.rows if r.predicted)}; "
        f"not predicted {phase.unpredicted}."
    )
    if phase.predictor:
        out += ["", f"**Predicted matrix unavailable**: {_md(phase.predictor)}"]
    out += ["", _LEGEND, "", "| from \\ to | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for src in names:
        row = []
        for dst in names:
            cell = cells[src, dst]
            text = cell.summary(len(services))
            if cell.kind == "disagree":
                text = "; ".join(
                    f"**✗** {' '.join(svcs)}: {triple}" for triple, svcs in cell.disagreement_groups()
                )
            if cell.unpredicted:
                text += f" ◇ not predicted: {cell.unpredicted_text(len(services))}"
            row.append(_md(text))
        out.append(f"| {src} | " + " | ".join(row) + " |")
    bad = [r for r in phase.rows if not r.agree]
    if bad:
        out += ["", "| probe | observed | expected | predicted | error |", "|---|---|---|---|---|"]
        out += [
            f"| {r.probe.describe()} | {outcome(r.observed)} | {outcome(r.expected)} | "
            f"{outcome(r.predicted)} | {_md(r.error)} |"
            for r in bad
        ]
    return out


def _counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items())


def _verification_md(result: RunResult, verification_html: str | None) -> list[str]:
    out = ["", "## Live verification", ""]
    doc = verification_doc(result)
    if doc is None:
        reason = result.verification.get("reason") if result.verification else None
        return [*out, f"Not run: {reason or 'the scenario stopped before the end'}."]
    summary = doc.get("summary", {})
    verdict = "**every property holds**" if result.live_verified else "**VIOLATED**"
    flows = doc.get("tables", {}).get("flow_counts", {})
    out.append(
        f"`segctl.verifier.verify` on the {sum(flows.values())} flows dumped from {len(flows)} switches "
        f"at the end of the run: {verdict} "
        f"({summary.get('holding', '?')}/{summary.get('properties', '?')} hold, "
        f"{summary.get('violations', '?')} violation(s)); generated {doc.get('generated', '?')}."
    )
    if verification_html:
        out += [
            "",
            f"The verifier's full report (matrix, topology, traces): "
            f"[{verification_html}]({verification_html})",
        ]
    out += ["", "| id | property | verdict | header space checked | counts |", "|---|---|---|---|---|"]
    for p in doc.get("properties", []):
        checked = p.get("checked", {})
        verdict = "holds" if p.get("holds") else f"**{p.get('violation_count', '?')} violation(s)**"
        out.append(
            f"| {p.get('id')} | {_md(p.get('title'))} | {verdict} | {_md(checked.get('header_space', ''))}: "
            f"{_md(checked.get('description', ''))} | {_md(_counts(checked.get('counts', {})))} |"
        )
    for p in doc.get("properties", []):
        for n, cx in enumerate(p.get("violations", []), 1):
            ingress = cx.get("ingress", {})
            out += ["", f"### {p.get('title')} #{n}", "", _md(cx.get("message", "")), ""]
            out.append(
                f"Injected at `{ingress.get('switch')}:{ingress.get('port')}`: "
                + ", ".join(f"`{k}={v}`" for k, v in cx.get("packet", {}).items())
            )
            out += [
                "",
                "| hop | switch | table | priority | intent | match | actions | ct |",
                "|---" * 8 + "|",
            ]
            for i, h in enumerate(cx.get("trace", []), 1):
                prio = h.get("priority", -1)
                out.append(
                    f"| {i} | {h.get('switch')} | {h.get('table')} | {prio if prio >= 0 else 'miss'} | "
                    f"{_md(h.get('intent', ''))} | `{_md(h.get('match') or '(any)')}` | "
                    f"`{_md(h.get('actions', ''))}` | {h.get('ct_state', '')} |"
                )
            out += ["", f"Disposition: **{_md(cx.get('disposition', {}).get('text', '?'))}**"]
        more = p.get("violation_count", 0) - len(p.get("violations", []))
        if more > 0:
            out += ["", f"({more} more violations of {p.get('title')} not shown.)"]
    return out


def markdown(result: RunResult, *, verification_html: str | None = None) -> str:
    """The report as Markdown; ``verification_html`` names the verifier's page to link."""
    verdict = "PASS" if result.passed else "FAIL"
    out = [
        f"# Scenario {result.scenario}: {verdict}",
        "",
        result.title,
        "",
        "| | |",
        "|---|---|",
        f"| verdict | **{verdict}** |",
        f"| intent | `{result.intent}` |",
        f"| rules source | {_md(result.rules_source or '?')} |",
        f"| run prefix | `{result.prefix}` |",
        f"| duration | {result.seconds:.1f} s |",
        f"| phases | {len(result.phases)} ({sum(p.agree for p in result.phases)} agree three ways) |",
        f"| checks | {len(result.checks)} ({sum(c.passed for c in result.checks)} pass) |",
        f"| live verification | {'holds' if result.live_verified else 'does not hold / not run'} |",
    ]
    reasons = failure_reasons(result)
    if reasons:
        out += ["", "Why it failed:", ""] + [f"- {_md(r)}" for r in reasons]
    if result.network is not None:
        net = result.network
        out += ["", "## Topology", ""]
        out.append(
            f"{len(net.switches)} switches ({', '.join(s.name for s in net.switches)}), "
            f"{len(net.links)} fabric links ("
            + ", ".join(f"{a}:{ap}–{b}:{bp}" for a, ap, b, bp in net.links)
            + ")."
        )
        out += [""] + [
            f"- tenant **{t.name}**: "
            + ", ".join(
                f"{ep.name} {ep.ip} @ {ep.switch}:{ep.port}" for ep in net.endpoints if ep.tenant == t.name
            )
            for t in net.tenants
        ]
    names = endpoint_names(result)
    for phase in result.phases:
        out += _phase_md(result, phase, names)
    if result.checks:
        out += ["", "## Scenario checks", "", "| check | verdict | detail |", "|---|---|---|"]
        out += [
            f"| {_md(c.name)} | {'pass' if c.passed else '**FAIL**'} | {_md(c.detail)} |"
            for c in result.checks
        ]
    if result.unaddressable:
        out += [
            "",
            "Pairs not probed by address (the destination's address also belongs to the source's own "
            "tenant; crafted frames in the `attacker` scenario cover them): "
            + ", ".join(result.unaddressable),
        ]
    out += _verification_md(result, verification_html)
    return "\n".join(out) + "\n"


def write_reports(result: RunResult, directory: Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md``, ``report.html`` and, when the verifier ran on the
    live flows, its own ``verification.html`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": directory / "report.json",
        "md": directory / "report.md",
        "html": directory / "report.html",
    }
    linked: str | None = None
    if result.verification_report is not None:
        paths["verification_html"] = directory / VERIFICATION_HTML
        paths["verification_html"].write_text(verification_page(result.verification_report))
        linked = VERIFICATION_HTML
    paths["json"].write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n")
    paths["md"].write_text(markdown(result, verification_html=linked))
    paths["html"].write_text(render_html(result, verification_html=linked))
    return paths
