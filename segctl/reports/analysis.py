"""The intent analysis section of a report, shared by the Markdown and HTML renderers.

The renderers show :func:`segctl.topology.exposure.analyse` of the report's network (the
object behind ``report.json``'s ``analysis``, computed once per network): this module
holds the texts both print and how many rows a page shows.
"""

from __future__ import annotations

from segctl.topology.exposure import BlastRadius, IntentAnalysis

__all__ = ["ROWS_SHOWN", "per_hop_text", "summary"]

#: Rows of each analysis table a rendered report shows (``report.json`` has them all).
ROWS_SHOWN = 20


def per_hop_text(radius: BlastRadius) -> str:
    """``4, 1`` (endpoints first reached at hop 1, 2, ...); ``-`` when it reaches nothing."""
    return ", ".join(str(n) for n in radius.per_hop) or "-"


def summary(result: IntentAnalysis) -> str:
    """One sentence on the graph the analysis ran on."""
    return (
        f"The intent's allowed-connection graph: {result.endpoints:,} endpoints, "
        f"{result.edges:,} allowed connections (ordered pairs with a grant), searched as "
        f"{result.classes:,} classes of endpoints with the same grants."
    )
