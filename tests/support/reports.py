"""Report comparison helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segctl.flows.compiler import compile_network
from segctl.topology.network import load_network
from segctl.verifier.report import VerificationReport

LEAF_SPINE = Path(__file__).resolve().parents[2] / "examples" / "leaf-spine.yaml"
#: A rule that sends globex/gweb1's IPv4 straight to acme/web1's port (an isolation leak).
LEAK = "table=0,priority=60000,in_port=11,ip,actions=output:10"


def norm(report: VerificationReport) -> dict[str, Any]:
    """A report's document without what depends on when and how it was proven (its time, the
    engine and its work counters): what two exact engines, or a full and an incremental
    proof, must agree on byte for byte."""
    doc = report.to_json()
    doc.pop("generated")
    doc.pop("engine")
    return doc


def write_leaf_spine(out: Path, *, leak: bool = False) -> Path:
    """The compiled leaf-spine flows as ``<switch>.flows`` files in ``out`` (``leak``: with :data:`LEAK`)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, prog in compile_network(load_network(LEAF_SPINE)).items():
        text = prog.flows_text()
        if leak and name == "leaf1":
            text = LEAK + "\n" + text
        (out / f"{name}.flows").write_text(text)
    return out
