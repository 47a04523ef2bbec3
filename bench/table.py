"""Result rows of the benchmark and their text/Markdown table."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["Row", "blocked_row", "markdown_table", "publish", "seconds_text", "text_table"]

_HEAD = ("measurement", "figure", "baseline (same run)", "ratio", "target", "met?", "detail")


@dataclass(frozen=True)
class Row:
    """One line of the table. ``met`` is None when no target applies or it was not measured."""

    measurement: str
    figure: str
    baseline: str
    ratio: str
    target: str
    met: bool | None
    detail: str = ""

    def cells(self) -> tuple[str, ...]:
        met = "-" if self.met is None else ("yes" if self.met else "NO")
        return (self.measurement, self.figure, self.baseline, self.ratio, self.target, met, self.detail)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def blocked_row(measurement: str, target: str, reason: str) -> Row:
    """A row for a measurement that could not run (never a made-up figure)."""
    return Row(measurement, "not measured", "-", "-", target, None, reason)


def text_table(rows: list[Row]) -> str:
    """A plain-text table with aligned columns."""
    cells = [_HEAD, *(r.cells() for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(_HEAD))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def markdown_table(rows: list[Row]) -> str:
    """The same table in Markdown (for docs/performance.md)."""
    lines = ["| " + " | ".join(_HEAD) + " |", "|" + "---|" * len(_HEAD)]
    for r in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r.cells()) + " |")
    return "\n".join(lines) + "\n"


def publish(
    rows: list[Row], raw: Any, *, markdown: Path | None = None, json_path: Path | None = None
) -> None:
    """Print the table; also write it as Markdown and ``raw`` (the figures) as JSON when asked."""
    print(text_table(rows), end="")
    if markdown is not None:
        markdown.write_text(markdown_table(rows))
    if json_path is not None:
        json_path.write_text(json.dumps(raw, indent=2) + "\n")


def seconds_text(seconds: float) -> str:
    """A duration as a table figure: ``377 ms`` below a second, ``10.08 s`` above."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"
