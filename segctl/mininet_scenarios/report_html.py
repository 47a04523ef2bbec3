"""The scenario report as one self-contained HTML page (no external JS, CSS or fonts).

It shares the verifier report's look and pieces (:mod:`segctl.reports.html`: CSS,
tenant colours, the inline SVG topology) and adds the scenario's own sections: run facts,
per phase the three-way matrix, the scenario checks, and the live verification as a
property table with counterexample packets and hop traces. The verifier's full page is
linked, not repeated.
"""

from __future__ import annotations

import time
from html import escape
from typing import Any

from segctl.mininet_scenarios.report_model import (
    NOT_PREDICTED_REASON,
    PHASE_SUBSET_REASON,
    UNADDRESSABLE_REASON,
    Cell,
    endpoint_names,
    failure_reasons,
    grid,
    outcome,
    probed_services,
    verification_doc,
)
from segctl.mininet_scenarios.runner import MatrixPhase, ProbeRow, RunResult
from segctl.reports.html import CSS, tenant_colours, topology_svg

__all__ = ["render_html"]

_SCENARIO_CSS = """
header table{border:0;margin-top:8px} header td,header th{border:0;padding:1px 14px 1px 0;background:none;
color:#fff;font-size:13px} header th{opacity:.8;font-weight:normal} header ul{margin:6px 0 0}
nav a{margin-right:14px;font-size:13px}
.grid td{text-align:center;font-size:11px;min-width:70px;max-width:150px}
.grid th{font-size:12px}
.grid th.rot{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap}
.c-allowed{background:#cdebd6;color:#145c31;font-weight:600}
.c-denied{background:#f1f2f4;color:#9aa1ad}
.c-disagree{background:#b3261e;color:#fff;font-weight:600;text-align:left!important}
.c-not-probed{background:repeating-linear-gradient(45deg,#fff,#fff 4px,#f6eed6 4px,#f6eed6 8px);
color:#7a5c00;font-style:italic}
.c-self{background:#d9dce2;color:#6b7280}
.c-disagree .np{color:#fff;border-color:#fff}
.legend span.np-key{border:1px dashed #7a5c00;color:#7a5c00}
.np{display:block;margin-top:2px;border:1px dashed #7a5c00;border-radius:3px;color:#7a5c00;font-weight:normal}
.legend span{display:inline-block;padding:2px 10px;margin:0 8px 4px 0;border-radius:4px;font-size:12px;
border:1px solid #dde2ea}
.badge{display:inline-block;padding:1px 10px;border-radius:10px;font-size:13px;color:#fff;margin-left:6px}
.badge.pass{background:#1e7d45} .badge.fail{background:#b3261e}
tr.fail td{background:#fbe3e1}
"""

_TRACE_HEAD = "".join(
    f"<th>{h}</th>"
    for h in ("#", "switch", "table", "priority", "intent object", "match", "actions", "cookie", "ct")
)


def _badge(ok: bool, yes: str = "PASS", no: str = "FAIL") -> str:
    return f"<span class='badge {'pass' if ok else 'fail'}'>{yes if ok else no}</span>"


def _three(row: ProbeRow) -> str:
    return (
        f"{row.probe.service}: observed {outcome(row.observed)}, expected {outcome(row.expected)}, "
        f"predicted {outcome(row.predicted)}"
    )


def _legend(services: int) -> str:
    items = (
        ("c-allowed", f"allowed: all three agree it passes (services listed; 'all {services}' = every one)"),
        ("c-denied", "denied: all three agree nothing passes"),
        ("c-disagree", "✗ disagreement: observed / expected / predicted spelled out"),
        ("c-not-probed", f"not probed: {UNADDRESSABLE_REASON} / {PHASE_SUBSET_REASON}"),
        ("c-self", "— self"),
    )
    spans = "".join(f"<span class='{c}'>{escape(t)}</span>" for c, t in items)
    return (
        f"<p class='legend'>{spans}<span class='np-key'>◇ not predicted (observed = expected)</span></p>"
        f"<p class='muted'>Rows send, columns receive. <b>Observed</b>: live echo probes (request and "
        f"reply). <b>Expected</b>: the intent. <b>Predicted</b>: the verifier's simulator on the flows "
        f"dumped from the switches in this phase. ◇ not predicted: {escape(NOT_PREDICTED_REASON)}; "
        f"observed and expected must still agree. Hover a cell for every probe's three outcomes.</p>"
    )


def _cell_html(cell: Cell, rows: list[ProbeRow], services: int) -> str:
    if cell.kind == "disagree":
        text = "<br>".join(
            f"✗ {escape(' '.join(svcs))}: {escape(triple)}" for triple, svcs in cell.disagreement_groups()
        )
    else:
        text = escape(cell.summary(services))
    if cell.unpredicted:
        text += f"<span class='np'>◇ not predicted: {escape(cell.unpredicted_text(services))}</span>"
    tip = "\n".join(_three(r) for r in rows) or cell.reason or "self"
    return f"<td class='c-{cell.kind}' title='{escape(tip)}'>{text}</td>"


def _phase(result: RunResult, phase: MatrixPhase, names: list[str], anchor: str) -> str:
    cells = grid(result, phase, names)
    services = probed_services(phase)
    rows: dict[tuple[str, str], list[ProbeRow]] = {}
    for r in phase.rows:
        rows.setdefault(("/".join(r.probe.src), "/".join(r.probe.dst)), []).append(r)
    colours = tenant_colours(result.network) if result.network is not None else {}

    def style(name: str) -> str:
        colour = colours.get(name.split("/", 1)[0])
        return f" style='color:{colour}'" if colour else ""

    head = "".join(f"<th class='rot'{style(n)}>{escape(n)}</th>" for n in names)
    body = "".join(
        f"<tr><th{style(src)}>{escape(src)}</th>"
        + "".join(_cell_html(cells[src, dst], rows.get((src, dst), []), len(services)) for dst in names)
        + "</tr>"
        for src in names
    )
    parts = [
        f"<section id='{anchor}'><h2>Phase: {escape(phase.name)} "
        f"{_badge(phase.agree, 'all three agree', 'DISAGREE')}</h2>",
        f"<p>{len(phase.rows)} probes in {phase.seconds:.1f} s; services probed per pair: "
        f"<code>{escape(', '.join(services))}</code>. "
        f"Passed: observed {sum(r.observed for r in phase.rows)}, "
        f"expected {sum(r.expected for r in phase.rows)}, predicted "
        f"{sum(1 for r in phase.rows if r.predicted)}; not predicted {phase.unpredicted}.</p>",
    ]
    if phase.predictor:
        parts.append(f"<p class='bad'>Predicted matrix unavailable: {escape(phase.predictor)}</p>")
    parts.append(_legend(len(services)))
    parts.append(f"<table class='grid'><tr><th>from \\ to</th>{head}</tr>{body}</table>")
    bad = [r for r in phase.rows if not r.agree]
    if bad:
        parts.append(
            "<h3>Disagreements</h3><table><tr><th>probe</th><th>observed</th><th>expected</th>"
            "<th>predicted</th><th>error</th></tr>"
            + "".join(
                f"<tr class='fail'><td>{escape(r.probe.describe())}</td><td>{outcome(r.observed)}</td>"
                f"<td>{outcome(r.expected)}</td><td>{outcome(r.predicted)}</td><td>{escape(r.error)}</td></tr>"
                for r in bad
            )
            + "</table>"
        )
    parts.append("</section>")
    return "".join(parts)


def _checks(result: RunResult) -> str:
    if not result.checks:
        return (
            "<section id='checks'><h2>Scenario checks</h2><p class='muted'>This scenario judges the "
            "matrices only (no attacks or faults).</p></section>"
        )
    rows = "".join(
        f"<tr class='{'' if c.passed else 'fail'}'><td>{escape(c.name)}</td>"
        f"<td class='{'ok' if c.passed else 'bad'}'>{'pass' if c.passed else 'FAIL'}</td>"
        f"<td>{escape(c.detail)}</td></tr>"
        for c in result.checks
    )
    ok = all(c.passed for c in result.checks)
    return (
        f"<section id='checks'><h2>Scenario checks {_badge(ok)}</h2><table><tr><th>check</th>"
        f"<th>verdict</th><th>detail</th></tr>{rows}</table></section>"
    )


def _counterexample(title: str, n: int, cx: dict[str, Any]) -> str:
    ingress = cx.get("ingress", {})
    fields = cx.get("packet", {})
    pkt = (
        "<tr>"
        + "".join(f"<th>{escape(str(k))}</th>" for k in fields)
        + "</tr><tr>"
        + "".join(f"<td class='mono'>{escape(str(v))}</td>" for v in fields.values())
        + "</tr>"
    )
    hops = "".join(
        f"<tr><td>{i}</td><td>{escape(str(h.get('switch')))}</td><td>{h.get('table')}</td>"
        f"<td>{h.get('priority') if h.get('priority', -1) >= 0 else 'miss'}</td>"
        f"<td>{escape(str(h.get('intent', '')))}</td>"
        f"<td class='mono'>{escape(h.get('match') or '(any)')}</td>"
        f"<td class='mono'>{escape(str(h.get('actions', '')))}</td>"
        f"<td class='mono'>{escape(str(h.get('cookie')))}</td>"
        f"<td class='mono'>{escape(str(h.get('ct_state', '')))}</td></tr>"
        for i, h in enumerate(cx.get("trace", []), 1)
    )
    replay = cx.get("replay", {})
    ct = "".join(f" --ct-next {s}" for s in replay.get("ct_next", []))
    src = f" ({escape(str(cx['src']))})" if cx.get("src") else ""
    return (
        f"<div class='cx'><h3>{escape(title)} #{n}</h3><p>{escape(str(cx.get('message', '')))}</p>"
        f"<p>Injected at <b>{escape(str(ingress.get('switch')))}:{ingress.get('port')}</b>{src}:</p>"
        f"<table class='packet'>{pkt}</table><h3>Hop trace</h3><table class='trace'><tr>{_TRACE_HEAD}</tr>"
        f"{hops}</table><p>Disposition: <b class='bad'>"
        f"{escape(str(cx.get('disposition', {}).get('text', '?')))}</b></p>"
        f"<p class='muted'>Replay: <code>ovs-appctl ofproto/trace &lt;bridge "
        f"{escape(str(ingress.get('switch')))}&gt; '{escape(str(replay.get('ofproto_trace_flow', '')))}'"
        f"{escape(ct)}</code></p></div>"
    )


def _verification(result: RunResult, link: str | None) -> str:
    head = "<section id='verification'><h2>Live verification"
    doc = verification_doc(result)
    if doc is None:
        reason = result.verification.get("reason") if result.verification else None
        why = reason or "the scenario stopped before the end"
        return f"{head} {_badge(False, no='NOT RUN')}</h2><p class='bad'>{escape(why)}</p></section>"
    summary = doc.get("summary", {})
    flows = doc.get("tables", {}).get("flow_counts", {})
    parts = [
        f"{head} {_badge(result.live_verified, 'every property holds', 'VIOLATED')}</h2>",
        f"<p><code>segctl.verifier.verify</code> on the {sum(flows.values())} flows dumped from "
        f"{len(flows)} switches at the end of the run: {summary.get('holding', '?')} of "
        f"{summary.get('properties', '?')} properties hold, {summary.get('violations', '?')} violation(s). "
        f"Generated {escape(str(doc.get('generated', '?')))}, schema {escape(str(doc.get('schema', '?')))} "
        f"v{doc.get('schema_version', '?')}.</p>",
    ]
    if link:
        parts.append(
            f"<p>The verifier's full report (reachability matrix on the live tables, every trace): "
            f"<a href='{escape(link)}'>{escape(link)}</a></p>"
        )
    rows = []
    for p in doc.get("properties", []):
        checked = p.get("checked", {})
        holds = bool(p.get("holds"))
        verdict = "holds" if holds else f"{p.get('violation_count', '?')} violation(s)"
        counts = "<br>".join(f"{escape(str(k))}: {v}" for k, v in checked.get("counts", {}).items())
        rows.append(
            f"<tr class='{'' if holds else 'fail'}'><td class='mono'>{escape(str(p.get('id')))}</td>"
            f"<td><b>{escape(str(p.get('title')))}</b><br><span class='muted'>"
            f"{escape(str(p.get('statement', '')))}</span></td><td class='{'ok' if holds else 'bad'}'>"
            f"{verdict}</td>"
            f"<td class='mono'>{escape(str(checked.get('header_space', '')))}</td>"
            f"<td>{escape(str(checked.get('description', '')))}</td><td>{counts}</td></tr>"
        )
    parts.append(
        "<table><tr><th>id</th><th>property</th><th>verdict</th><th>header space</th><th>checked</th>"
        f"<th>counts</th></tr>{''.join(rows)}</table>"
    )
    cxs = [
        _counterexample(str(p.get("title")), n, cx)
        for p in doc.get("properties", [])
        for n, cx in enumerate(p.get("violations", []), 1)
    ]
    if cxs:
        parts.append("<h3>Counterexamples</h3>" + "".join(cxs))
    parts.append("</section>")
    return "".join(parts)


def _facts(result: RunResult) -> str:
    facts = (
        ("intent", f"<code>{escape(result.intent)}</code>"),
        ("rules source", escape(result.rules_source or "?")),
        ("run prefix", f"<code>{escape(result.prefix)}</code>"),
        ("duration", f"{result.seconds:.1f} s"),
        ("phases", f"{len(result.phases)} ({sum(p.agree for p in result.phases)} agree three ways)"),
        ("checks", f"{len(result.checks)} ({sum(c.passed for c in result.checks)} pass)"),
        ("live verification", "holds" if result.live_verified else "does not hold / not run"),
        ("report written", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())),
    )
    return "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts) + "</table>"


def render_html(result: RunResult, *, verification_html: str | None = None) -> str:
    """The report page; ``verification_html`` is the relative link to the verifier's own page."""
    state = "pass" if result.passed else "fail"
    reasons = failure_reasons(result)
    why = ("<ul>" + "".join(f"<li>{escape(r)}</li>" for r in reasons) + "</ul>") if reasons else ""
    names = endpoint_names(result)
    anchors = [(f"phase-{i}", p.name) for i, p in enumerate(result.phases, 1)]
    nav = [("topology", "Topology")] if result.network is not None else []
    nav += [(a, f"Phase: {n}") for a, n in anchors] + [
        ("checks", "Checks"),
        ("verification", "Live verification"),
    ]
    if verification_html:
        nav.append((verification_html, f"{verification_html} ↗"))
    links = "".join(
        f"<a href='{'#' if not a.endswith('.html') else ''}{escape(a)}'>{escape(t)}</a>" for a, t in nav
    )
    topo = (
        f"<section id='topology'><h2>Topology</h2>{topology_svg(result.network)}</section>"
        if result.network is not None
        else ""
    )
    unaddressable = (
        f"<section><h2>Pairs not probed by address</h2><p class='muted'>The destination's address also "
        f"belongs to an endpoint of the source's own tenant, so the source's kernel would reach that "
        f"endpoint instead; the <code>attacker</code> scenario covers these pairs with crafted frames): "
        f"{escape(', '.join(result.unaddressable))}</p></section>"
        if result.unaddressable
        else ""
    )
    phases = "".join(_phase(result, p, names, a) for p, (a, _) in zip(result.phases, anchors, strict=True))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>segctl scenario {escape(result.scenario)}: {state.upper()}</title>
<style>{CSS}{_SCENARIO_CSS}</style></head><body>
<header class="{state}"><h1>Scenario {escape(result.scenario)} — {state.upper()}</h1>
<p>{escape(result.title)}</p>{_facts(result)}{why}</header><main>
<nav>{links}</nav>
{topo}
{phases}{unaddressable}
{_checks(result)}
{_verification(result, verification_html)}
</main></body></html>
"""
