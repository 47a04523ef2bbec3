"""Verifier benchmark: how a full proof grows, both engines side by side, and incremental
re-verification after a one-policy change.

Usage::

    .venv/bin/python bench/verify.py [--sizes 20,40,80,160] [--quick] [--big] [--huge]
                                     [--reference-budget SECONDS] [--cpu-limit SECONDS]
                                     [--memory-limit GIB] [--output table|markdown|json]

Every measurement runs in a fresh worker process (this script with ``--worker``), so a peak
RSS is that run's own; the parent also reads each worker's CPU time and peak RSS from
``wait4``, so a run stopped by a limit still has figures. Times are CPU seconds
(``time.process_time``): the machine is shared, and CPU time shows the noise less than wall
time.

- **Dense curve**: :func:`~segctl.topology.synthetic.two_rack` ``(n)`` for each n of
  ``--sizes`` (4n + 1 endpoints). Per size the tables are compiled (``compile_network``),
  written as ``ovs-ofctl`` text and parsed back (what the controller hands the verifier), then
  proven in full (``verify``: the six properties, counterexamples and the report document)
  by the wavefront engine and by the reference engine. The reference runs under
  ``--reference-budget`` CPU seconds (its worker's ``RLIMIT_CPU``); a size its fitted curve
  predicts over the budget is skipped, with that prediction. Growth per engine: the ratio
  per doubling of endpoints and the exponent of a least-squares fit of log seconds against
  log endpoints.
- **Fat-tree rows**: ``synthetic_intent(k=4, tenants=40, endpoints=240)`` and ``(8, 20, 400)``
  (2 DNS providers more in each); ``--big`` adds ``(8, 100, 2000)`` and ``--huge``
  ``(16, 100, 10000)`` (hours and many GiB: use ``--cpu-limit``/``--memory-limit``). The
  reference engine runs on the default rows only (under the budget).
- **Incremental rows**, every case above: an ``IncrementalVerifier``'s first call (a full
  proof), then the intent with one tenant's first policy's first TCP port changed to 9000,
  recompiled and verified again (ratio full / change, and the verifier's ``Stats``), then the
  same tables once more (``unchanged``).
- **Goals** of issue 14 last, each met or not (or not measured in this run).

``--quick`` (n = 3, 6 and k=4 T=3 N=12; seconds) keeps the script from rotting: the unit
tests run it. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from segctl.flows.compiler import compile_network  # noqa: E402
from segctl.openflow.ofctl import Flow, parse_flows  # noqa: E402
from segctl.topology.network import Network, resolve  # noqa: E402
from segctl.topology.schema import Intent  # noqa: E402
from segctl.topology.synthetic import synthetic_intent, two_rack  # noqa: E402
from segctl.verifier.incremental import IncrementalVerifier  # noqa: E402
from segctl.verifier.verify import verify  # noqa: E402

__all__ = ["flip_port", "growth", "main", "measure_incremental", "measure_proof", "render"]

T = TypeVar("T")
Case = dict[str, Any]
Result = dict[str, Any]

#: two_rack(n) sizes of the dense curve: 81, 161, 321, 641 endpoints.
DENSE_SIZES = (20, 40, 80, 160)
QUICK_SIZES = (3, 6)
#: (k, tenants, workload endpoints) of the fat-tree rows.
FAT_CASES = ((4, 40, 240), (8, 20, 400))
QUICK_FAT = ((4, 3, 12),)
BIG = (8, 100, 2000)
HUGE = (16, 100, 10000)
REFERENCE_BUDGET_S = 400.0
#: Issue 14's goals (2-core machine, CPU seconds).
GOAL_DENSE = {161: 5.0, 641: 60.0}
GOAL_PER_DOUBLING = 2.5
GOAL_EXPONENT = 1.3
GOAL_BIG = (30.0, 2.0)  # seconds, GiB
GOAL_HUGE = (600.0, 8.0)
GOAL_INCREMENTAL = 20.0
SCHEMA = "segctl-bench-verify"
SCHEMA_VERSION = 1


# ------------------------------------------------------------------ cases and workers


def dense(
    n: int, ipv6: bool = False, routed: bool = False, shared6: bool = False, external: bool = False
) -> Case:
    return {"kind": "dense", "n": n, "ipv6": ipv6, "routed": routed, "shared6": shared6, "external": external}


def fat(k: int, tenants: int, endpoints: int) -> Case:
    return {"kind": "fat", "k": k, "tenants": tenants, "endpoints": endpoints}


def case_name(case: Case) -> str:
    if case["kind"] == "dense":
        return (
            f"two-rack n={case['n']}"
            + (" dual-stack" if case.get("ipv6") else "")
            + (" routed" if case.get("routed") else "")
            + (" shared6" if case.get("shared6") else "")
            + (" external" if case.get("external") else "")
        )
    return f"k={case['k']} T={case['tenants']} N={case['endpoints']}"


def case_intent(case: Case) -> Intent:
    if case["kind"] == "dense":
        return two_rack(
            int(case["n"]),
            ipv6=bool(case.get("ipv6")),
            routed=bool(case.get("routed")),
            shared6=bool(case.get("shared6")),
            external=bool(case.get("external")),
        )
    return synthetic_intent(k=int(case["k"]), tenants=int(case["tenants"]), endpoints=int(case["endpoints"]))


def flip_port(intent: Intent, tenant: int = 0, port: int = 9000) -> Intent:
    """``intent`` with the first TCP port of ``tenant``'s first policy changed to ``port``."""
    doc = intent.model_dump(mode="json", by_alias=True, exclude_none=True)
    doc["tenants"][tenant]["policies"][0]["services"][0]["ports"] = [{"lo": port, "hi": port}]
    return Intent.model_validate(doc)


def _cpu(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.process_time()
    value = fn()
    return value, time.process_time() - start


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def compiled(network: Network) -> tuple[dict[str, list[Flow]], float, float]:
    """The compiled tables as the verifier gets them (ofctl text parsed back), compile and
    parse CPU seconds."""
    texts, compile_s = _cpu(lambda: {sw: p.flows_text() for sw, p in compile_network(network).items()})
    tables, parse_s = _cpu(lambda: {sw: parse_flows(text) for sw, text in texts.items()})
    return tables, compile_s, parse_s


def _shape(network: Network, tables: dict[str, list[Flow]]) -> Result:
    return {
        "endpoints": len(network.endpoints),
        "switches": len(tables),
        "flows": sum(len(f) for f in tables.values()),
    }


def measure_proof(case: Case, engine: str) -> Result:
    """One full proof of ``case`` with ``engine`` in this process (run it in a fresh one)."""
    network = resolve(case_intent(case))
    tables, compile_s, parse_s = compiled(network)
    before = _rss_mib()
    wall = time.monotonic()
    marks: list[tuple[str, float]] = [("indexing the tables", time.process_time())]
    report, verify_s = _cpu(
        lambda: verify(
            network, tables, engine=engine, progress=lambda m: marks.append((m, time.process_time()))
        )
    )
    _, report_s = _cpu(report.to_json)
    ends = [t for _, t in marks[1:]] + [marks[0][1] + verify_s]
    phases = {m: end - t for (m, t), end in zip(marks, ends, strict=True)}
    return {
        **_shape(network, tables),
        "engine": engine,
        "compile_s": compile_s,
        "parse_s": parse_s,
        "proof_s": verify_s + report_s,
        "report_s": report_s,
        "wall_s": time.monotonic() - wall,
        "ok": report.ok,
        "failed": [p.id for p in report.properties if not p.holds],
        "work": dict(report.work),
        "phases": {**phases, "report document": report_s},
        "rss_before_proof_mib": before,
    }


def measure_incremental(case: Case) -> Result:
    """A full proof, a one-policy change and the same tables again, in one IncrementalVerifier."""
    intent = case_intent(case)
    old, new = resolve(intent), resolve(flip_port(intent))
    old_tables, compile_s, parse_s = compiled(old)
    new_tables, _, _ = compiled(new)
    verifier = IncrementalVerifier()
    steps = (("full", old, old_tables), ("change", new, new_tables), ("unchanged", new, new_tables))
    stats: dict[str, dict[str, object]] = {}
    seconds: dict[str, float] = {}
    ok: dict[str, bool] = {}
    for step, network, tables in steps:
        start = time.process_time()
        ok[step] = verifier.verify(network, tables).ok
        seconds[step] = time.process_time() - start
        assert verifier.stats is not None
        stats[step] = verifier.stats.to_json()
    changed = sum(len(set(new_tables[sw]) ^ set(old_tables[sw])) for sw in old_tables)
    return {
        **_shape(old, old_tables),
        "compile_s": compile_s,
        "parse_s": parse_s,
        "full_s": seconds["full"],
        "incremental_s": seconds["change"],
        "unchanged_s": seconds["unchanged"],
        "ratio": seconds["full"] / seconds["change"],
        "ok": ok["full"],
        "changed_ok": ok["change"],
        "flows_changed": changed,
        "stats": stats,
    }


def _worker(kind: str, params: dict[str, Any], out: Path) -> int:
    try:
        if kind == "proof":
            result = measure_proof(params["case"], params["engine"])
        elif kind == "incremental":
            result = measure_incremental(params["case"])
        else:
            raise SystemExit(f"unknown worker {kind}")
    except MemoryError:
        result = {"error": "out of memory (MemoryError)"}
    out.write_text(json.dumps(result))
    return 0


@dataclass(frozen=True)
class Limits:
    """Per-worker limits: CPU seconds (``RLIMIT_CPU``) and address space in GiB (``RLIMIT_AS``)."""

    cpu_s: float | None = None
    memory_gib: float | None = None

    def apply(self) -> None:
        """In the child, before exec."""
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGXCPU would dump core
        if self.cpu_s is not None:
            soft = max(1, math.ceil(self.cpu_s))
            resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 10))
        if self.memory_gib is not None:
            size = int(self.memory_gib * 1024**3)
            resource.setrlimit(resource.RLIMIT_AS, (size, size))


def run_worker(kind: str, params: dict[str, Any], limits: Limits) -> Result:
    """Run one measurement in a fresh process; its result plus the process's CPU seconds and
    peak RSS (from ``wait4``), or ``error`` saying why it has no result."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    with tempfile.TemporaryDirectory(prefix="segctl-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, json.dumps(params), str(out)]
        proc = subprocess.Popen(cmd, env=env, stdout=sys.stderr, preexec_fn=limits.apply)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        result: Result = json.loads(out.read_text()) if out.exists() else {}
    cpu = usage.ru_utime + usage.ru_stime
    result.update(process_cpu_s=cpu, peak_rss_mib=usage.ru_maxrss / 1024)
    if code != 0 and "error" not in result:
        result["error"] = _failure(code, cpu, limits)
    elif "error" in result and limits.memory_gib:
        result["error"] += f", address space limit {limits.memory_gib:g} GiB"
    return result


def _failure(code: int, cpu: float, limits: Limits) -> str:
    if code < 0 and -code in (signal.SIGXCPU, signal.SIGKILL) and limits.cpu_s and cpu >= limits.cpu_s - 1:
        return f"over the CPU budget: stopped after {cpu:,.0f} s of CPU (limit {limits.cpu_s:,.0f} s)"
    what = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
    memory = f", address space limit {limits.memory_gib:g} GiB" if limits.memory_gib else ""
    return f"failed ({what} after {cpu:,.0f} s of CPU{memory})"


# ---------------------------------------------------------------------- the run


def growth(points: Sequence[tuple[float, float]]) -> Result:
    """Ratios between consecutive ``(endpoints, seconds)`` points and the least-squares fit
    ``log seconds = a + exponent · log endpoints``; ``per_doubling`` is 2**exponent."""
    pts = [(n, t) for n, t in points if n > 0 and t > 0]
    ratios = [b[1] / a[1] for a, b in itertools.pairwise(pts)]
    if len(pts) < 2:
        return {"points": pts, "ratios": ratios, "exponent": None, "per_doubling": None, "intercept": None}
    xs, ys = [math.log(n) for n, _ in pts], [math.log(t) for _, t in pts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return {
        "points": pts,
        "ratios": ratios,
        "exponent": slope,
        "per_doubling": 2**slope,
        "intercept": my - slope * mx,
    }


def extrapolate(fit: Result, endpoints: float) -> float | None:
    """Seconds at ``endpoints`` on the fitted curve (None without a fit)."""
    if fit["exponent"] is None:
        return None
    return float(math.exp(fit["intercept"] + fit["exponent"] * math.log(endpoints)))


@dataclass
class Run:
    """Options of one benchmark run and its progress messages."""

    budget_s: float
    limits: Limits
    started: float
    ipv6: bool = False  # dense cases dual stack (--ipv6)
    routed: bool = False  # dense cases across two segments (--routed)
    shared6: bool = False  # the shared DNS dual stack too (--shared6)
    external: bool = False  # an uplink with SNAT, a floating IP and external policies (--external)

    def say(self, text: str) -> None:
        print(f"[bench {time.monotonic() - self.started:7.1f} s] {text}", file=sys.stderr, flush=True)

    def proof(self, case: Case, engine: str, limits: Limits | None = None) -> Result:
        self.say(f"{case_name(case)}: full proof, {engine} engine")
        result = run_worker("proof", {"case": case, "engine": engine}, limits or self.limits)
        self.say(f"  {_summary(result)}")
        return result

    def reference_limits(self) -> Limits:
        cpu = self.budget_s if self.limits.cpu_s is None else min(self.budget_s, self.limits.cpu_s)
        return Limits(cpu, self.limits.memory_gib)


def _summary(result: Result) -> str:
    if "proof_s" in result:
        return (
            f"{result['proof_s']:,.2f} s CPU, peak RSS {result['peak_rss_mib']:,.0f} MiB, ok={result['ok']}"
        )
    return str(result.get("error") or result.get("skipped"))


def dense_curve(run: Run, sizes: Sequence[int]) -> list[Result]:
    """Both engines per size; the reference only while its curve stays under the budget."""
    rows: list[Result] = []
    over: str | None = None
    for n in sizes:
        case = dense(n, run.ipv6, run.routed, run.shared6, run.external)
        wavefront = run.proof(case, "wavefront")
        endpoints = int(wavefront.get("endpoints", 4 * n + 1))
        points = [(r["endpoints"], r["reference"]["proof_s"]) for r in rows if "proof_s" in r["reference"]]
        predicted = extrapolate(growth(points), endpoints)
        reference: Result
        if run.budget_s <= 0:
            reference = {"skipped": "skipped (--reference-budget 0)"}
        elif over is not None:
            reference = {"skipped": f"skipped ({over} went over the budget of {run.budget_s:,.0f} s)"}
        elif predicted is not None and predicted > run.budget_s:
            exponent = growth(points)["exponent"]
            reference = {
                "skipped": f"skipped (extrapolated: ~{predicted:,.0f} s at N^{exponent:.1f})",
                "extrapolated_s": predicted,
            }
        else:
            reference = run.proof(case, "reference", run.reference_limits())
            if "error" in reference:
                over = f"{endpoints} endpoints"
        rows.append(
            {
                "case": case,
                "name": case_name(case),
                "endpoints": endpoints,
                "wavefront": wavefront,
                "reference": reference,
            }
        )
    return rows


def fat_rows(run: Run, cases: Sequence[Case], reference_on: Sequence[Case]) -> list[Result]:
    rows = []
    for case in cases:
        wavefront = run.proof(case, "wavefront")
        if run.budget_s > 0 and case in reference_on:
            reference = run.proof(case, "reference", run.reference_limits())
        else:
            reference = {"skipped": "not run (--big/--huge cases, or --reference-budget 0)"}
        rows.append(
            {
                "case": case,
                "name": case_name(case),
                "endpoints": wavefront.get("endpoints"),
                "wavefront": wavefront,
                "reference": reference,
            }
        )
    return rows


def incremental_rows(run: Run, proofs: Sequence[Result]) -> list[Result]:
    """One incremental row per case whose full proof (wavefront) finished."""
    rows = []
    for proof in proofs:
        case = proof["case"]
        if "proof_s" not in proof["wavefront"]:
            rows.append({"case": case, "name": case_name(case), "error": "not run: the full proof failed"})
            continue
        run.say(f"{case_name(case)}: incremental after a one-policy change")
        result = run_worker("incremental", {"case": case}, run.limits)
        if "ratio" in result:
            run.say(f"  full {result['full_s']:,.2f} s, change {result['incremental_s']:,.3f} s")
        else:
            run.say(f"  {result.get('error')}")
        rows.append({"case": case, "name": case_name(case), **result})
    return rows


def machine() -> Result:
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "commit": commit,
    }


def collect(args: argparse.Namespace) -> Result:
    """Every measurement of the run as one JSON document."""
    limits = Limits(args.cpu_limit, args.memory_limit)
    run = Run(
        args.reference_budget, limits, time.monotonic(), args.ipv6, args.routed, args.shared6, args.external
    )
    sizes = QUICK_SIZES if args.quick and not args.sizes else (args.sizes or DENSE_SIZES)
    fats = [fat(*c) for c in (QUICK_FAT if args.quick else FAT_CASES)]
    extra = [fat(*c) for c, on in ((BIG, args.big), (HUGE, args.huge)) if on]
    doc: Result = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "machine": machine()}
    doc["options"] = {
        "sizes": list(sizes),
        "reference_budget_s": args.reference_budget,
        "cpu_limit_s": args.cpu_limit,
        "memory_limit_gib": args.memory_limit,
        "ipv6": args.ipv6,
        "routed": args.routed,
        "shared6": args.shared6,
        "external": args.external,
    }
    doc["dense"] = dense_curve(run, sizes)
    doc["growth"] = {
        engine: growth(
            [(r["endpoints"], r[engine]["proof_s"]) for r in doc["dense"] if "proof_s" in r[engine]]
        )
        for engine in ("wavefront", "reference")
    }
    doc["fat_tree"] = fat_rows(run, fats + extra, fats)
    doc["incremental"] = incremental_rows(run, doc["dense"] + doc["fat_tree"])
    doc["goals"] = goals(doc)
    doc["machine"]["load_average_after"] = list(os.getloadavg())
    doc["seconds"] = time.monotonic() - run.started
    return doc


# -------------------------------------------------------------------------- goals


def _goal(goal: str, target: str, measured: str, met: bool | None) -> Result:
    return {"goal": goal, "target": target, "measured": measured, "met": met}


def _proof_at(doc: Result, endpoints: int) -> Result | None:
    for row in doc["dense"]:
        if row["endpoints"] == endpoints:
            return dict(row["wavefront"])
    return None


def _fat_goal(doc: Result, case: Case, seconds: float, gib: float, flag: str) -> Result:
    name = f"fat-tree {case_name(case)}"
    target = f"< {seconds:,.0f} s, < {gib:g} GiB"
    row = next((r["wavefront"] for r in doc["fat_tree"] if r["case"] == case), None)
    if row is None:
        return _goal(name, target, f"not run (needs {flag})", None)
    if "proof_s" not in row:
        return _goal(name, target, str(row.get("error")), False)
    rss = row["peak_rss_mib"] / 1024
    met = row["proof_s"] < seconds and rss < gib
    return _goal(name, target, f"{row['proof_s']:,.1f} s, {rss:.2f} GiB", met)


def goals(doc: Result) -> list[Result]:
    """Issue 14's goal table with this run's figures (wavefront engine)."""
    out = []
    for endpoints, limit in GOAL_DENSE.items():
        row = _proof_at(doc, endpoints)
        name, target = f"dense two-rack, {endpoints} endpoints", f"< {limit:g} s"
        if row is None:
            out.append(_goal(name, target, "not run (--sizes)", None))
        elif "proof_s" not in row:
            out.append(_goal(name, target, str(row.get("error")), False))
        else:
            out.append(_goal(name, target, f"{row['proof_s']:,.2f} s", row["proof_s"] < limit))
    fit = doc["growth"]["wavefront"]
    if fit["exponent"] is None:
        out.append(_goal("growth per doubling of endpoints", "", "needs two sizes", None))
    else:
        worst = max(fit["ratios"])
        counts = "/".join(str(int(n)) for n, _ in fit["points"])
        met = worst <= GOAL_PER_DOUBLING and fit["exponent"] <= GOAL_EXPONENT
        out.append(
            _goal(
                f"growth per doubling of endpoints over {counts}",
                f"<= x{GOAL_PER_DOUBLING} (exponent <= {GOAL_EXPONENT})",
                f"x{' / x'.join(f'{r:.2f}' for r in fit['ratios'])} (exponent {fit['exponent']:.2f})",
                met,
            )
        )
    out.append(_fat_goal(doc, fat(*BIG), *GOAL_BIG, "--big"))
    out.append(_fat_goal(doc, fat(*HUGE), *GOAL_HUGE, "--huge"))
    ratios = [r["ratio"] for r in doc["incremental"] if "ratio" in r]
    missing = len(doc["incremental"]) - len(ratios)
    measured = f"x{min(ratios):,.0f} .. x{max(ratios):,.0f} over {len(ratios)} sizes" if ratios else "none"
    if missing:
        measured += f"; {missing} failed"
    met = bool(ratios) and not missing and min(ratios) >= GOAL_INCREMENTAL
    out.append(
        _goal(
            "incremental after a one-policy change, each size",
            f">= x{GOAL_INCREMENTAL:g} faster than full",
            measured,
            met,
        )
    )
    return out


# ------------------------------------------------------------------------ output


def _s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def _mib(mib: float) -> str:
    return f"{mib:,.0f} MiB" if mib < 1024 else f"{mib / 1024:.2f} GiB"


def _cells(result: Result) -> tuple[str, str]:
    if "proof_s" in result:
        return _s(result["proof_s"]) + (
            "" if result["ok"] else " (FAILED: " + ", ".join(result["failed"]) + ")"
        ), _mib(result["peak_rss_mib"])
    if "error" in result:
        return str(result["error"]), _mib(result["peak_rss_mib"])
    return str(result.get("skipped", "-")), "-"


def _proof_table(rows: list[Result]) -> tuple[list[str], list[list[str]]]:
    head = [
        "case",
        "endpoints",
        "switches",
        "flows",
        "compile + parse",
        "wavefront CPU",
        "wavefront peak RSS",
        "reference CPU",
        "reference peak RSS",
        "reference / wavefront",
    ]
    body = []
    for r in rows:
        wf, ref = r["wavefront"], r["reference"]
        shape = wf if "flows" in wf else ref
        ratio = f"x{ref['proof_s'] / wf['proof_s']:,.0f}" if "proof_s" in wf and "proof_s" in ref else "-"
        prep = _s(shape["compile_s"] + shape["parse_s"]) if "compile_s" in shape else "-"
        body.append(
            [
                r["name"],
                str(r["endpoints"]),
                str(shape.get("switches", "-")),
                f"{shape.get('flows', 0):,}",
                prep,
                *_cells(wf),
                *_cells(ref),
                ratio,
            ]
        )
    return head, body


def _growth_table(doc: Result) -> tuple[list[str], list[list[str]]]:
    counts = [int(r["endpoints"]) for r in doc["dense"]]
    head = [
        "engine",
        *(f"{a} -> {b}" for a, b in itertools.pairwise(counts)),
        "exponent",
        "per doubling (fit)",
    ]
    body = []
    for engine, fit in doc["growth"].items():
        ratios = [f"x{r:.2f}" for r in fit["ratios"]]
        ratios += ["-"] * (len(head) - 3 - len(ratios))
        exp = "-" if fit["exponent"] is None else f"{fit['exponent']:.2f}"
        per = "-" if fit["per_doubling"] is None else f"x{fit['per_doubling']:.2f}"
        body.append([engine, *ratios, exp, per])
    return head, body


def _stats_text(st: dict[str, Any]) -> str:
    reason = f" ({st['reason']})" if st.get("reason") else ""
    return (
        f"{st['mode']}{reason}: {st['reproven']}/{st['parts']} parts proven, "
        f"{st['reindexed']}/{st['switches']} switches re-indexed, {st['changed_views']:,} changed views"
    )


def _incremental_table(rows: list[Result]) -> tuple[list[str], list[list[str]]]:
    head = [
        "case",
        "endpoints",
        "full (first call)",
        "one-policy change",
        "full / change",
        "same tables again",
        "flows changed",
        "the change call's Stats",
    ]
    body = []
    for r in rows:
        if "ratio" not in r:
            body.append([r["name"], "-", str(r.get("error")), "-", "-", "-", "-", "-"])
            continue
        body.append(
            [
                r["name"],
                str(r["endpoints"]),
                _s(r["full_s"]),
                _s(r["incremental_s"]),
                f"x{r['ratio']:,.0f}",
                _s(r["unchanged_s"]),
                f"{r['flows_changed']:,}",
                _stats_text(r["stats"]["change"]),
            ]
        )
    return head, body


def _goal_table(rows: list[Result]) -> tuple[list[str], list[list[str]]]:
    met = {True: "met", False: "MISSED", None: "-"}
    return ["goal", "target", "measured", "met?"], [
        [g["goal"], g["target"], g["measured"], met[g["met"]]] for g in rows
    ]


def _grid(head: list[str], body: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
        return "\n".join(lines) + "\n"
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [head, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def render(doc: Result, markdown: bool = False) -> str:
    """The run as tables: dense curve, growth, fat-tree rows, incremental rows, goals."""
    m = doc["machine"]
    parts = [
        f"segctl {m['commit']}, Python {m['python']}, {m['cpus']} CPUs, load average "
        f"{m['load_average'][0]:.1f} at the start, {m['load_average_after'][0]:.1f} at the end; "
        f"CPU seconds; {doc['seconds']:,.0f} s in all\n",
        "Dense two-rack curve (full proof: six properties, counterexamples, report)\n",
        _grid(*_proof_table(doc["dense"]), markdown),
        "Growth (ratio per doubling of endpoints; least-squares exponent of log s over log endpoints)\n",
        _grid(*_growth_table(doc), markdown),
        "Fat-tree rows\n",
        _grid(*_proof_table(doc["fat_tree"]), markdown),
        "Incremental: a one-policy change (one TCP port of one tenant's policy)\n",
        _grid(*_incremental_table(doc["incremental"]), markdown),
        "Goals (issue 14, wavefront engine)\n",
        _grid(*_goal_table(doc["goals"]), markdown),
    ]
    return "\n".join(parts)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes: comma-separated integers, not {text!r}") from None
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError("--sizes: at least one n >= 1")
    return sorted(set(sizes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/verify.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=_sizes, metavar="N,N,...", help="two_rack(n) sizes (default 20,40,80,160)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="the smallest sizes only (seconds; the smoke test)"
    )
    parser.add_argument(
        "--ipv6",
        action="store_true",
        help="dense cases dual stack: every endpoint has an IPv6 address, the policy carries both families",
    )
    parser.add_argument(
        "--routed",
        action="store_true",
        help="dense cases across two segments with gateways: the policy is routed (IPv6 too with --ipv6)",
    )
    parser.add_argument(
        "--shared6",
        action="store_true",
        help="with --ipv6 --routed: the shared DNS is dual stack too (the shared service carries IPv6)",
    )
    parser.add_argument(
        "--external",
        action="store_true",
        help="dense cases with an external network: SNAT per tenant, a floating IP, egress and "
        "ingress policies",
    )
    parser.add_argument("--big", action="store_true", help=f"add fat-tree {case_name(fat(*BIG))}")
    parser.add_argument("--huge", action="store_true", help=f"add fat-tree {case_name(fat(*HUGE))} (hours?)")
    parser.add_argument(
        "--reference-budget",
        type=float,
        default=REFERENCE_BUDGET_S,
        metavar="SECONDS",
        help="CPU seconds per reference-engine proof; 0: no reference (default %(default)g)",
    )
    parser.add_argument("--cpu-limit", type=float, metavar="SECONDS", help="CPU seconds per measurement")
    parser.add_argument("--memory-limit", type=float, metavar="GIB", help="address space per measurement")
    parser.add_argument("--output", choices=("table", "markdown", "json"), default="table")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "PARAMS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.shared6 and not (args.ipv6 and args.routed):
        parser.error("--shared6 needs --ipv6 and --routed (consumer segments with a gateway6)")
    if args.worker:
        kind, params, out = args.worker
        return _worker(kind, json.loads(params), Path(out))
    doc = collect(args)
    if args.output == "json":
        print(json.dumps(doc, indent=2))
    else:
        print(render(doc, markdown=args.output == "markdown"), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
