"""Scenario reports: ``report.json`` (stable schema), ``report.md`` and ``report.html``.

Each matrix phase is drawn as a source × destination grid: a cell lists the services
that passed, ``·`` when nothing passed, and is marked ``✗`` (red in HTML) when observed,
expected and predicted disagree on any probe of that pair; the disagreeing probes are
listed below the grid with all three outcomes.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from segctl.mininet_scenarios.runner import MatrixPhase, ProbeRow, RunResult

__all__ = ["markdown", "render_html", "write_reports"]


def _pairs(phase: MatrixPhase) -> tuple[list[str], dict[tuple[str, str], list[ProbeRow]]]:
    names: list[str] = []
    cells: dict[tuple[str, str], list[ProbeRow]] = {}
    for row in phase.rows:
        src, dst = "/".join(row.probe.src), "/".join(row.probe.dst)
        for n in (src, dst):
            if n not in names:
                names.append(n)
        cells.setdefault((src, dst), []).append(row)
    return names, cells


def _cell(rows: list[ProbeRow] | None) -> tuple[str, bool]:
    if not rows:
        return "", True
    ok = [r.probe.service for r in rows if r.observed]
    return (" ".join(ok) or "·"), all(r.agree for r in rows)


def _outcome(value: bool | None) -> str:
    return "n/a" if value is None else ("pass" if value else "drop")


def _verification_line(result: RunResult) -> str:
    ver = result.verification
    if not ver:
        return "not run (the scenario stopped before the end)"
    if not ver.get("available"):
        return f"unavailable: {ver.get('reason', '?')}"
    report = ver.get("report") or {}
    summary = report.get("summary", {}) if isinstance(report, dict) else {}
    verdict = "all properties hold" if result.live_verified else "VIOLATED"
    return f"flows dumped from the switches at the end: {verdict} ({json.dumps(summary, default=str)})"


def markdown(result: RunResult) -> str:
    """The report as Markdown."""
    out = [
        f"# Scenario {result.scenario}: {'PASS' if result.passed else 'FAIL'}",
        "",
        result.title,
        "",
        f"- intent: `{result.intent}`",
        f"- rules: {result.rules_source}",
        f"- run prefix: `{result.prefix}`, {result.seconds:.1f} s",
    ]
    if result.error:
        out += [f"- **error**: {result.error}"]
    for phase in result.phases:
        names, cells = _pairs(phase)
        out += ["", f"## {phase.name}: {'all three agree' if phase.agree else 'DISAGREE'}", ""]
        out.append(
            f"{len(phase.rows)} probes; observed ok {sum(r.observed for r in phase.rows)}, "
            f"expected ok {sum(r.expected for r in phase.rows)}, "
            f"predicted ok {sum(1 for r in phase.rows if r.predicted)}, not predicted {phase.unpredicted}."
        )
        if phase.predictor:
            out.append(f"Predicted matrix unavailable: {phase.predictor}")
        out += ["", "| from \\ to | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for src in names:
            row = []
            for dst in names:
                text, agree = _cell(cells.get((src, dst)))
                row.append(text if agree else f"✗ {text}")
            out.append(f"| {src} | " + " | ".join(row) + " |")
        bad = [r for r in phase.rows if not r.agree]
        if bad:
            out += ["", "| probe | observed | expected | predicted | error |", "|---|---|---|---|---|"]
            out += [
                f"| {r.probe.describe()} | {_outcome(r.observed)} | {_outcome(r.expected)} | "
                f"{_outcome(r.predicted)} | {r.error} |"
                for r in bad
            ]
    if result.checks:
        out += ["", "## Checks", "", "| check | verdict | detail |", "|---|---|---|"]
        out += [f"| {c.name} | {'pass' if c.passed else 'FAIL'} | {c.detail} |" for c in result.checks]
    if result.unaddressable:
        out += ["", "Pairs not probed by address (the address is also the source's own tenant's): "]
        out += [", ".join(result.unaddressable)]
    out += ["", "## Live verification", "", _verification_line(result)]
    return "\n".join(out) + "\n"


_CSS = """body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #bbb;padding:3px 6px;font-size:12px}.bad{background:#f8c0c0}
.ok{background:#d8f5d8}.none{color:#999}.pass{color:#070}.fail{color:#b00;font-weight:bold}"""


def render_html(result: RunResult) -> str:
    """The report as one self-contained HTML page."""
    e = html.escape
    verdict = "pass" if result.passed else "fail"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>segctl scenario {e(result.scenario)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Scenario {e(result.scenario)}: <span class='{verdict}'>{verdict.upper()}</span></h1>",
        f"<p>{e(result.title)}</p><ul><li>intent: <code>{e(result.intent)}</code></li>",
        f"<li>rules: {e(result.rules_source)}</li><li>run prefix <code>{e(result.prefix)}</code>, "
        f"{result.seconds:.1f} s</li></ul>",
    ]
    if result.error:
        parts.append(f"<p class='fail'>error: {e(result.error)}</p>")
    for phase in result.phases:
        names, cells = _pairs(phase)
        state = "all three agree" if phase.agree else "DISAGREE"
        parts.append(
            f"<h2>{e(phase.name)}: <span class='{'pass' if phase.agree else 'fail'}'>{state}</span></h2>"
        )
        parts.append(
            f"<p>{len(phase.rows)} probes; cells list the services that passed live; "
            f"red = observed / expected (intent) / predicted (verifier on live flows) disagree. "
            f"Not predicted: {phase.unpredicted}.</p>"
        )
        if phase.predictor:
            parts.append(f"<p class='fail'>predicted matrix unavailable: {e(phase.predictor)}</p>")
        parts.append("<table><tr><th>from \\ to</th>" + "".join(f"<th>{e(n)}</th>" for n in names) + "</tr>")
        for src in names:
            parts.append(f"<tr><th>{e(src)}</th>")
            for dst in names:
                rows = cells.get((src, dst))
                text, agree = _cell(rows)
                cls = "none" if not rows else ("bad" if not agree else ("ok" if text != "·" else ""))
                parts.append(f"<td class='{cls}'>{e(text)}</td>")
            parts.append("</tr>")
        parts.append("</table>")
        bad = [r for r in phase.rows if not r.agree]
        if bad:
            parts.append(
                "<table><tr><th>probe</th><th>observed</th><th>expected</th><th>predicted</th><th>error</th></tr>"
            )
            parts += [
                f"<tr class='bad'><td>{e(r.probe.describe())}</td><td>{_outcome(r.observed)}</td>"
                f"<td>{_outcome(r.expected)}</td><td>{_outcome(r.predicted)}</td><td>{e(r.error)}</td></tr>"
                for r in bad
            ]
            parts.append("</table>")
    if result.checks:
        parts.append("<h2>Checks</h2><table><tr><th>check</th><th>verdict</th><th>detail</th></tr>")
        parts += [
            f"<tr class='{'ok' if c.passed else 'bad'}'><td>{e(c.name)}</td>"
            f"<td>{'pass' if c.passed else 'FAIL'}</td><td>{e(c.detail)}</td></tr>"
            for c in result.checks
        ]
        parts.append("</table>")
    if result.unaddressable:
        parts.append(
            "<p>Not probed by address (the address also belongs to the source's own tenant): "
            + e(", ".join(result.unaddressable))
            + "</p>"
        )
    parts.append(f"<h2>Live verification</h2><p>{e(_verification_line(result))}</p><pre>")
    parts.append(e(json.dumps(result.verification, indent=2, default=str)[:20000]))
    parts.append("</pre></body></html>")
    return "\n".join(parts)


def write_reports(result: RunResult, directory: Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``report.html`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": directory / "report.json",
        "md": directory / "report.md",
        "html": directory / "report.html",
    }
    paths["json"].write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n")
    paths["md"].write_text(markdown(result))
    paths["html"].write_text(render_html(result))
    return paths
