"""The intent analysis of a report (``report.json``'s ``analysis``) for the renderers.

Both renderers read the ``analysis`` object of :meth:`VerificationReport.to_json`
(cross-tenant paths and blast radius, ``docs/report.md``): the text of one path and one
row, and how many rows a page shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ROWS_SHOWN", "describe_path", "per_hop_text", "summary"]

#: Rows of each analysis table a rendered report shows (``report.json`` has them all).
ROWS_SHOWN = 20


def describe_path(item: Mapping[str, Any]) -> str:
    """``red/r1 -[shared-service dns]-> infra/dns1 -[intra-segment svc]-> infra/ntp1``."""
    parts = [str(item["path"][0])]
    for grant, node in zip(item["grants"], item["path"][1:], strict=True):
        parts.append(f"-[{grant}]-> {node}")
    return " ".join(parts)


def per_hop_text(item: Mapping[str, Any]) -> str:
    """``4, 1`` (endpoints first reached at hop 1, 2, ...); ``-`` when it reaches nothing."""
    return ", ".join(str(n) for n in item["per_hop"]) or "-"


def summary(analysis: Mapping[str, Any]) -> str:
    """One sentence on the graph the analysis ran on."""
    graph = analysis["graph"]
    return (
        f"The intent's allowed-connection graph: {graph['endpoints']:,} endpoints, "
        f"{graph['edges']:,} allowed connections (ordered pairs with a grant), searched as "
        f"{graph['classes']:,} classes of endpoints with the same grants."
    )
