"""``segctl logs``: read (and follow) the controller's policy log.

::

    segctl logs FILE [--tenant T] [--policy P] [--verdict allow|deny] [--limit N]
                     [--follow] [--output json]

FILE is what ``segctl controller run --policy-log FILE`` writes: one JSON object per
line (:mod:`segctl.controller.policy_log`). Lines that are not such objects are skipped
and counted on stderr, never a traceback. ``--follow`` keeps reading as lines are
appended, until interrupted or ``--limit`` lines were printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from segctl.cli.common import EXIT_BAD_INPUT, EXIT_OK, add_output_option

__all__ = ["register"]

#: Longer lines are not records the controller wrote (its lines are at most 2 KiB).
_MAX_LINE = 8192
_POLL_S = 0.2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``logs``."""
    logs = subparsers.add_parser("logs", help="read and follow the policy log (logged decisions)")
    logs.add_argument("file", type=Path, metavar="FILE", help="the file given to controller run --policy-log")
    logs.add_argument("--tenant", help="only this tenant's decisions ('' for the default deny)")
    logs.add_argument("--policy", help="only this policy (or shared:NAME, default-deny)")
    logs.add_argument("--verdict", choices=["allow", "deny"], help="only allowed or only denied")
    logs.add_argument("--limit", type=int, default=0, metavar="N", help="stop after N lines (0: no limit)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing lines as they are appended")
    add_output_option(logs)
    logs.set_defaults(func=_logs)


def _records(stream: IO[str], follow: bool, skipped: list[int]) -> Iterator[dict[str, Any]]:
    """Records of ``stream``, waiting for more at its end when ``follow``."""
    pending = ""
    while True:
        chunk = stream.readline(_MAX_LINE + 1)
        if not chunk:
            if not follow:
                return
            time.sleep(_POLL_S)
            continue
        pending += chunk
        if follow and not pending.endswith("\n") and len(pending) <= _MAX_LINE:
            continue  # a line being written: wait for its end
        line, pending = pending, ""
        try:
            record = json.loads(line) if len(line) <= _MAX_LINE else None
        except ValueError:
            record = None
        if isinstance(record, dict):
            yield record
        else:
            skipped[0] += 1
            if len(line) > _MAX_LINE:  # drop the rest of an overlong line
                while (rest := stream.readline(_MAX_LINE)) and not rest.endswith("\n"):
                    pass


def _wanted(record: dict[str, Any], args: argparse.Namespace) -> bool:
    return (
        (args.tenant is None or record.get("tenant") == args.tenant)
        and (args.policy is None or record.get("policy") == args.policy)
        and (args.verdict is None or record.get("verdict") == args.verdict)
    )


def format_record(record: dict[str, Any]) -> str:
    """One record as a line: time, switch:port, tenant/policy, verdict, what the packet was."""

    def end(address: Any, port: Any) -> str:
        return f"{address}:{port}" if port is not None else str(address)

    proto = record.get("proto", record.get("packet", "?"))
    src, dst = end(record.get("src"), record.get("sport")), end(record.get("dst"), record.get("dport"))
    what = f"{proto} {src} -> {dst}"
    if record.get("icmp_type") is not None:
        what += f" type={record.get('icmp_type')} code={record.get('icmp_code')}"
    tenant, policy = record.get("tenant") or "", record.get("policy", "?")
    who = f"{tenant}/{policy}" if tenant else str(policy)
    where = f"{record.get('switch', '?')}:{record.get('port', '?')}"
    return f"{record.get('time', '?')}  {where}  {who}  {str(record.get('verdict', '?')).upper()}  {what}"


def _logs(args: argparse.Namespace) -> int:
    if args.limit < 0:
        print("segctl: --limit must be >= 0", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        stream = args.file.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        print(f"segctl: {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    skipped, printed = [0], 0
    try:
        with stream:
            for record in _records(stream, args.follow, skipped):
                if not _wanted(record, args):
                    continue
                text = json.dumps(record, sort_keys=True) if args.output == "json" else format_record(record)
                print(text, flush=True)
                printed += 1
                if args.limit and printed >= args.limit:
                    break
    except KeyboardInterrupt:
        pass
    if skipped[0]:
        print(f"segctl: {skipped[0]} line(s) of {args.file} are not log records; skipped", file=sys.stderr)
    return EXIT_OK
