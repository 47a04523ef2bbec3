"""The verification report as one self-contained HTML page (no external JS, CSS or fonts).

Sections: verdict banner, properties with what each checked, a topology picture (inline
SVG from a small layered layout: edge switches at the bottom, switches further from the
edge above, endpoints under their switch coloured by tenant), the reachability matrix
coloured allowed / shared service / denied / violation, the intent analysis (cross-tenant
paths, blast radius), and every counterexample with its hop-by-hop trace.
"""

from __future__ import annotations

from collections import deque
from html import escape

from segctl.reports.analysis import ROWS_SHOWN, per_hop_text, summary
from segctl.reports.matrix import (
    ENDPOINT_MATRIX_LIMIT,
    ipv6_summary,
    outside_label,
    outside_table,
    segment_matrix,
)
from segctl.topology.analysis import expected_reachability
from segctl.topology.exposure import IntentAnalysis, analyse
from segctl.topology.network import Network
from segctl.verifier.report import VerificationReport

__all__ = ["CSS", "layout", "pair_services", "render_html", "tenant_colours", "topology_svg"]

#: Horizontal room per switch: a wide fabric gets a wider picture (the page scrolls), never overlaps.
SWITCH_SPACING = 100
#: Edge switches with more endpoints than this show a bar of their tenants instead of each endpoint.
ENDPOINTS_DRAWN_PER_SWITCH = 12

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_STATUS_TEXT = {
    "allowed": "allowed",
    "denied": "denied",
    "shared": "shared service",
    "violation": "VIOLATION",
    "self": "self",
}

CSS = (
    """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;
color:#1d2330;background:#f4f6f9}
header{padding:22px 36px;color:#fff}
header.pass{background:#1e7d45} header.fail{background:#b3261e}
header h1{margin:0 0 4px;font-size:24px} header p{margin:2px 0;opacity:.92}
main{padding:8px 36px 40px;max-width:1500px}
section{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:16px 20px;margin:18px 0}
h2{font-size:18px;margin:0 0 12px} h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #dde2ea;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef1f6}
.ok{color:#1e7d45;font-weight:600} .bad{color:#b3261e;font-weight:600}
.matrix td,.outside td{text-align:center;min-width:64px;font-weight:600}
.matrix th.rot{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap}
.s-allowed{background:#cdebd6;color:#145c31} .s-denied{background:#f1f2f4;color:#9aa1ad}
.s-shared{background:#cfe0f7;color:#164a8a} .s-violation{background:#b3261e;color:#fff}
.s-self{background:#d9dce2;color:#6b7280}
.legend span{display:inline-block;padding:2px 10px;margin-right:8px;border-radius:4px;font-size:12px}
code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.pkt td:first-child{font-weight:600}
.trace td{font-size:12px}
.muted{color:#6b7280;font-size:12px}
.cx{border-left:4px solid #b3261e;padding-left:14px;margin:16px 0}
.picture{overflow-x:auto}
"""
    + (
        # Readable at 1400 px: long flow text wraps inside its cell, a big matrix scrolls in its
        # own box (never the page), services show in the cells without hovering.
        ".scroll{overflow-x:auto;max-width:100%}"
        "table.trace{width:100%}"
        "td.mono,code{overflow-wrap:anywhere;word-break:break-word}"
        ".matrix td .svc{display:block;font-size:10px;font-weight:400;line-height:1.25;white-space:normal}"
    )
)


_TRACE_HEAD = "".join(
    f"<th>{h}</th>"
    for h in ("#", "switch", "table", "priority", "intent object", "match", "actions", "cookie", "ct")
)


def tenant_colours(network: Network) -> dict[str, str]:
    """One colour per tenant, in intent order (the palette repeats after nine)."""
    return {t.name: _PALETTE[i % len(_PALETTE)] for i, t in enumerate(network.tenants)}


def _layers(network: Network) -> tuple[dict[int, list[str]], int]:
    """Switches per layer (see :func:`layout`) and the top layer's number."""
    adj: dict[str, set[str]] = {s.name: set() for s in network.switches}
    for a, _, b, _ in network.links:
        adj[a].add(b)
        adj[b].add(a)
    edge = {ep.switch for ep in network.endpoints}
    dist: dict[str, int] = {s: 0 for s in adj if s in edge}
    queue = deque(dist)
    while queue:
        cur = queue.popleft()
        for nxt in sorted(adj[cur]):
            if nxt not in dist:
                dist[nxt] = dist[cur] + 1
                queue.append(nxt)
    top = max(dist.values(), default=0)
    for s in adj:
        dist.setdefault(s, top + 1)
    top = max(dist.values(), default=0)
    layers: dict[int, list[str]] = {}
    for s in (sw.name for sw in network.switches):
        layers.setdefault(dist[s], []).append(s)
    return layers, top


def picture_width(network: Network, width: int = 1100) -> int:
    """``width``, or more when a layer needs :data:`SWITCH_SPACING` per switch."""
    layers, _ = _layers(network)
    return max(width, SWITCH_SPACING * max((len(names) for names in layers.values()), default=0))


def layout(
    network: Network, *, width: int = 1100
) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]], int]:
    """Positions of switches and endpoints (``tenant/name``) and the picture height.

    Layers: switches with endpoints are layer 0; every other switch is its hop distance
    from the nearest of them (unreachable switches go one layer above the rest). Endpoints
    of a switch with more than :data:`ENDPOINTS_DRAWN_PER_SWITCH` get no position (the
    picture shows a bar of that switch's tenants instead).
    """
    layers, top = _layers(network)
    gap = 110
    pos: dict[str, tuple[float, float]] = {}
    for level, names in layers.items():
        y = 50 + (top - level) * gap
        for i, name in enumerate(names):
            pos[name] = ((i + 0.5) * width / len(names), y)
    eps: dict[str, tuple[float, float]] = {}
    base_y = 50 + top * gap + 95
    edge_switches = layers.get(0, [])
    for sw in edge_switches:
        attached = [ep for ep in network.endpoints if ep.switch == sw]
        if len(attached) > ENDPOINTS_DRAWN_PER_SWITCH:
            continue
        x0 = pos[sw][0]
        span = min(width / max(len(edge_switches), 1) - 20, 120 * len(attached))
        for i, ep in enumerate(attached):
            x = x0 - span / 2 + (i + 0.5) * span / len(attached)
            eps[ep.qualified] = (x, base_y + (i % 2) * 26)
    return pos, eps, int(base_y + 70)


def topology_svg(network: Network, *, width: int = 1100) -> str:
    """Inline SVG of the fabric: links, switches, endpoints coloured by tenant, with a legend.

    Wide fabrics get a wider picture (:func:`picture_width`); a crowded edge switch shows one
    bar split by tenant (hover for the counts) instead of each endpoint.
    """
    width = picture_width(network, width)
    pos, eps, height = layout(network, width=width)
    colours = tenant_colours(network)
    parts = [""]  # the <svg> tag, written once the legend's height is known
    if network.externals:  # a band on top for the external networks, over their uplinks
        band = 80
        pos = {k: (x, y + band) for k, (x, y) in pos.items()}
        eps = {k: (x, y + band) for k, (x, y) in eps.items()}
        height += band
        parts += _externals_svg(network, pos)
    for a, ap, b, bp in network.links:
        (x1, y1), (x2, y2) = pos[a], pos[b]
        parts.append(
            f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="#8a94a6" '
            f'stroke-width="2"><title>{escape(a)}:{ap} &#8596; {escape(b)}:{bp}</title></line>'
        )
    for ep in network.endpoints:
        if ep.qualified not in eps:
            continue
        (x1, y1), (x2, y2) = pos[ep.switch], eps[ep.qualified]
        parts.append(
            f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" '
            f'stroke="{colours[ep.tenant]}" stroke-width="1.5" stroke-dasharray="4 3"/>'
        )
    for name, (x, y) in pos.items():
        parts.append(
            f'<rect x="{x - 44:.0f}" y="{y - 16:.0f}" width="88" height="32" rx="6" fill="#2b3445"/>'
            f'<text x="{x:.0f}" y="{y + 4:.0f}" fill="#fff" text-anchor="middle" '
            f'font-weight="bold">{escape(name)}</text>'
        )
    parts += _tenant_bars(network, pos, eps, colours, height - 70)
    for ep in network.endpoints:
        if ep.qualified not in eps:
            continue
        x, y = eps[ep.qualified]
        c = colours[ep.tenant]
        parts.append(
            f'<circle cx="{x:.0f}" cy="{y:.0f}" r="9" fill="{c}"><title>{escape(ep.qualified)} '
            f"{ep.ip} {ep.mac} at {escape(ep.switch)}:{ep.port}</title></circle>"
            f'<text class="ep" x="{x:.0f}" y="{y + 22:.0f}" text-anchor="middle" fill="{c}">'
            f"{escape(ep.qualified)}</text>"
        )
    legend, rows = _legend_svg(colours, height, width)
    parts += legend
    parts.append("</svg>")
    total = height + 30 * rows
    parts[0] = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total}" '
        f'viewBox="0 0 {width} {total}" font-family="Helvetica,Arial,sans-serif" font-size="12">'
    )
    return f'<div class="picture">{"".join(parts)}</div>'


def _externals_svg(network: Network, pos: dict[str, tuple[float, float]]) -> list[str]:
    """Each external network as a rounded box in the top band, linked to its uplink switch
    (and, thin and grey, to the switches of its standby uplinks)."""
    out = []
    per_switch: dict[str, int] = {}
    for ext in network.externals:
        i = per_switch[ext.switch] = per_switch.get(ext.switch, -1) + 1
        sx, sy = pos[ext.switch]
        x, y = sx + i * 150, 34
        tip = (
            f"external network {ext.name}: {ext.cidr}, router {ext.router_ip}, uplink {ext.switch}:{ext.port}"
        )
        for switch, port in ext.standby:  # drawn first, under the box: thin and grey
            bx, by = pos[switch]
            out.append(
                f'<line class="standby" x1="{bx:.0f}" y1="{by:.0f}" x2="{x:.0f}" y2="{y:.0f}" '
                f'stroke="#a8b0bf" stroke-width="1" stroke-dasharray="2 4"><title>{escape(ext.name)}: '
                f"standby uplink {escape(switch)}:{port} (no rules until the active one goes down)"
                "</title></line>"
            )
        out.append(
            f'<line x1="{sx:.0f}" y1="{sy:.0f}" x2="{x:.0f}" y2="{y:.0f}" stroke="#5b6b86" stroke-width="2" '
            f'stroke-dasharray="6 3"><title>{escape(tip)}</title></line>'
            f'<rect class="external" x="{x - 64:.0f}" y="{y - 18:.0f}" width="128" height="36" rx="18" '
            f'fill="#e8eef8" stroke="#5b6b86"><title>{escape(tip)}</title></rect>'
            f'<text x="{x:.0f}" y="{y - 2:.0f}" text-anchor="middle" font-weight="bold" fill="#2b3445">'
            f"{escape(ext.name)}</text>"
            f'<text x="{x:.0f}" y="{y + 12:.0f}" text-anchor="middle" font-size="10" fill="#5b6b86">'
            f"{escape(str(ext.cidr))}</text>"
        )
    return out


def _tenant_bars(
    network: Network,
    pos: dict[str, tuple[float, float]],
    eps: dict[str, tuple[float, float]],
    colours: dict[str, str],
    y: float,
) -> list[str]:
    """Under each crowded edge switch: a bar split by tenant, in proportion to its endpoints."""
    counts: dict[str, dict[str, int]] = {}
    for ep in network.endpoints:
        if ep.qualified not in eps:
            per_tenant = counts.setdefault(ep.switch, {})
            per_tenant[ep.tenant] = per_tenant.get(ep.tenant, 0) + 1
    parts = []
    for sw, per_tenant in counts.items():
        total = sum(per_tenant.values())
        x0, y0 = pos[sw]
        bar = SWITCH_SPACING * 0.8
        x = x0 - bar / 2
        parts.append(
            f'<line x1="{x0:.0f}" y1="{y0 + 16:.0f}" x2="{x0:.0f}" y2="{y:.0f}" stroke="#8a94a6" '
            f'stroke-width="1.5" stroke-dasharray="4 3"/>'
        )
        for tenant, n in per_tenant.items():
            w = bar * n / total
            plural = "s" if n != 1 else ""
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.0f}" width="{w:.1f}" height="14" fill="{colours[tenant]}">'
                f"<title>{escape(sw)}: tenant {escape(tenant)}, {n} endpoint{plural}</title></rect>"
            )
            x += w
        parts.append(f'<text x="{x0:.0f}" y="{y + 30:.0f}" text-anchor="middle">{total} endpoints</text>')
    return parts


def _legend_svg(colours: dict[str, str], y: int, width: int) -> tuple[list[str], int]:
    """The tenant legend, wrapped into rows that fit ``width``; (parts, number of rows)."""
    parts = []
    x, row = 10.0, 0
    for tenant, c in colours.items():
        room = 40 + 8 * len(tenant) + 50
        if x > 10 and x + room > width:
            x, row = 10.0, row + 1
        yy = y + 30 * row
        parts.append(
            f'<circle cx="{x + 6:.0f}" cy="{yy + 14}" r="6" fill="{c}"/>'
            f'<text x="{x + 16:.0f}" y="{yy + 18}">tenant {escape(tenant)}</text>'
        )
        x += room
    return parts, row + 1


def _legend() -> str:
    return "".join(f'<span class="s-{s}">{escape(t)}</span>' for s, t in _STATUS_TEXT.items())


def _matrix_table(head: str, rows: list[str]) -> str:
    """The matrix table in a box that scrolls by itself when wider than the page."""
    table = f'<table class="matrix"><tr><th>from \\ to</th>{head}</tr>{"".join(rows)}</table>'
    return f'<div class="scroll">{table}</div>'


def _segment_matrix(report: VerificationReport) -> str:
    """One cell per ordered pair of segments (big fabrics; see :mod:`segctl.reports.matrix`)."""
    colours = tenant_colours(report.network)
    segments, cells = segment_matrix(report)

    def colour(segment: str) -> str:
        return colours[segment.partition("/")[0]]

    head = "".join(f'<th class="rot" style="color:{colour(s)}">{escape(s)}</th>' for s in segments)
    rows = []
    for src, row in zip(segments, cells, strict=True):
        tds = []
        for dst, c in zip(segments, row, strict=True):
            label = {
                "violation": f"!{c.counts.get('violation', 0)}",
                "shared": "X",
                "allowed": f"{c.counts.get('allowed', 0)}/{c.pairs}",
                "denied": "·",
                "self": "",
            }[c.status]
            tip = f"{src} → {dst}: {c.pairs} endpoint pair{'s' if c.pairs != 1 else ''}: {c.summary()}; "
            tip += f"tables deliver new packets for {c.observed}"
            tds.append(f'<td class="s-{c.status}" title="{escape(tip)}">{escape(label)}</td>')
        rows.append(f'<tr><th style="color:{colour(src)}">{escape(src)}</th>{"".join(tds)}</tr>')
    return (
        f'<p class="legend">{_legend()}</p><p class="muted">{len(report.endpoints):,} endpoints in '
        f"{len(segments):,} segments: one cell per pair of segments, rows send, columns receive, coloured "
        f"by the worst status of its endpoint pairs; n/m: n of m pairs allowed, !n: n violating pairs. "
        f"report.json holds every endpoint pair. Hover a cell for details.</p>" + _matrix_table(head, rows)
    )


def pair_services(network: Network) -> dict[tuple[str, str], str]:
    """``{(src, dst): "tcp/8080 icmp"}``: the services the intent grants each pair, as cells show them."""
    out: dict[tuple[str, str], str] = {}
    for (src, dst), grants in expected_reachability(network).items():
        names = dict.fromkeys(s.describe() for g in grants for s in g.services)
        out[(f"{src[0]}/{src[1]}", f"{dst[0]}/{dst[1]}")] = " ".join(names)
    return out


def _cell_label(status: str, grants: str, services: str) -> str:
    """A matrix cell's visible text: the status mark or grant letters, then the services."""
    mark = {"allowed": grants, "shared": "X", "denied": "·", "violation": "!", "self": ""}[status]
    svc = f'<span class="svc">{escape(services)}</span>' if services and status != "self" else ""
    return escape(mark) + svc


def _matrix(report: VerificationReport, limit: int = ENDPOINT_MATRIX_LIMIT) -> str:
    if len(report.endpoints) > limit:
        return _segment_matrix(report)
    colours = tenant_colours(report.network)
    services = pair_services(report.network)
    tenant = {ep.qualified: ep.tenant for ep in report.network.endpoints}
    head = "".join(
        f'<th class="rot" style="color:{colours[tenant[e]]}">{escape(e)}</th>' for e in report.endpoints
    )
    rows = []
    for name, row in zip(report.endpoints, report.matrix, strict=True):
        cells = []
        for dst, c in zip(report.endpoints, row, strict=True):
            grants = "" if c.expected == "·" else c.expected
            svc = services.get((name, dst), "")
            tip = (
                f"{name} → {dst}: {_STATUS_TEXT[c.status]}; intent grants: {grants or 'none'}"
                + (f" ({svc}); " if svc else "; ")
                + ("tables deliver new packets" if c.observed else "tables deliver no new packet")
            )
            label = _cell_label(c.status, grants, svc)
            cells.append(f'<td class="s-{c.status}" title="{escape(tip)}">{label}</td>')
        rows.append(f'<tr><th style="color:{colours[tenant[name]]}">{escape(name)}</th>{"".join(cells)}</tr>')
    return (
        f'<p class="legend">{_legend()}</p><p class="muted">Rows send, columns receive. '
        f"Letters: intent grants (G guardrail allow, S intra-segment, P policy, X shared service), "
        f"under them the services the intent grants (any = all IPv4). Hover a cell for details.</p>"
        + _matrix_table(head, rows)
    )


def _outside(report: VerificationReport, limit: int) -> str:
    """The outside's table under the matrix (external networks only)."""
    externals, rows, hidden = outside_table(report, limit)
    if not externals:
        return ""
    head = "".join(f"<th>to {escape(x)}</th><th>from {escape(x)}</th>" for x in externals)
    body = []
    for row in rows:
        tds = []
        for c in row.cells:
            for way, arrow in (
                (c.egress, f"{row.name} → {c.external}"),
                (c.ingress, f"{c.external} → {row.name}"),
            ):
                tip = f"{arrow}: {_STATUS_TEXT[way.status]}; policies: {', '.join(way.policies) or 'none'}; "
                tip += "tables deliver new packets" if way.observed else "tables deliver no new packet"
                tds.append(
                    f'<td class="s-{way.status}" title="{escape(tip)}">{escape(outside_label(way))}</td>'
                )
        head_cells = f"<th>{escape(row.name)}</th><td class='mono'>{escape(row.public)}</td>"
        body.append(f"<tr>{head_cells}{''.join(tds)}</tr>")
    note = (
        f'<p class="muted">{hidden} other endpoint(s): nothing granted or delivered either way.</p>'
        if hidden
        else ""
    )
    return (
        "<h3>The outside</h3><p class='muted'>Per endpoint (on big fabrics, the endpoints of a segment "
        "that read alike share a row) and external network, both ways: the services "
        "the intent grants (· none, ! a violation) and whether the tables deliver new packets; public: the "
        "source it leaves with (floating IP, else its tenant's SNAT address; over IPv6 its own "
        "global address).</p>"
        f"<table class='outside'><tr><th>endpoint</th><th>public</th>{head}</tr>{''.join(body)}</table>{note}"
    )


def _counterexamples(report: VerificationReport) -> str:
    out = []
    for p in report.properties:
        for n, cx in enumerate(p.counterexamples, 1):
            pkt = "".join(
                f"<tr><td>{escape(k)}</td><td class='mono'>{escape(v)}</td></tr>"
                for k, v in cx.packet.items()
            )
            hops = "".join(
                f"<tr><td>{i}</td><td>{escape(h.switch)}</td><td>{h.table}</td>"
                f"<td>{h.priority if h.priority >= 0 else 'miss'}</td><td>{escape(h.intent)}</td>"
                f"<td class='mono'>{escape(h.match or '(any)')}</td><td class='mono'>{escape(h.actions)}</td>"
                f"<td class='mono'>{h.cookie:#x}</td><td class='mono'>{escape(h.ct_state)}</td></tr>"
                for i, h in enumerate(cx.hops, 1)
            )
            ct = "".join(f" --ct-next {s}" for s in cx.ct_states)
            commit = f"<p>Committed by <code>{escape(cx.commit)}</code>.</p>" if cx.commit else ""
            out.append(
                f'<div class="cx"><h3>{escape(p.title)} #{n}</h3><p>{escape(cx.message)}</p>'
                f"<p>Injected at <b>{escape(cx.ingress[0])}:{cx.ingress[1]}</b>"
                f"{' (' + escape(cx.src) + ')' if cx.src else ''}:</p>"
                f'<table class="pkt">{pkt}</table>{commit}'
                f'<h3>Trace</h3><table class="trace"><tr>{_TRACE_HEAD}</tr>{hops}</table>'
                f'<p>Disposition: <b class="bad">{escape(cx.disposition)}</b></p>'
                f'<p class="muted">Replay: <code>ovs-appctl ofproto/trace '
                f"&lt;bridge {escape(cx.ingress[0])}&gt; "
                f"'{escape(cx.ofproto_flow)}'{escape(ct)}</code>"
                f"{'' if cx.confirmed else ' (not confirmed by the concrete simulator)'}</p></div>"
            )
        if p.violation_count > len(p.counterexamples):
            out.append(
                f"<p class='muted'>{p.violation_count - len(p.counterexamples)} more violations of "
                f"{escape(p.title)} are not shown.</p>"
            )
    return "".join(out) or "<p class='ok'>None: every property holds.</p>"


def _analysis(result: IntentAnalysis) -> str:
    """Cross-tenant paths and the largest blast radii (docs/intent.md, "Intent analysis")."""
    paths = result.cross_tenant_paths
    if not paths:
        crossing = (
            "<p><b>Cross-tenant paths</b>: <span class='ok'>none</span>; every tenant reaches other "
            "tenants only over its declared shared services.</p>"
        )
    else:
        rows = "".join(
            f"<tr><td>{escape(p.tenant)}</td><td>{escape('/'.join(p.target))}</td><td>{p.sources}</td>"
            f"<td class='mono'>{escape(p.describe())}</td></tr>"
            for p in paths[:ROWS_SHOWN]
        )
        more = len(paths) - ROWS_SHOWN
        crossing = (
            f"<p><b>Cross-tenant paths</b>: <span class='bad'>{len(paths)}</span>; a compromised "
            "provider lets these consumers reach further than their grants:</p>"
            "<table><tr><th>tenant</th><th>reaches</th><th>endpoints</th><th>shortest path</th></tr>"
            f"{rows}</table>" + (f"<p class='muted'>{more} more in report.json.</p>" if more > 0 else "")
        )
    radius = result.blast_radius
    rows = "".join(
        f"<tr><td>{escape('/'.join(b.endpoint))}</td><td>{escape(per_hop_text(b))}</td><td>{b.total}</td></tr>"
        for b in radius[:ROWS_SHOWN]
    )
    more = len(radius) - ROWS_SHOWN
    return (
        f"<p class='muted'>{escape(summary(result))}</p>{crossing}"
        "<p><b>Blast radius</b>: the endpoints a compromised endpoint reaches at each hop, largest first.</p>"
        f"<table><tr><th>endpoint</th><th>per hop</th><th>total</th></tr>{rows}</table>"
        + (f"<p class='muted'>{more} more endpoints in report.json.</p>" if more > 0 else "")
    )


def render_html(report: VerificationReport, *, endpoint_limit: int = ENDPOINT_MATRIX_LIMIT) -> str:
    """The complete, self-contained report page; past ``endpoint_limit`` endpoints the matrix
    is shown per pair of segments."""
    doc = report.to_json()
    state = "pass" if report.ok else "fail"
    verdict = "PASS: every property holds" if report.ok else "FAIL: violations found"
    props = "".join(
        f"<tr><td>{i}</td><td><b>{escape(p.title)}</b><br>"
        f"<span class='muted'>{escape(p.statement)}</span></td>"
        f"<td class='{'ok' if p.holds else 'bad'}'>"
        f"{'holds' if p.holds else f'{p.violation_count} violation(s)'}</td>"
        f"<td>{escape(p.checked)}</td><td class='mono'>{escape(p.space)}</td>"
        f"<td>{'<br>'.join(f'{escape(k)}: {v}' for k, v in p.counts.items())}</td></tr>"
        for i, p in enumerate(report.properties, 1)
    )
    findings = ""
    if report.findings:
        items = "".join(
            f"<li>{escape(f.switch)} table {f.table} priority {f.priority}: {escape(f.kind)}: "
            f"{escape(f.detail)}</li>"
            for f in report.findings
        )
        findings = f"<section><h2>Table findings (not verdicts)</h2><ul>{items}</ul></section>"
    flows = ", ".join(f"{escape(k)}: {v}" for k, v in report.flow_counts.items())
    ipv6 = f'<p class="muted">{escape(text)}</p>' if (text := ipv6_summary(report)) else ""
    outside = _outside(report, endpoint_limit)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>segctl verification report</title>
<style>{CSS}</style></head><body>
<header class="{state}"><h1>segctl verification report — {verdict}</h1>
<p>{len(report.properties)} properties, {sum(p.holds for p in report.properties)} hold,
{sum(p.violation_count for p in report.properties)} violation(s).
{sum(report.flow_counts.values())} flows on {len(report.flow_counts)} switches ({flows}).</p>
<p>Generated {escape(doc["generated"])} · schema {escape(doc["schema"])} v{doc["schema_version"]} ·
{escape(report.engine)} engine · BDD {escape(doc["engine"]["bdd_backend"])} · {report.seconds:.2f}s</p>
</header><main>
<section><h2>Properties</h2><table><tr><th>#</th><th>property</th><th>verdict</th><th>checked</th>
<th>header space</th><th>counts</th></tr>{props}</table></section>
{findings}
<section><h2>Topology</h2>{topology_svg(report.network)}</section>
<section><h2>Reachability matrix</h2>{_matrix(report, endpoint_limit)}{ipv6}{outside}</section>
<section><h2>Intent analysis</h2>{_analysis(analyse(report.network))}</section>
<section><h2>Violations</h2>{_counterexamples(report)}</section>
</main></body></html>
"""
