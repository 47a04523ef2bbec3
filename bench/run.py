"""segctl benchmarks: one command, one table, every figure next to a same-run baseline.

Usage::

    .venv/bin/python bench/run.py [--quick] [--only NAME ...] [--markdown FILE] [--json FILE]

NAME is one of: economy, compile, push, update, convergence, hitless. Every case runs
in its own worker process (this script with ``--worker``) so that peak memory
(``resource.getrusage``) is the case's own and nothing accumulates between cases.
Timings never appear in test assertions; they live here. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.table import Row, blocked_row, publish, seconds_text  # noqa: E402

__all__ = ["CASES", "main"]

_MARK = "BENCH-RESULT "
GIB = 1024**3


# ------------------------------------------------------------------------- workers


def _worker(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in this (fresh) process; returns its result dict."""
    if name == "economy":
        from bench.offline import flow_economy

        return flow_economy(**params)
    if name == "compile":
        from bench.offline import compile_scale

        return compile_scale(**params)
    if name == "push":
        from bench.push import push_rate

        return push_rate(**params)
    if name in ("update", "convergence", "hitless"):
        from bench import live

        func: Callable[..., dict[str, Any]] = getattr(live, name)
        return func(**params)
    raise SystemExit(f"unknown worker {name}")


def _run_worker(name: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run a worker subprocess; return its result plus its own peak RSS (bytes)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, json.dumps(params)]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARK):
            result: dict[str, Any] = json.loads(line[len(_MARK) :])
            return result
    return {"error": f"worker exited {proc.returncode} without a result"}


# --------------------------------------------------------------------------- cases


def _progress(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def case_economy(quick: bool) -> list[Row]:
    rows = []
    for size in (10, 50, 200):
        _progress(f"flow economy |A|=|B|={size} |P|=5")
        r = _run_worker("economy", {"a": size, "b": size, "p": 5}, timeout=600)
        name = f"flow economy {size}x{size}x5"
        if "error" in r:
            rows.append(blocked_row(name, "", r["error"]))
            continue
        ratio = r["naive"] / r["policy_flows"]
        target, met = ("", None) if size != 50 else (">= 50x fewer", ratio >= 50)
        totals = r["leaf_totals"]
        rows.append(
            Row(
                name,
                f"{r['policy_flows']} policy flows/switch",
                f"naive |A|·|B|·|P| = {r['naive']}",
                f"{ratio:.0f}x fewer",
                target,
                met,
                f"all flows: leafA {totals['leafA']}, leafB {totals['leafB']}",
            )
        )
    return rows


def case_compile(quick: bool) -> list[Row]:
    sizes = [(4, 100, 1000), (8, 100, 2000)] if quick else [
        (4, 100, 1000), (8, 100, 5000), (8, 500, 5000), (16, 100, 10000), (16, 500, 10000)
    ]  # fmt: skip
    rows = []
    for k, tenants, endpoints in sizes:
        _progress(f"compile fat-tree k={k}, {tenants} tenants, {endpoints} endpoints")
        r = _run_worker("compile", {"k": k, "tenants": tenants, "endpoints": endpoints}, timeout=1800)
        name = f"compile k={k} T={tenants} N={endpoints}"
        target = "< 30 s, < 4 GiB" if (k, endpoints) == (16, 10000) else ""
        if "error" in r:
            rows.append(blocked_row(name, target, r["error"]))
            continue
        rss = r["peak_rss"]
        met = (r["compile_s"] < 30 and rss < 4 * GIB) if target else None
        rows.append(
            Row(
                name,
                seconds_text(r["compile_s"]),
                f"generate+validate+resolve {seconds_text(r['resolve_s'])}",
                f"{r['compile_s'] / r['resolve_s']:.0f}x",
                target,
                met,
                f"{r['switches']} switches, {r['flows']:,} flows (max {r['max_flows_per_switch']:,}/switch), "
                f"peak {rss / GIB:.2f} GiB",
            )
        )
    return rows


def case_push(quick: bool) -> list[Row]:
    n = 10_000
    _progress(f"push {n} rules: controller bundle vs ovs-ofctl --bundle add-flows")
    r = _run_worker("push", {"n": n, "repeats": 3 if quick else 5}, timeout=900)
    target = ">= 0.8x ovs-ofctl rate"
    if "error" in r:
        return [blocked_row(f"push {n} rules", target, r["error"])]
    ctl, ofctl = r["controller_median_s"], r["ofctl_median_s"]
    ratio = ofctl / ctl
    return [
        Row(
            f"push {n} rules (1 bundle)",
            f"{seconds_text(ctl)} ({n / ctl:,.0f} rules/s)",
            f"ovs-ofctl --bundle {seconds_text(ofctl)} ({n / ofctl:,.0f} rules/s)",
            f"{ratio:.2f}x of ofctl rate",
            target,
            ratio >= 0.8,
            f"median of {len(r['controller_s'])}, cold (encoding cache empty); warm (resync of the same "
            f"flows) {seconds_text(r['warm_median_s'])} = {ofctl / r['warm_median_s']:.2f}x; {r['source']}",
        )
    ]


def _live_case(name: str, title: str, target: str, params: dict[str, Any]) -> list[Row]:
    _progress(title)
    r = _run_worker(name, params, timeout=900)
    if "error" in r:
        return [blocked_row(title, target, r["error"])]
    return [Row(**r["row"])]


def case_update(quick: bool) -> list[Row]:
    return _live_case("update", "update latency (leaf-spine, REST)", "p95 < 1 s", {"updates": 20})


def case_convergence(quick: bool) -> list[Row]:
    rules = 2_000 if quick else 10_000
    return _live_case(
        "convergence", f"convergence after switch restart ({rules:,} rules)", "< 3 s", {"rules": rules}
    )


def case_hitless(quick: bool) -> list[Row]:
    return _live_case("hitless", "hitless updates (ping loss)", "0 lost", {"updates": 20})


CASES: dict[str, Callable[[bool], list[Row]]] = {
    "economy": case_economy,
    "compile": case_compile,
    "push": case_push,
    "update": case_update,
    "convergence": case_convergence,
    "hitless": case_hitless,
}


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    parser.add_argument("--only", action="append", choices=sorted(CASES), metavar="NAME",
                        help=f"run only this case (repeatable): {', '.join(CASES)}")  # fmt: skip
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the table as Markdown")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "PARAMS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        name, params = args.worker
        result = _worker(name, json.loads(params))
        result["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
        sys.stdout.flush()
        print(_MARK + json.dumps(result), flush=True)
        return 0

    rows: list[Row] = []
    started = time.monotonic()
    for name in args.only or list(CASES):
        rows += CASES[name](args.quick)
    _progress(f"done in {time.monotonic() - started:.0f} s")
    publish(rows, [r.to_json() for r in rows], markdown=args.markdown, json_path=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
