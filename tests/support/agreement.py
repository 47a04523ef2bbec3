"""Engine agreement helpers: prove with both engines (whole, partitioned) and compare reports
byte for byte under :func:`support.reports.norm`, failing with a readable diff."""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from segctl.flows.compiler import compile_network
from segctl.openflow.ofctl import Flow
from segctl.topology.network import Network
from segctl.verifier.expectations import Expectations
from segctl.verifier.incremental import IncrementalVerifier
from segctl.verifier.report import VerificationReport, merge_parts
from segctl.verifier.verify import ENGINES, make_engine, partitions, prove_part, verify
from support.mutations import Flows
from support.reports import norm

__all__ = ["ENGINES", "assert_same", "compiled_lines", "doc", "partitioned", "reference_and_wavefront"]

Tables = Mapping[str, Sequence[Flow]]
#: Lines of unified diff shown in a failure (the rest is counted).
MAX_DIFF_LINES = 160


def compiled_lines(network: Network) -> Flows:
    """The compiler's flow lines per switch (what :mod:`support.mutations` edits)."""
    return {sw: p.flows_text().splitlines() for sw, p in compile_network(network).items()}


def doc(report: VerificationReport) -> str:
    """The normalized report as the exact text two agreeing proofs share."""
    return json.dumps(norm(report), indent=1)


def _summary(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out = [f"differs: {k}" for k in a if a.get(k) != b.get(k)]
    for pa, pb in zip(a.get("properties", []), b.get("properties", []), strict=False):
        if pa != pb:
            out.append(
                f"  {pa['id']}: violations {pa['violation_count']} vs {pb['violation_count']}, "
                f"counts {pa['checked']['counts']} vs {pb['checked']['counts']}"
            )
    return out


def assert_same(
    expected: str, actual: str, *, names: tuple[str, str] = ("reference", "wavefront"), context: str = ""
) -> None:
    """Fail unless the two normalized report texts are identical; the message names what
    differs (sections, per-property counts) and shows the unified diff of the two documents."""
    if expected == actual:
        return
    a, b = json.loads(expected), json.loads(actual)
    diff = list(difflib.unified_diff(expected.splitlines(), actual.splitlines(), *names, lineterm="", n=4))
    shown = diff[:MAX_DIFF_LINES]
    if len(diff) > MAX_DIFF_LINES:
        shown.append(f"... {len(diff) - MAX_DIFF_LINES} more diff lines")
    raise AssertionError(
        "\n".join([f"{names[0]} and {names[1]} reports differ", context, *_summary(a, b), *shown])
    )


def reference_and_wavefront(network: Network, tables: Tables) -> tuple[str, str]:
    """The normalized reports of both engines."""
    return doc(verify(network, tables, engine="reference")), doc(verify(network, tables, engine="wavefront"))


def partitioned(network: Network, tables: Tables, engine: str, count: int) -> str:
    """The normalized report of :func:`~segctl.verifier.verify.partitions` ``count`` parts,
    each proven by a fresh ``engine`` and merged."""
    started = time.monotonic()
    exp = Expectations.of(network)
    parts = [
        prove_part(network, tables, make_engine(engine, network, tables), sources, expectations=exp)
        for sources in partitions(network, count)
    ]
    return doc(merge_parts(network, tables, parts, started, reach=exp.reach))


def assert_steps_agree(inc: IncrementalVerifier, network: Network, tables: Tables, context: str) -> None:
    """One step of an incremental sequence: a fresh reference proof, a fresh wavefront proof
    and ``inc``'s call on the same tables write the same report."""
    fresh = doc(verify(network, tables, engine="reference"))
    assert_same(fresh, doc(verify(network, tables)), context=context)
    assert_same(
        fresh, doc(inc.verify(network, tables)), names=("full reference", "incremental"), context=context
    )
