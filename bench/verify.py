"""Verifier timing: ``segctl.flows.verify.verify`` on compiled example and synthetic tables.

Usage::

    .venv/bin/python bench/verify.py [--quick] [--repeats N] [--markdown FILE] [--json FILE]

Per case the tables are compiled once, written as ``ovs-ofctl`` text and parsed back (what
the controller's gate and live check hand the verifier). Figures are process CPU seconds
(median of ``--repeats``), so the noise of other jobs on the machine shows up less than in
wall time. Baselines from the same run: parsing the same tables, and one symbolic engine
run (run A, every conntrack state) over them; ``verify`` runs the engine twice (A and
all-new) plus the reply injections and the six property checks. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.table import Row, markdown_table, text_table  # noqa: E402
from segctl.flows.compiler import compile_network  # noqa: E402
from segctl.flows.headerspace import HeaderSpace  # noqa: E402
from segctl.flows.ofctl import parse_flows  # noqa: E402
from segctl.flows.symbolic import Engine, Topology  # noqa: E402
from segctl.flows.verify import verify  # noqa: E402
from segctl.topology.network import Network, load_network, resolve  # noqa: E402
from segctl.topology.synthetic import synthetic_intent  # noqa: E402

__all__ = ["main", "measure"]

#: One intent change verifies twice (gate + live); the update target is p95 < 1 s end to end.
LEAF_SPINE_TARGET_S = 0.4


def _cpu(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def measure(name: str, network: Network, repeats: int) -> dict[str, object]:
    """CPU seconds of parse, one engine run and ``verify`` for ``network``'s compiled tables."""
    texts = {sw: prog.flows_text() for sw, prog in compile_network(network).items()}
    tables = {sw: parse_flows(text) for sw, text in texts.items()}
    parse_s = _cpu(lambda: {sw: parse_flows(text) for sw, text in texts.items()}, repeats)
    topo = Topology.from_network(network)
    engine_s = _cpu(lambda: Engine(tables, topo, hs=HeaderSpace()).run(), repeats)
    reports = []
    verify_s = _cpu(lambda: reports.append(verify(network, tables)), repeats)
    report = reports[-1]
    return {
        "name": name,
        "flows": sum(len(f) for f in tables.values()),
        "switches": len(tables),
        "endpoints": len(network.endpoints),
        "parse_s": parse_s,
        "engine_s": engine_s,
        "verify_s": verify_s,
        "ok": report.ok,
        "paths": report.paths,
    }


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _row(r: dict[str, object]) -> Row:
    verify_s, engine_s, parse_s = float(r["verify_s"]), float(r["engine_s"]), float(r["parse_s"])  # type: ignore[arg-type]
    leaf_spine = r["name"] == "leaf-spine"
    target = f"< {_fmt(LEAF_SPINE_TARGET_S)} (2 per update, p95 < 1 s)" if leaf_spine else ""
    return Row(
        f"verify {r['name']}",
        _fmt(verify_s),
        f"1 engine run {_fmt(engine_s)}; parse {_fmt(parse_s)}",
        f"{verify_s / engine_s:.1f}x engine run",
        target,
        (verify_s < LEAF_SPINE_TARGET_S) if leaf_spine else None,
        f"{r['flows']:,} flows, {r['switches']} switches, {r['endpoints']} endpoints, "
        f"{r['paths']:,} paths, ok={r['ok']}",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/verify.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="leaf-spine and the smallest synthetic only")
    parser.add_argument("--repeats", type=int, default=3, help="median of this many runs (default 3)")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the table as Markdown")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the raw figures as JSON")
    args = parser.parse_args(argv)

    cases: list[tuple[str, Callable[[], Network]]] = [
        ("leaf-spine", lambda: load_network(REPO / "examples" / "leaf-spine.yaml")),
        ("two-tenants", lambda: load_network(REPO / "examples" / "two-tenants.yaml")),
    ]
    sizes = [(3, 12)] if args.quick else [(3, 12), (6, 30), (10, 60)]
    for tenants, endpoints in sizes:
        cases.append(
            (
                f"k=4 T={tenants} N={endpoints}",
                lambda t=tenants, e=endpoints: resolve(synthetic_intent(k=4, tenants=t, endpoints=e)),
            )
        )
    results = []
    for name, build in cases:
        print(f"[bench] verify {name}", file=sys.stderr, flush=True)
        repeats = args.repeats if name in ("leaf-spine", "two-tenants") else 1
        results.append(measure(name, build(), repeats))
    rows = [_row(r) for r in results]
    print(text_table(rows), end="")
    if args.markdown:
        args.markdown.write_text(markdown_table(rows))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
