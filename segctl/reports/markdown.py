"""The verification report as Markdown (for review tools, tickets and audit evidence)."""

from __future__ import annotations

from segctl.reports.analysis import ROWS_SHOWN, per_hop_text, summary
from segctl.reports.matrix import (
    ENDPOINT_MATRIX_LIMIT,
    ipv6_summary,
    outside_label,
    outside_table,
    segment_matrix,
)
from segctl.topology.exposure import IntentAnalysis, analyse
from segctl.verifier.report import VerificationReport

__all__ = ["render_markdown"]

_STATUS = {"allowed": "A", "denied": "·", "shared": "X", "violation": "**!**", "self": "—"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _endpoint_matrix(report: VerificationReport) -> list[str]:
    lines = [
        "Rows send, columns receive. A allowed, X shared service, · denied, **!** violation, — self.",
        "The letters in brackets are the intent's grants (G guardrail, S intra-segment, P policy, X shared).",
        "",
        "| from \\ to | " + " | ".join(report.endpoints) + " |",
        "|---" * (len(report.endpoints) + 1) + "|",
    ]
    for name, row in zip(report.endpoints, report.matrix, strict=True):
        cells = [
            f"{_STATUS[c.status]} ({c.expected})" if c.expected != "·" else _STATUS[c.status] for c in row
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _outside(report: VerificationReport, limit: int) -> list[str]:
    """The outside's table (external networks only)."""
    externals, rows, hidden = outside_table(report, limit)
    if not externals:
        return []
    head = " | ".join(f"to {x} | from {x}" for x in externals)
    lines = [
        "", "### The outside", "",
        "Per endpoint (on big fabrics, the endpoints of a segment that read alike share a row) and "
        "external network, both ways: the services the intent grants (· none, "
        "**!** a violation) and whether the tables deliver new packets; the public address is "
        "the source it leaves with (floating IP, else its tenant's SNAT address; over IPv6 its "
        "own global address).", "",
        f"| endpoint | public | {head} |", "|---" * (2 + 2 * len(externals)) + "|",
    ]  # fmt: skip
    for row in rows:
        ways = " | ".join(
            f"{_cell(outside_label(c.egress))} | {_cell(outside_label(c.ingress))}" for c in row.cells
        )
        lines.append(f"| {row.name} | {row.public} | {ways} |")
    if hidden:
        lines += ["", f"{hidden} other endpoint(s): nothing granted or delivered either way."]
    return lines


def _segment_matrix(report: VerificationReport) -> list[str]:
    segments, cells = segment_matrix(report)
    lines = [
        f"{len(report.endpoints):,} endpoints in {len(segments):,} segments: one cell per pair of "
        "segments (rows send, columns receive), the endpoint pairs in each status; "
        "`report.json` holds every endpoint pair.",
        "",
        "| from \\ to | " + " | ".join(segments) + " |",
        "|---" * (len(segments) + 1) + "|",
    ]
    for name, row in zip(segments, cells, strict=True):
        texts = [f"**{c.summary()}**" if c.status == "violation" else c.summary() for c in row]
        lines.append(f"| {name} | " + " | ".join(texts) + " |")
    return lines


def _analysis(result: IntentAnalysis) -> list[str]:
    """Cross-tenant paths and the largest blast radii (docs/intent.md, "Intent analysis")."""
    lines = [summary(result), ""]
    paths = result.cross_tenant_paths
    if not paths:
        lines.append(
            "**Cross-tenant paths**: none; every tenant reaches other tenants only over its "
            "declared shared services."
        )
    else:
        lines += [
            f"**Cross-tenant paths**: {len(paths)}; a compromised provider lets these consumers reach "
            "further than their grants:",
            "",
            "| tenant | reaches | endpoints | shortest path |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {p.tenant} | {'/'.join(p.target)} | {p.sources} | {_cell(p.describe())} |"
            for p in paths[:ROWS_SHOWN]
        ]
        if len(paths) > ROWS_SHOWN:
            lines.append(f"\n({len(paths) - ROWS_SHOWN} more in `report.json`.)")
    radius = result.blast_radius
    lines += [
        "",
        "**Blast radius**: the endpoints a compromised endpoint reaches at each hop, largest first.",
        "",
        "| endpoint | per hop | total |",
        "|---|---|---|",
    ]
    lines += [f"| {'/'.join(b.endpoint)} | {per_hop_text(b)} | {b.total} |" for b in radius[:ROWS_SHOWN]]
    if len(radius) > ROWS_SHOWN:
        lines.append(f"\n({len(radius) - ROWS_SHOWN} more endpoints in `report.json`.)")
    return lines


def render_markdown(report: VerificationReport, *, endpoint_limit: int = ENDPOINT_MATRIX_LIMIT) -> str:
    """The whole report: verdicts, what was checked, matrix, counterexamples with traces (past
    ``endpoint_limit`` endpoints the matrix is summarised per pair of segments)."""
    doc = report.to_json()
    lines = ["# segctl verification report", ""]
    verdict = "**PASS**: every property holds" if report.ok else "**FAIL**: violations found"
    lines += [
        f"- Verdict: {verdict}",
        f"- Generated: {doc['generated']} (schema {doc['schema']} v{doc['schema_version']})",
        f"- Tables: {sum(report.flow_counts.values())} flows on {len(report.flow_counts)} switches "
        f"({', '.join(f'{k}: {v}' for k, v in report.flow_counts.items())})",
        f"- Engine: {report.engine} (BDD backend {doc['engine']['bdd_backend']}), {report.seconds:.2f}s",
        "",
        "## Properties",
        "",
        "| # | property | verdict | checked | header space | counts |",
        "|---|---|---|---|---|---|",
    ]
    for i, p in enumerate(report.properties, 1):
        verdict = "holds" if p.holds else f"**{p.violation_count} violation(s)**"
        counts = ", ".join(f"{k}: {v}" for k, v in p.counts.items())
        lines.append(f"| {i} | {p.title} | {verdict} | {_cell(p.checked)} | {_cell(p.space)} | {counts} |")
    lines += ["", "Statements:", ""]
    lines += [f"{i}. **{p.title}**: {p.statement}" for i, p in enumerate(report.properties, 1)]
    if report.findings:
        lines += ["", "## Table findings (not verdicts)", ""]
        lines += [
            f"- {f.switch} table {f.table} priority {f.priority}: {f.kind}: {f.detail}"
            for f in report.findings
        ]
    lines += ["", "## Reachability matrix", ""]
    big = len(report.endpoints) > endpoint_limit
    lines += _segment_matrix(report) if big else _endpoint_matrix(report)
    lines += _outside(report, endpoint_limit)
    ipv6 = ipv6_summary(report)
    lines += ["", ipv6] if ipv6 else []
    lines += ["", "## Intent analysis", ""]
    lines += _analysis(analyse(report.network))
    lines += ["", "## Violations", ""]
    if report.ok:
        lines.append("None.")
    for p in report.properties:
        for n, cx in enumerate(p.counterexamples, 1):
            lines += [f"### {p.title} #{n}", "", cx.message, ""]
            lines.append(
                f"Injected at `{cx.ingress[0]}:{cx.ingress[1]}`: "
                + ", ".join(f"`{k}={v}`" for k, v in cx.packet.items())
            )
            if cx.commit:
                lines.append(f"\nCommitted by `{cx.commit}`.")
            lines += [
                "",
                "| hop | switch | table | priority | intent | match | actions | ct |",
                "|---" * 8 + "|",
            ]
            for i, h in enumerate(cx.hops, 1):
                lines.append(
                    f"| {i} | {h.switch} | {h.table} | {h.priority if h.priority >= 0 else 'miss'} | "
                    f"{_cell(h.intent)} | `{_cell(h.match or '(any)')}` | `{_cell(h.actions)}` | "
                    f"{h.ct_state} |"
                )
            ct = "".join(f" --ct-next {s}" for s in cx.ct_states)
            lines += [
                "",
                f"Disposition: **{cx.disposition}**",
                "",
                f"Replay: `ovs-appctl ofproto/trace <bridge {cx.ingress[0]}> '{cx.ofproto_flow}'{ct}`",
                "",
            ]
        if p.violation_count > len(p.counterexamples):
            lines.append(
                f"({p.violation_count - len(p.counterexamples)} more violations of {p.title} not shown.)\n"
            )
    return "\n".join(lines).rstrip() + "\n"
