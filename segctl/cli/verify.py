"""``segctl verify``: prove the flow tables against the intent.

``segctl verify FILE [--flows DIR | --live [--bridge-prefix P]] [--report DIR]
[--engine NAME] [--jobs N | --cluster ADDRESS [--cluster-timeout S]]`` exits 0 when every
property holds, 1 on a violation, 2 on bad input (an unreachable cluster too).
``--report DIR`` writes ``report.json`` (schema in ``docs/report.md``), ``report.md`` and
``report.html``. ``--jobs`` and ``--cluster`` prove partitions of the sources on local
processes or on a Dask cluster (:mod:`segctl.verifier.parallel`): the same report.

The tables come from ``--flows DIR`` (``DIR/<switch>.flows``), from ``--live`` (the
running bridges), or, with neither, from compiling the intent in memory: one step from an
intent to a proof, nothing written (:mod:`segctl.cli._tables`).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from segctl.cli._tables import add_source_options, load_tables, source_text
from segctl.cli.common import EXIT_OK, EXIT_VIOLATION, add_output_option, print_json
from segctl.errors import SegctlError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``verify``."""
    p = subparsers.add_parser(
        "verify",
        help="prove isolation and policy conformance of flow tables against an intent",
        description="Check the six properties (isolation, conformance, allowed traffic delivered, "
        "spoof guard, loops/black holes, commit safety) of the flow tables against the intent. "
        "Exit 0 when all hold, 1 on a violation, 2 on bad input.",
    )
    p.add_argument("file", metavar="FILE", help="intent file (.yaml, .yml or .json)")
    add_source_options(p)
    p.add_argument("--report", metavar="DIR", help="write report.json, report.md and report.html to DIR")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default=ENGINES[0],
        help=f"the verifier engine (default {ENGINES[0]}; reference: the older per-ingress one, "
        "kept for agreement)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--jobs",
        type=_jobs,
        default=1,
        metavar="N",
        help="prove partitions of the sources (whole tenants) on N local processes "
        "(default 1: this process; 0: one per CPU)",
    )
    where.add_argument(
        "--cluster",
        type=_cluster_address,
        metavar="ADDRESS",
        help="prove partitions on the workers of the Dask scheduler at tcp://HOST:PORT",
    )
    p.add_argument(
        "--cluster-timeout",
        type=_seconds,
        metavar="S",
        help="with --cluster: seconds to wait for the scheduler and a first worker "
        f"(default {CLUSTER_TIMEOUT_S:g})",
    )
    add_output_option(p)
    p.set_defaults(func=_verify)


#: The names of ``segctl.verifier.verify.ENGINES`` (a test keeps them equal), spelled here so
#: that building the parser does not import the verifier.
ENGINES = ("wavefront", "reference")
#: ``segctl.verifier.parallel.CLUSTER_TIMEOUT_S`` (a test keeps them equal).
CLUSTER_TIMEOUT_S = 10.0


def _jobs(text: str) -> int:
    """``--jobs``: a count of processes, 0 for one per CPU."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a number of processes (0: one per CPU)"
        ) from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 0 (one per CPU) or more")
    return n or os.cpu_count() or 1


def _cluster_address(text: str) -> str:
    """``--cluster``: ``tcp://HOST:PORT`` (``HOST:PORT`` means tcp)."""
    address = text if "://" in text else f"tcp://{text}"
    bad = argparse.ArgumentTypeError(f"{text!r}: expected a scheduler address tcp://HOST:PORT")
    try:
        url = urlsplit(address)
        port = url.port
    except ValueError:
        raise bad from None
    if url.scheme != "tcp":
        raise argparse.ArgumentTypeError(f"{text!r}: only tcp:// scheduler addresses are supported")
    if not url.hostname or port is None or port == 0 or url.path or url.query or url.fragment:
        raise bad
    return address


def _seconds(text: str) -> float:
    """``--cluster-timeout``: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number of seconds")
    return value


# ---------------------------------------------------------------------------- helpers


#: Progress lines start once a run is older than this (seconds).
PROGRESS_AFTER_S = 1.0


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A ``say(msg)`` that prints to stderr once the run is older than :data:`PROGRESS_AFTER_S`."""
    start = time.monotonic()
    state = {"msg": "starting", "shown": False}
    stop = threading.Event()

    def say(msg: str) -> None:
        state["msg"] = msg
        if enabled and time.monotonic() - start > PROGRESS_AFTER_S:
            print(f"segctl verify: {msg} ({time.monotonic() - start:.1f}s)", file=sys.stderr, flush=True)
            state["shown"] = True

    def tick() -> None:
        while not stop.wait(1.0):
            if enabled:
                print(
                    f"segctl verify: {state['msg']} … ({time.monotonic() - start:.1f}s)",
                    file=sys.stderr,
                    flush=True,
                )
                state["shown"] = True

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield say
    finally:
        stop.set()
        ticker.join()
        if enabled and state["shown"]:
            print(f"segctl verify: done in {time.monotonic() - start:.1f}s", file=sys.stderr, flush=True)


def _write_report(report: Any, directory: str) -> list[str]:
    import json

    from segctl.reports.html import render_html
    from segctl.reports.markdown import render_markdown

    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
        files = {
            "report.json": json.dumps(report.to_json(), indent=2) + "\n",
            "report.md": render_markdown(report),
            "report.html": render_html(report),
        }
        for name, text in files.items():
            (out / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SegctlError(f"{directory}: cannot write the report: {exc.strerror or exc}") from None
    return [str(out / n) for n in files]


# ---------------------------------------------------------------------------- verify


def _verify(args: argparse.Namespace) -> int:
    from segctl.verifier.parallel import ClusterError, verify_cluster, verify_local

    if args.cluster_timeout is not None and args.cluster is None:
        raise SegctlError("--cluster-timeout: only applies with --cluster")
    network, tables = load_tables(args)
    with _progress(enabled=True) as say:
        if args.cluster is None:
            report = verify_local(network, tables, jobs=args.jobs, engine=args.engine, progress=say)
        else:
            timeout = CLUSTER_TIMEOUT_S if args.cluster_timeout is None else args.cluster_timeout
            try:
                report = verify_cluster(
                    network, tables, args.cluster, engine=args.engine, progress=say, timeout=timeout
                )
            except ClusterError as exc:
                raise SegctlError(f"--cluster {args.cluster}: {exc}") from None
    files = _write_report(report, args.report) if args.report else []
    if args.output == "json":
        doc = report.to_json()
        doc["files"] = files
        doc["tables"] = source_text(args)
        print_json(doc)
    else:
        _print_text(report, files, source_text(args), _where(args))
    return EXIT_OK if report.ok else EXIT_VIOLATION


def _where(args: argparse.Namespace) -> str:
    """Where the proof ran, for the first line of text output (empty: this process)."""
    if args.cluster is not None:
        return f" on the cluster at {args.cluster}"
    return f" with up to {args.jobs} processes" if args.jobs > 1 else ""


def _print_text(report: Any, files: list[str], source: str, where: str = "") -> None:
    flows = sum(report.flow_counts.values())
    print(
        f"verified {flows} flows ({source}) on {len(report.flow_counts)} switches "
        f"in {report.seconds:.2f}s{where}"
    )
    for p in report.properties:
        mark = "PASS" if p.holds else "FAIL"
        extra = "" if p.holds else f" ({p.violation_count} violation{'s' if p.violation_count != 1 else ''})"
        print(f"  {mark}  {p.title}{extra}")
    for f in report.findings:
        print(f"  note: {f.switch} table {f.table} priority {f.priority}: {f.kind}: {f.detail}")
    for cx in report.violations[:10]:
        print()
        print(f"[{cx.property}] {cx.message}")
        print(
            f"  packet at {cx.ingress[0]}:{cx.ingress[1]}: "
            + ", ".join(f"{k}={v}" for k, v in cx.packet.items())
        )
        if cx.commit:
            print(f"  committed: {cx.commit}")
        for hop in cx.hops:
            print(f"    {hop}")
        print(f"  => {cx.disposition}")
        ct = "".join(f" --ct-next {s}" for s in cx.ct_states)
        print(f"  replay: ovs-appctl ofproto/trace <bridge of {cx.ingress[0]}> '{cx.ofproto_flow}'{ct}")
    if len(report.violations) > 10:
        print(f"\n... {len(report.violations) - 10} more counterexamples in the report")
    for name in files:
        print(f"wrote {name}")
    print("all properties hold" if report.ok else "VIOLATIONS FOUND")
