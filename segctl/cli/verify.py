"""``segctl verify``: prove the flow tables against the intent.

``segctl verify FILE [--flows DIR | --live [--bridge-prefix P]] [--report DIR]`` exits 0
when every property holds, 1 on a violation, 2 on bad input. ``--report DIR`` writes
``report.json`` (schema in ``docs/report.md``), ``report.md`` and ``report.html``.

The tables come from ``--flows DIR`` (``DIR/<switch>.flows``), from ``--live`` (the
running bridges), or, with neither, from compiling the intent in memory: one step from an
intent to a proof, nothing written (:mod:`segctl.cli._tables`).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    add_output_option(p)
    p.set_defaults(func=_verify)


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
    from segctl.verifier.verify import verify

    network, tables = load_tables(args)
    with _progress(enabled=True) as say:
        report = verify(network, tables, progress=say)
    files = _write_report(report, args.report) if args.report else []
    if args.output == "json":
        doc = report.to_json()
        doc["files"] = files
        doc["tables"] = source_text(args)
        print_json(doc)
    else:
        _print_text(report, files, source_text(args))
    return EXIT_OK if report.ok else EXIT_VIOLATION


def _print_text(report: Any, files: list[str], source: str) -> None:
    flows = sum(report.flow_counts.values())
    print(f"verified {flows} flows ({source}) on {len(report.flow_counts)} switches in {report.seconds:.2f}s")
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
