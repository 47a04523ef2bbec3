"""Verifier timing: ``segctl.verifier.verify.verify`` on compiled example and synthetic tables.

Usage::

    .venv/bin/python bench/verify.py [--quick] [--scale] [--incremental-only] [--repeats N]
                                     [--markdown FILE] [--json FILE]

Per case the tables are compiled once, written as ``ovs-ofctl`` text and parsed back (what
the controller's gate and live check hand the verifier). Figures are process CPU seconds
(median of ``--repeats``), so the noise of other jobs on the machine shows up less than in
wall time. Baselines from the same run: parsing the same tables, and one symbolic engine
run (run A, every conntrack state) over them; ``verify`` runs the engine twice (A and
all-new) plus the reply injections and the six property checks. See docs/performance.md.

Incremental rows: a full ``verify`` of an intent after a one-policy change (one tenant's
first policy: its first TCP port becomes 9000, recompiled) against an
:class:`~segctl.verifier.incremental.IncrementalVerifier` that verified the intent before the
change, in the same process (CPU seconds, ratio; target >= 20x), with what it re-ran and
whether its report equals the full run's. Cases: k=4 T=10 N=60, k=4 T=40 N=240 (not with
``--quick``), k=8 T=100 N=2000 with ``--scale`` (its full proof takes many minutes).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.table import Row, publish, seconds_text  # noqa: E402
from segctl.flows.compiler import compile_network  # noqa: E402
from segctl.openflow.ofctl import Flow, parse_flows  # noqa: E402
from segctl.topology.network import Network, load_network, resolve  # noqa: E402
from segctl.topology.schema import Intent  # noqa: E402
from segctl.topology.synthetic import synthetic_intent  # noqa: E402
from segctl.verifier.headerspace import HeaderSpace  # noqa: E402
from segctl.verifier.incremental import IncrementalVerifier  # noqa: E402
from segctl.verifier.report import VerificationReport  # noqa: E402
from segctl.verifier.symbolic import Engine, Topology  # noqa: E402
from segctl.verifier.verify import verify  # noqa: E402

__all__ = ["main", "measure", "measure_incremental"]

#: One intent change verifies twice (gate + live); the update target is p95 < 1 s end to end.
LEAF_SPINE_TARGET_S = 0.4
#: Issue #4 point 9: incremental re-verification after a one-policy change vs a full run.
INCREMENTAL_TARGET = 20.0
#: (k, tenants, endpoints) of the incremental cases: always, unless --quick, with --scale.
INCREMENTAL_CASES = ((4, 10, 60), (4, 40, 240), (8, 100, 2000))


def _cpu(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def measure(name: str, network: Network, repeats: int) -> dict[str, object]:
    """CPU seconds of compile, parse, one engine run and ``verify`` for ``network``'s compiled
    tables, and the BDD manager's size after the proof (``verify`` is a fresh
    IncrementalVerifier's one call: the same object, kept, gives the node counts)."""
    start = time.process_time()
    texts = {sw: prog.flows_text() for sw, prog in compile_network(network).items()}
    compile_s = time.process_time() - start
    tables = {sw: parse_flows(text) for sw, text in texts.items()}
    parse_s = _cpu(lambda: {sw: parse_flows(text) for sw, text in texts.items()}, repeats)
    topo = Topology.from_network(network)
    engine_s = _cpu(lambda: Engine(tables, topo, hs=HeaderSpace()).run(), repeats)
    reports = []
    verifiers: list[IncrementalVerifier] = []

    def one_proof() -> None:
        verifiers.append(IncrementalVerifier(precise=False))  # what verify() does
        reports.append(verifiers[-1].verify(network, tables))

    verify_s = _cpu(one_proof, repeats)
    report = reports[-1]
    return {
        "name": name,
        "compile_s": compile_s,
        "bdd": _bdd_nodes(verifiers[-1]),
        "flows": sum(len(f) for f in tables.values()),
        "switches": len(tables),
        "endpoints": len(network.endpoints),
        "parse_s": parse_s,
        "engine_s": engine_s,
        "verify_s": verify_s,
        "ok": report.ok,
        "paths": report.paths,
    }


def _row(r: dict[str, object]) -> Row:
    verify_s, engine_s, parse_s = float(r["verify_s"]), float(r["engine_s"]), float(r["parse_s"])  # type: ignore[arg-type]
    leaf_spine = r["name"] == "leaf-spine"
    bdd: dict[str, int] = r["bdd"]  # type: ignore[assignment]
    target = f"< {seconds_text(LEAF_SPINE_TARGET_S)} (2 per update, p95 < 1 s)" if leaf_spine else ""
    return Row(
        f"verify {r['name']}",
        seconds_text(verify_s),
        f"1 engine run {seconds_text(engine_s)}; parse {seconds_text(parse_s)}",
        f"{verify_s / engine_s:.1f}x engine run",
        target,
        (verify_s < LEAF_SPINE_TARGET_S) if leaf_spine else None,
        f"{r['flows']:,} flows, {r['switches']} switches, {r['endpoints']} endpoints, "
        f"{r['paths']:,} paths, ok={r['ok']}; compile {seconds_text(float(r['compile_s']))}; "  # type: ignore[arg-type]
        f"BDD {bdd['nodes']:,} nodes live, {bdd['peak_nodes']:,} peak",
    )


def flip_port(intent: Intent, tenant: int = 0, port: int = 9000) -> Intent:
    """``intent`` with the first TCP port of ``tenant``'s first policy changed to ``port``."""
    doc = intent.model_dump(mode="json", by_alias=True, exclude_none=True)
    doc["tenants"][tenant]["policies"][0]["services"][0]["ports"] = [{"lo": port, "hi": port}]
    return Intent.model_validate(doc)


def _tables(network: Network) -> dict[str, list[Flow]]:
    texts = {sw: prog.flows_text() for sw, prog in compile_network(network).items()}
    return {sw: parse_flows(text) for sw, text in texts.items()}


def _comparable(report: VerificationReport) -> dict[str, object]:
    doc = report.to_json()
    doc.pop("generated")
    doc["engine"].pop("seconds")
    return doc


def measure_incremental(name: str, intent: Intent, repeats: int) -> dict[str, object]:
    """CPU seconds of a full ``verify`` after a one-policy change vs an IncrementalVerifier
    that verified the state before it (median of ``repeats``; each repeat re-verifies the old
    state untimed first)."""
    old = resolve(intent)
    new = resolve(flip_port(intent))
    old_tables, new_tables = _tables(old), _tables(new)
    full: list[VerificationReport] = []
    full_s = _cpu(lambda: full.append(verify(new, new_tables)), 1)
    verifier = IncrementalVerifier()
    times, stats, incremental = [], None, []
    for _ in range(repeats):
        verifier.verify(old, old_tables)  # the first one is a full proof, later ones revert
        start = time.process_time()
        incremental.append(verifier.verify(new, new_tables))
        times.append(time.process_time() - start)
        stats = verifier.stats
    assert stats is not None
    start = time.process_time()
    same = verifier.verify(new, new_tables)  # e.g. the live check right after the gate
    unchanged_s = time.process_time() - start
    assert verifier.stats is not None and verifier.stats.mode == "unchanged"
    return {
        "kind": "incremental",
        "name": name,
        "flows": sum(len(f) for f in new_tables.values()),
        "endpoints": len(new.endpoints),
        "full_s": full_s,
        "incremental_s": statistics.median(times),
        "first_s": times[0],
        "unchanged_s": unchanged_s,
        "equal": all(_comparable(r) == _comparable(full[-1]) for r in [*incremental, same]),
        "ok": full[-1].ok,
        "stats": stats.to_json(),
    }


#: Issue #4 point 9: the full proof of the k=8 case, CPU seconds on this 2-core machine.
SCALE_TARGET_S = 30.0


def _bdd_nodes(verifier: IncrementalVerifier) -> dict[str, int]:
    hs = verifier.header_space
    if hs is None:
        return {"nodes": 0, "peak_nodes": 0}
    st = hs.bdd.statistics()
    return {"nodes": int(st["n_nodes"]), "peak_nodes": int(st["peak_nodes"])}


def measure_scale(k: int, tenants: int, endpoints: int) -> dict[str, object]:
    """The scale case in one pass: compile, parse, the full proof (a fresh
    IncrementalVerifier's first call is exactly ``verify``), BDD sizes, then the one-policy
    change re-verified incrementally, and the same tables again. A second full proof of the
    changed state (for the report-equality check) is left out here: at this size it costs as
    much as the first; equality is what tests/test_incremental.py checks on smaller fabrics."""
    intent = synthetic_intent(k=k, tenants=tenants, endpoints=endpoints)
    old, new = resolve(intent), resolve(flip_port(intent))
    start = time.process_time()
    texts = {sw: prog.flows_text() for sw, prog in compile_network(old).items()}
    compile_s = time.process_time() - start
    start = time.process_time()
    old_tables = {sw: parse_flows(text) for sw, text in texts.items()}
    parse_s = time.process_time() - start
    new_tables = _tables(new)
    t0 = time.monotonic()

    def say(msg: str) -> None:
        print(f"[bench]   {time.monotonic() - t0:7.1f} s  {msg}", file=sys.stderr, flush=True)

    verifier = IncrementalVerifier()
    start = time.process_time()
    report = verifier.verify(old, old_tables, progress=say)
    full_s = time.process_time() - start
    full_nodes = _bdd_nodes(verifier)
    start = time.process_time()
    changed = verifier.verify(new, new_tables, progress=say)
    incremental_s = time.process_time() - start
    stats = verifier.stats
    start = time.process_time()
    verifier.verify(new, new_tables)
    unchanged_s = time.process_time() - start
    assert stats is not None and verifier.stats is not None and verifier.stats.mode == "unchanged"
    return {
        "kind": "scale",
        "name": f"k={k} T={tenants} N={endpoints}",
        "flows": sum(len(f) for f in old_tables.values()),
        "switches": len(old_tables),
        "endpoints": len(old.endpoints),
        "compile_s": compile_s,
        "parse_s": parse_s,
        "full_s": full_s,
        "paths": report.paths,
        "ok": report.ok,
        "changed_ok": changed.ok,
        "bdd": full_nodes,
        "incremental_s": incremental_s,
        "unchanged_s": unchanged_s,
        "stats": stats.to_json(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _scale_rows(r: dict[str, object]) -> list[Row]:
    full_s, incr_s = float(r["full_s"]), float(r["incremental_s"])  # type: ignore[arg-type]
    st: dict[str, object] = r["stats"]  # type: ignore[assignment]
    bdd: dict[str, int] = r["bdd"]  # type: ignore[assignment]
    return [
        Row(
            f"full proof {r['name']}",
            seconds_text(full_s),
            f"compile {seconds_text(float(r['compile_s']))}; parse {seconds_text(float(r['parse_s']))}",  # type: ignore[arg-type]
            f"{full_s / float(r['compile_s']):.0f}x compile",  # type: ignore[arg-type]
            f"< {SCALE_TARGET_S:.0f} s",
            full_s < SCALE_TARGET_S,
            f"{r['flows']:,} flows, {r['switches']} switches, {r['endpoints']} endpoints, "
            f"{r['paths']:,} paths, ok={r['ok']}; BDD {bdd['nodes']:,} nodes live, "
            f"{bdd['peak_nodes']:,} peak; peak RSS {float(r['peak_rss_mib']) / 1024:.1f} GiB",  # type: ignore[arg-type]
        ),
        Row(
            f"incremental {r['name']}",
            seconds_text(incr_s),
            f"full proof {seconds_text(full_s)}",
            f"{full_s / incr_s:.1f}x faster",
            f">= {INCREMENTAL_TARGET:.0f}x",
            full_s / incr_s >= INCREMENTAL_TARGET,
            f"one policy's TCP port flipped in one tenant; re-ran A {st['rerun_any']}/{st['ingresses']}, "
            f"N {st['rerun_new']}/{st['ingresses']} ingresses, {st['rerun_replies']}/{st['replies']} "
            f"reply injections; {st['recomputed']}/{st['contributions']} contributions; expectations of "
            f"{st['expected']}/{r['endpoints']} sources; same tables "
            f"again {seconds_text(float(r['unchanged_s']))}; ok after the change: {r['changed_ok']}",  # type: ignore[arg-type]
        ),
    ]


def _incremental_row(r: dict[str, object]) -> Row:
    full_s, incr_s = float(r["full_s"]), float(r["incremental_s"])  # type: ignore[arg-type]
    st: dict[str, object] = r["stats"]  # type: ignore[assignment]
    ratio = full_s / incr_s
    return Row(
        f"incremental {r['name']}",
        seconds_text(incr_s),
        f"full verify {seconds_text(full_s)}",
        f"{ratio:.1f}x faster",
        f">= {INCREMENTAL_TARGET:.0f}x",
        ratio >= INCREMENTAL_TARGET,
        f"one policy's TCP port flipped in one tenant; re-ran A {st['rerun_any']}/{st['ingresses']}, "
        f"N {st['rerun_new']}/{st['ingresses']} ingresses, {st['rerun_replies']}/{st['replies']} "
        f"reply injections; {st['recomputed']}/{st['contributions']} contributions; "
        f"expectations of {st['expected']}/{r['endpoints']} sources; "
        f"{st['reindexed']}/{st['switches']} switches re-indexed; first call after the full proof "
        f"{seconds_text(float(r['first_s']))} (median of all: {seconds_text(incr_s)}); same tables again "  # type: ignore[arg-type]
        f"{seconds_text(float(r['unchanged_s']))}; reports equal to full: {r['equal']}",  # type: ignore[arg-type]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/verify.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="leaf-spine and the smallest synthetic only")
    parser.add_argument("--repeats", type=int, default=3, help="median of this many runs (default 3)")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the table as Markdown")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the raw figures as JSON")
    parser.add_argument("--scale", action="store_true", help="add the k=8 T=100 N=2000 incremental case")
    parser.add_argument("--incremental-only", action="store_true", help="only the incremental rows")
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
    for name, build in [] if args.incremental_only else cases:
        print(f"[bench] verify {name}", file=sys.stderr, flush=True)
        repeats = args.repeats if name in ("leaf-spine", "two-tenants") else 1
        results.append(measure(name, build(), repeats))
    rows = [_row(r) for r in results]
    chosen = list(INCREMENTAL_CASES[:1] if args.quick else INCREMENTAL_CASES[:2])
    for k, n_tenants, n_endpoints in chosen:
        name = f"k={k} T={n_tenants} N={n_endpoints}"
        print(f"[bench] incremental {name}", file=sys.stderr, flush=True)
        intent = synthetic_intent(k=k, tenants=n_tenants, endpoints=n_endpoints)
        result = measure_incremental(name, intent, args.repeats)
        results.append(result)
        rows.append(_incremental_row(result))
    if args.scale:
        k, n_tenants, n_endpoints = INCREMENTAL_CASES[2]
        print(
            f"[bench] scale k={k} T={n_tenants} N={n_endpoints} (the full proof takes long)", file=sys.stderr
        )
        result = measure_scale(k, n_tenants, n_endpoints)
        results.append(result)
        rows.extend(_scale_rows(result))
    publish(rows, results, markdown=args.markdown, json_path=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
