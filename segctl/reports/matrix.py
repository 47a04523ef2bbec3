"""The reachability matrix for people: per endpoint on small fabrics, per segment on big ones.

``report.json`` always holds every ordered endpoint pair. A page or a Markdown table with
one cell per pair stops being readable (and, at 2,000 endpoints, weighs hundreds of MB)
long before that, so past :data:`ENDPOINT_MATRIX_LIMIT` endpoints the Markdown and HTML
reports show one cell per ordered pair of segments (``tenant/segment``): the number of
endpoint pairs in each status, the worst status as its colour. The outside's table (external
networks) likewise gives the endpoints of a segment whose cells read the same one row.

>>> cell = SegmentCell({"allowed": 3, "denied": 1}, observed=3)
>>> cell.status, cell.pairs, cell.summary()
('allowed', 4, '3 allowed, 1 denied')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from segctl.verifier.outside_matrix import OutsideCell, OutsideWay
from segctl.verifier.report import VerificationReport

__all__ = [
    "ENDPOINT_MATRIX_LIMIT",
    "STATUS_ORDER",
    "OutsideRow",
    "SegmentCell",
    "ipv6_summary",
    "outside_label",
    "outside_public",
    "outside_table",
    "segment_matrix",
]

#: Past this many endpoints the human-readable matrices are summarised per segment.
ENDPOINT_MATRIX_LIMIT = 60
#: Matrix statuses, the one a summary cell is coloured by first.
STATUS_ORDER = ("violation", "shared", "allowed", "denied", "self")


@dataclass(frozen=True)
class SegmentCell:
    """The endpoint pairs from one segment to another: how many in each status."""

    counts: Mapping[str, int]
    observed: int  # pairs whose tables deliver some new packet

    @property
    def pairs(self) -> int:
        return sum(self.counts.values())

    @property
    def status(self) -> str:
        """The worst status present (``self`` only when nothing else is)."""
        return next(s for s in STATUS_ORDER if self.counts.get(s))

    def summary(self) -> str:
        """``"3 allowed, 1 denied"``: the statuses present, worst first."""
        return ", ".join(f"{self.counts[s]} {s}" for s in STATUS_ORDER if self.counts.get(s))


def segment_matrix(report: VerificationReport) -> tuple[list[str], list[list[SegmentCell]]]:
    """Segments (``tenant/segment``, in endpoint order) and one cell per ordered segment pair."""
    segment_of = {ep.qualified: f"{ep.tenant}/{ep.segment}" for ep in report.network.endpoints}
    segments = list(dict.fromkeys(segment_of[name] for name in report.endpoints))
    index = {s: i for i, s in enumerate(segments)}
    counts = [[dict[str, int]() for _ in segments] for _ in segments]
    observed = [[0] * len(segments) for _ in segments]
    for src, row in zip(report.endpoints, report.matrix, strict=True):
        i = index[segment_of[src]]
        for dst, cell in zip(report.endpoints, row, strict=True):
            j = index[segment_of[dst]]
            counts[i][j][cell.status] = counts[i][j].get(cell.status, 0) + 1
            observed[i][j] += cell.observed
    cells = [
        [SegmentCell(c, o) for c, o in zip(cr, orow, strict=True)]
        for cr, orow in zip(counts, observed, strict=True)
    ]
    return segments, cells


def ipv6_summary(report: VerificationReport) -> str:
    """One sentence on IPv6 under the matrix; "" when no endpoint declares ipv6."""
    from segctl.topology.analysis import ipv6_segments

    network = report.network
    if not any(ep.ipv6 is not None for ep in network.endpoints):
        return ""
    where = "; ".join(
        f"{tenant}/{segment} ({', '.join(ep.name for ep in members)}"
        + (", strict" if network.segment(tenant, segment).strict else "")
        + (", routed" if network.segment(tenant, segment).gateway6 is not None else "")
        + ")"
        for tenant, segment, members in ipv6_segments(network)
    )
    return (
        "IPv6 goes between the IPv6 endpoints of one segment, and between segments that both "
        "have a gateway6 (routed, global addresses; across tenants a shared service), under the "
        "same grants as IPv4 (a letter holds for both families there; elsewhere for IPv4 "
        "only): " + (where or "nowhere") + ". Neighbour discovery goes inside a segment always "
        "(the gateway answers for its gateway6), router advertisements and redirects never. The "
        "properties check both families."
    )


@dataclass(frozen=True)
class OutsideRow:
    """A row of the outside's table: one endpoint, or (big fabrics) the ``count`` endpoints
    of one segment whose cells read the same; ``cells`` in column order."""

    name: str
    public: str
    cells: tuple[OutsideCell, ...]
    count: int = 1


def outside_table(
    report: VerificationReport, limit: int = ENDPOINT_MATRIX_LIMIT
) -> tuple[list[str], list[OutsideRow], int]:
    """The outside's table: external networks (columns, each out and in), one row per
    endpoint that some way is granted, delivered or violated, and how many endpoints are
    left out (denied and not delivered both ways everywhere).

    Past ``limit`` rows, the endpoints of one segment whose cells are the same (policies,
    services, delivery, status) share one row ``tenant/segment (N endpoints)``; an
    endpoint with a violation keeps its own row, first."""
    externals = list(dict.fromkeys(c.external for c in report.outside))
    by_endpoint: dict[str, list[OutsideCell]] = {}
    for cell in report.outside:
        by_endpoint.setdefault(cell.endpoint, []).append(cell)

    def shown(way: OutsideWay) -> bool:
        return way.status != "denied" or way.observed

    kept = [
        OutsideRow(name, outside_public(cells), tuple(cells))
        for name, cells in by_endpoint.items()
        if any(shown(c.egress) or shown(c.ingress) for c in cells)
    ]
    hidden = len(by_endpoint) - len(kept)
    if len(kept) <= limit:
        return externals, kept, hidden
    segment_of = {ep.qualified: f"{ep.tenant}/{ep.segment}" for ep in report.network.endpoints}
    bad = [row for row in kept if any("violation" in (c.egress.status, c.ingress.status) for c in row.cells)]
    groups: dict[tuple[object, ...], list[OutsideRow]] = {}
    for row in kept:
        if row not in bad:
            key = (segment_of[row.name], tuple((c.egress, c.ingress) for c in row.cells))
            groups.setdefault(key, []).append(row)
    summary = [_group_row(str(key[0]), rows) for key, rows in groups.items()]
    return externals, bad + summary, hidden


def _group_row(segment: str, rows: list[OutsideRow]) -> OutsideRow:
    if len(rows) == 1:
        return rows[0]
    publics = {row.public for row in rows}
    public = publics.pop() if len(publics) == 1 else f"{len(rows)} addresses"
    return OutsideRow(f"{segment} ({len(rows)} endpoints)", public, rows[0].cells, len(rows))


def outside_label(way: OutsideWay) -> str:
    """A cell's text: its services (``·`` none, ``!`` first on a violation), then whether the
    tables deliver new packets that way."""
    mark = {"allowed": way.services, "denied": "·", "violation": f"! {way.services}".strip()}[way.status]
    return (
        mark
        + (" (delivered)" if way.observed and way.status != "denied" else "")
        + (" (delivered, not granted)" if way.observed and way.status == "denied" else "")
    )


def outside_public(cells: list[OutsideCell]) -> str:
    """An endpoint's public addresses over its external networks (``—`` none)."""
    found = [a for c in cells for a in (c.public, c.public6) if a]
    return ", ".join(dict.fromkeys(found)) or "—"
