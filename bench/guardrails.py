"""What ordered rules cost: the dense case with and without guardrails, side by side.

Usage::

    .venv/bin/python bench/guardrails.py [--sizes 20,40,80] [--quick] [--json]

Per size n, :func:`~segctl.topology.synthetic.two_rack` ``(n)`` (4n + 1 endpoints; every
source of a tenant reaches the whole other rack on 5 TCP ports) is measured twice in the
same run: as generated (the baseline: every rule an allow) and with ordered rules added —
a guardrail denying the first service port everywhere (priority 10), a ``pass`` of that
port from rack A's first six endpoints (priority 5, so it overlaps the deny and the tenant
tier is copied under it), and in every tenant a deny policy keeping rack A away from one
rack-B endpoint (priority 100). Columns: flows compiled, CPU seconds of the expected
relation (``expected_reachability``) and of a full proof (``verify``, wavefront engine,
report included), ordered / baseline ratios, and the exponent of each proof curve (least
squares of log seconds over log endpoints). Times are CPU seconds of this process, each
case on a freshly resolved network. ``--quick`` (n = 3, 6) keeps the script from rotting:
a unit test runs it. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from segctl.flows.compiler import compile_network  # noqa: E402
from segctl.openflow.ofctl import parse_flows  # noqa: E402
from segctl.topology.analysis import expected_reachability  # noqa: E402
from segctl.topology.network import Network, resolve  # noqa: E402
from segctl.topology.schema import Intent  # noqa: E402
from segctl.topology.synthetic import SERVICE_PORT_BASE, two_rack  # noqa: E402
from segctl.verifier.verify import verify  # noqa: E402

__all__ = ["main", "measure", "ordered_two_rack"]

T = TypeVar("T")


def ordered_two_rack(n: int) -> Intent:
    """:func:`two_rack` ``(n)`` with the guardrails and deny policies described above."""
    doc = two_rack(n).model_dump(mode="json", by_alias=True, exclude_none=True)
    port = SERVICE_PORT_BASE
    doc["guardrails"] = [
        {
            "name": "quarter-passes",
            "priority": 5,
            "action": "pass",
            # hosts 10.0.0.10..15: rack A's first six endpoints (two_rack numbers hosts from .10)
            "from": {"cidr": "10.0.0.8/29"},
            "services": [{"proto": "tcp", "port": port}],
        },
        {
            "name": "no-first-port",
            "priority": 10,
            "action": "deny",
            "services": [{"proto": "tcp", "port": port}],
        },
    ]
    for tenant in doc["tenants"]:
        if tenant.get("policies"):
            tenant["policies"].append(
                {
                    "name": "not-b0",
                    "action": "deny",
                    "priority": 100,
                    "from": {"group": "A"},
                    "to": {"endpoint": "b0"},
                    "services": [{"proto": "tcp"}],
                }
            )
    return Intent.model_validate(doc)


def _cpu(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


def _case(intent: Intent) -> dict[str, float]:
    network: Network = resolve(intent)
    programs = compile_network(network)
    tables = {name: parse_flows(p.flows_text(), source=name) for name, p in programs.items()}
    reach, analysis = _cpu(lambda: expected_reachability(resolve(intent)))
    report, proof = _cpu(lambda: verify(network, tables))
    if not report.ok:
        raise SystemExit(f"the compiled tables do not verify ({len(network.endpoints)} endpoints)")
    return {
        "endpoints": len(network.endpoints),
        "flows": sum(len(t) for t in tables.values()),
        "pairs": len(reach),
        "analysis_s": analysis,
        "proof_s": proof,
    }


def measure(sizes: list[int]) -> list[dict[str, Any]]:
    """One row per size: the baseline and the ordered case."""
    rows = []
    for n in sizes:
        base, ordered = _case(two_rack(n)), _case(ordered_two_rack(n))
        rows.append(
            {
                "n": n,
                "baseline": base,
                "ordered": ordered,
                "proof_ratio": ordered["proof_s"] / max(base["proof_s"], 1e-9),
                "analysis_ratio": ordered["analysis_s"] / max(base["analysis_s"], 1e-9),
            }
        )
    return rows


def exponent(rows: list[dict[str, Any]], which: str) -> float | None:
    """Least-squares exponent of proof seconds over endpoints (None with fewer than 2 sizes)."""
    pts = [(math.log(r[which]["endpoints"]), math.log(max(r[which]["proof_s"], 1e-6))) for r in rows]
    if len(pts) < 2:
        return None
    mx, my = sum(x for x, _ in pts) / len(pts), sum(y for _, y in pts) / len(pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / den if den else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20,40,80", help="two_rack sizes n (4n + 1 endpoints)")
    parser.add_argument("--quick", action="store_true", help="n = 3, 6: seconds")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    sizes = [3, 6] if args.quick else [int(s) for s in args.sizes.split(",")]
    rows = measure(sizes)
    if args.json:
        exponents = {k: exponent(rows, k) for k in ("baseline", "ordered")}
        print(json.dumps({"rows": rows, "exponent": exponents}))
        return 0
    print("endpoints  flows (base / ordered)  pairs  analysis s  proof s  proof ratio")
    for r in rows:
        b, o = r["baseline"], r["ordered"]
        print(
            f"{b['endpoints']:9}  {b['flows']:>7} / {o['flows']:<7}  {b['pairs']:>6} / {o['pairs']:<6}  "
            f"{b['analysis_s']:.2f} / {o['analysis_s']:.2f}  {b['proof_s']:.2f} / {o['proof_s']:.2f}  "
            f"x{r['proof_ratio']:.2f}"
        )
    for which in ("baseline", "ordered"):
        e = exponent(rows, which)
        print(f"proof exponent {which}: {'-' if e is None else f'{e:.2f}'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
