"""Partitioned proofs: whole-proof wall seconds on 1 worker vs 2 workers.

Usage::

    .venv/bin/python bench/parallel.py [--k 8] [--tenants 20] [--endpoints 400]
                                       [--engine wavefront] [--no-dask] [--repeats N]
                                       [--markdown FILE]

On the fat-tree ``synthetic_intent(k, tenants, endpoints)`` (compiled, written as
``ovs-ofctl`` text and parsed back, as ``segctl verify --flows`` reads it): the proof in
this process (``verify_local(jobs=1)``, i.e. ``verify()``), on a local pool of 2
processes (``--jobs 2``), and on a local Dask cluster of 1 and then 2 worker processes
(``--cluster``; the cluster's start is not counted, connecting and shipping the tables
are). Figures are wall seconds of the whole proof, report included; every report must
equal the first one (JSON minus timings and the engine section). ``--repeats N``: the modes
take turns N times and each figure is its best round. A last row gives CPU seconds measured
in this process: the whole proof against the longest of the two parts of ``--jobs 2`` (each
proven alone) plus the merge, the bound two workers approach on two idle cores, which a
loaded machine's wall figures cannot show. See docs/performance.md,
"Partitioned proofs: 1 vs 2 workers".
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.table import Row, publish, seconds_text  # noqa: E402
from segctl.flows.compiler import compile_network  # noqa: E402
from segctl.openflow.ofctl import Flow, parse_flows  # noqa: E402
from segctl.topology.network import Network, resolve  # noqa: E402
from segctl.topology.synthetic import synthetic_intent  # noqa: E402
from segctl.verifier.parallel import (  # noqa: E402
    PARTS_PER_WORKER,
    loopback_cluster,
    prove_one,
    verify_cluster,
    verify_local,
)
from segctl.verifier.report import VerificationReport, merge_parts  # noqa: E402
from segctl.verifier.verify import ENGINES, partitions  # noqa: E402

__all__ = ["main"]

Tables = dict[str, list[Flow]]


def _comparable(report: VerificationReport) -> dict[str, Any]:
    doc = report.to_json()
    doc.pop("generated")
    doc.pop("engine")
    return doc


def _wall(fn: Callable[[], VerificationReport]) -> tuple[float, VerificationReport]:
    start = time.monotonic()
    report = fn()
    return time.monotonic() - start, report


def _on_cluster(
    network: Network, tables: Tables, workers: int, engine: str
) -> tuple[float, VerificationReport]:
    """The proof's wall seconds and report on a fresh local cluster (its start not counted)."""
    cluster = loopback_cluster(workers)
    try:
        return _wall(lambda: verify_cluster(network, tables, cluster.scheduler_address, engine=engine))
    finally:
        cluster.close()


def _cpu_split(network: Network, tables: Tables, engine: str) -> tuple[float, list[float], float]:
    """CPU seconds in this process: the whole proof; each part of ``--jobs 2`` proven alone,
    one after another; and their merge. The longest part plus the merge is the wall time two
    workers approach on two otherwise idle cores (less their start-up)."""
    start = time.process_time()
    verify_local(network, tables, jobs=1, engine=engine)
    whole = time.process_time() - start
    cpu, proven = [], []
    for sources in partitions(network, 2):
        start = time.process_time()
        proven.append(prove_one(network, tables, engine, sources))
        cpu.append(time.process_time() - start)
    start = time.process_time()
    merge_parts(network, tables, proven, time.monotonic())
    return whole, cpu, time.process_time() - start


def measure(k: int, tenants: int, endpoints: int, engine: str, dask: bool, repeats: int) -> list[Row]:
    """The rows of one fabric: 1 process, pool of 2, and Dask 1 and 2 workers, each the best
    of ``repeats`` rounds (the modes take turns in every round, so load hits them alike)."""
    network = resolve(synthetic_intent(k=k, tenants=tenants, endpoints=endpoints))
    tables = {sw: parse_flows(prog.flows_text()) for sw, prog in compile_network(network).items()}
    flows = sum(len(f) for f in tables.values())
    case = f"k={k} T={tenants} N={endpoints} ({flows:,} flows, {len(network.tenants)} tenants)"
    # name -> (parts, one timed proof)
    modes: dict[str, tuple[int, Callable[[], tuple[float, VerificationReport]]]] = {
        "1 process": (1, lambda: _wall(lambda: verify_local(network, tables, jobs=1, engine=engine))),
        "--jobs 2": (2, lambda: _wall(lambda: verify_local(network, tables, jobs=2, engine=engine))),
    }
    if dask:
        for workers in (1, 2):
            name = f"--cluster, {workers} Dask worker{'s' if workers > 1 else ''}"
            modes[name] = (
                workers * PARTS_PER_WORKER,
                partial(_on_cluster, network, tables, workers, engine),
            )
    best: dict[str, float] = {}
    reports: dict[str, VerificationReport] = {}
    for r in range(repeats):
        for name, (_, run) in modes.items():
            print(f"{case}: round {r + 1}/{repeats}, {name} ...", file=sys.stderr, flush=True)
            seconds, reports[name] = run()
            best[name] = min(best.get(name, seconds), seconds)
            print(f"  {seconds:.2f} s, load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    print(f"{case}: CPU of the whole proof and of each part ...", file=sys.stderr, flush=True)
    whole, parts_cpu, merge = _cpu_split(network, tables, engine)
    one_s, expected = best["1 process"], _comparable(reports["1 process"])
    rows = [
        Row(
            f"proof, 1 process, {case}",
            seconds_text(one_s),
            "-",
            "-",
            "",
            None,
            f"ok={reports['1 process'].ok}",
        )
    ]
    for name, (parts, _) in list(modes.items())[1:]:
        rows.append(
            Row(
                f"proof, {name}",
                seconds_text(best[name]),
                f"1 process {seconds_text(one_s)}",
                f"{one_s / best[name]:.2f}x",
                "same report",
                _comparable(reports[name]) == expected,
                f"{parts} parts"
                + ("; local pool, forkserver" if name == "--jobs 2" else "; cluster start not counted"),
            )
        )
    path = max(parts_cpu) + merge
    rows.append(
        Row(
            "CPU: longest of 2 parts + merge",
            seconds_text(path),
            f"1 process {seconds_text(whole)} CPU",
            f"{whole / path:.2f}x",
            "",
            None,
            "parts " + " + ".join(seconds_text(c) for c in parts_cpu) + f" CPU one after another, "
            f"merge {seconds_text(merge)}: the bound for 2 workers on 2 idle cores",
        )
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=8, help="fat-tree arity (default 8)")
    parser.add_argument("--tenants", type=int, default=20, help="workload tenants (default 20)")
    parser.add_argument("--endpoints", type=int, default=400, help="workload endpoints (default 400)")
    parser.add_argument("--engine", choices=ENGINES, default=ENGINES[0])
    parser.add_argument("--no-dask", action="store_true", help="only the local pool")
    parser.add_argument("--repeats", type=int, default=1, help="rounds; each figure is the best (default 1)")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown")
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
    rows = measure(args.k, args.tenants, args.endpoints, args.engine, not args.no_dask, max(1, args.repeats))
    publish(rows, [r.to_json() for r in rows], markdown=args.markdown)
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
