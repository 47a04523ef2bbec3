"""``segctl compile``: intent → per-switch OpenFlow rule files.

``segctl compile FILE --out DIR`` writes, per switch, ``DIR/<switch>.flows`` (one
``ovs-ofctl add-flows`` line per rule) and ``DIR/<switch>.meters`` (one
``ovs-ofctl add-meter`` argument per line, possibly empty). Load a switch with::

    while read -r m; do ovs-ofctl -O OpenFlow13 add-meter BR "$m"; done < DIR/SW.meters
    ovs-ofctl -O OpenFlow13 --bundle add-flows BR DIR/SW.flows

(meters first: OVS refuses a flow that names a meter it does not have).

``DIR`` then holds exactly the intent's files: the new set is written to a temporary
sibling directory and swapped in with one rename (Linux ``renameat2(RENAME_EXCHANGE)``;
two renames elsewhere), so a reader sees the old set or the new set, never a mix, and the
files of switches no longer in the intent are gone. ``DIR`` may hold only rule files.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import secrets
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segctl.cli.common import EXIT_OK, add_output_option, format_table, print_json
from segctl.errors import SegctlError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from segctl.flows.compiler import SwitchProgram
    from segctl.flows.rules import Rule

__all__ = ["RULE_SUFFIXES", "register", "write_rule_dir"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``compile``."""
    p = subparsers.add_parser(
        "compile",
        help="compile an intent into per-switch OpenFlow 1.3 rule files",
        description="Compile an intent into OpenFlow 1.3 rules for every switch. With --out DIR, "
        "write DIR/<switch>.flows (load with `ovs-ofctl -O OpenFlow13 --bundle add-flows`) and "
        "DIR/<switch>.meters (one `ovs-ofctl -O OpenFlow13 add-meter` argument per line; load first); "
        "DIR then holds exactly these files, replaced in one step (stale files of removed switches go). "
        "Without --out, print the rules.",
    )
    p.add_argument("file", metavar="FILE", help="intent file (.yaml, .yml or .json)")
    p.add_argument(
        "--out", metavar="DIR", help="directory for <switch>.flows and <switch>.meters (only rule files)"
    )
    p.add_argument("--stats", action="store_true", help="print flow counts per switch and table")
    add_output_option(p)
    p.set_defaults(func=_compile)


def _programs(path: str) -> dict[str, SwitchProgram]:
    from segctl.flows.compiler import compile_network
    from segctl.topology.network import load_network

    return compile_network(load_network(path))


#: What ``compile --out`` writes, and so the only files it may replace in ``DIR``.
RULE_SUFFIXES = (".flows", ".meters")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> None:
    """Swap two directories: atomically where the kernel can, else with three renames."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is not None:
        done = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
        if done == 0:
            return
    aside = a.with_name(a.name + ".old")
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)


def write_rule_dir(out: Path, texts: dict[str, str]) -> tuple[list[Path], list[str]]:
    """Make ``out`` hold exactly ``texts`` (file name -> text), replacing it in one step.

    Returns the files written (under ``out`` as given) and the names of the stale files
    gone with the old set. Refuses a directory that holds anything but rule files
    (:data:`RULE_SUFFIXES`): those would be lost with the old set.
    """
    given = out
    out = out.resolve() if out.is_symlink() else Path(os.path.abspath(out))
    if not out.name:
        raise SegctlError(f"{given}: not a usable directory for rule files")
    if out.exists() and not out.is_dir():
        raise SegctlError(f"{out}: not a directory")
    stale: list[str] = []
    if out.is_dir():
        stale = sorted(p.name for p in out.iterdir() if p.name not in texts)
        foreign = sorted(p.name for p in out.iterdir() if p.suffix not in RULE_SUFFIXES or not p.is_file())
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise SegctlError(
                f"{out}: holds {shown}, not only .flows/.meters files; --out replaces the whole "
                "directory with the intent's rule files, so give it an empty or new directory"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.tmp-{secrets.token_hex(4)}")
    staging.mkdir()
    try:
        for name, text in texts.items():
            (staging / name).write_text(text, encoding="utf-8")
        if out.is_dir():
            os.chmod(staging, out.stat().st_mode & 0o7777)
            _exchange(staging, out)  # staging now holds the old set
        else:
            os.rename(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [given / name for name in texts], stale


def _table_counts(rules: Iterable[Rule]) -> dict[int, int]:
    return dict(sorted(Counter(r.table for r in rules).items()))


def _compile(args: argparse.Namespace) -> int:
    from segctl.flows.pipeline import TABLES

    programs = _programs(args.file)
    files: list[str] = []
    stale: list[str] = []
    if args.out:
        texts = {
            f"{name}{suffix}": text
            for name, prog in programs.items()
            for suffix, text in ((".flows", prog.flows_text()), (".meters", prog.meters_text()))
        }
        try:
            written, stale = write_rule_dir(Path(args.out), texts)
            files = [str(p) for p in written]
        except OSError as exc:
            raise SegctlError(f"{args.out}: cannot write rule files: {exc.strerror or exc}") from None
    if args.output == "json":
        doc: dict[str, Any] = {
            "switches": {
                name: {
                    "dpid": f"{prog.dpid:#018x}",
                    "flow_count": len(prog.rules),
                    "table_counts": {str(k): v for k, v in _table_counts(prog.rules).items()},
                    "meters": [m.to_ofctl() for m in prog.meters],
                    **({} if args.out else {"flows": [r.to_ofctl() for r in prog.rules]}),
                }
                for name, prog in programs.items()
            },
            "files": files,
            "removed": stale,
        }
        print_json(doc)
        return EXIT_OK
    if args.stats:
        headers = ["switch", *(f"{t.id}:{t.name}" for t in TABLES), "total", "meters"]
        rows = []
        for name, prog in programs.items():
            counts = _table_counts(prog.rules)
            rows.append([name, *(counts.get(t.id, 0) for t in TABLES), len(prog.rules), len(prog.meters)])
        print(format_table(headers, rows))
    if args.out:
        total = sum(len(p.rules) for p in programs.values())
        switches = f"{len(programs)} switch{'es' if len(programs) != 1 else ''}"
        print(f"wrote {len(files)} files for {switches} ({total} flows) to {args.out}")
        if stale:
            print(f"removed {len(stale)} stale files of switches not in the intent: {', '.join(stale)}")
    elif not args.stats:
        for name, prog in programs.items():
            print(f"# switch {name} dpid {prog.dpid:#018x}")
            for meter in prog.meters:
                print(f"# add-meter {meter.to_ofctl()}")
            print(prog.flows_text(), end="")
    return EXIT_OK
