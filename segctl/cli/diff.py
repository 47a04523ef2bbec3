"""``segctl diff``: what changes between two intents, or between an intent and the switches.

* ``segctl diff OLD NEW``: per switch, the compiled rules (and meters) NEW adds and removes.
  Exit 0 whether or not they differ.
* ``segctl diff OLD NEW --reachability``: differential reachability at the intent level
  (:mod:`segctl.cli._reachdiff`): which (source, destination, service) grants open or
  close, connections and replies. Exit 1 when a cross-tenant pair opens (a new way across
  tenants deserves a second look), else 0.
* ``segctl diff FILE --live``: what the live switches deliver that the intent does not,
  and what the intent allows that they do not deliver, from the verifier's reachability
  matrix on the dumped tables (bridges found by datapath id, as for ``verify --live``),
  plus the rules that differ from the compiled ones. Exit 1 on any difference.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from segctl.cli._tables import add_source_options
from segctl.cli.common import EXIT_OK, EXIT_VIOLATION, add_output_option, print_json
from segctl.errors import SegctlError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from segctl.flows.compiler import SwitchProgram
    from segctl.openflow.ofctl import Flow

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``diff``."""
    p = subparsers.add_parser(
        "diff",
        help="what changes between two intents (rules or reachability), or between an intent and switches",
        description="OLD NEW: the per-switch rules NEW adds (+) and removes (-), exit 0. "
        "OLD NEW --reachability: the (source, destination, service) grants NEW opens and closes, "
        "exit 1 when a cross-tenant pair opens. FILE --live: what the live tables deliver that the "
        "intent does not (and the reverse), exit 1 on any difference.",
    )
    p.add_argument("old", metavar="OLD", help="intent file before the change (with --live: the intent)")
    p.add_argument("new", metavar="NEW", nargs="?", help="intent file after the change (not with --live)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--reachability", action="store_true", help="compare what the two intents allow, not their rules"
    )
    mode.add_argument(
        "--live", action="store_true", help="compare the intent with the running bridges (one FILE)"
    )
    add_source_options(p, flows=False)
    add_output_option(p)
    p.set_defaults(func=_diff)


def _diff(args: argparse.Namespace) -> int:
    if args.bridge_prefix and not args.live:
        raise SegctlError("--bridge-prefix: only applies with --live")
    if args.live:
        if args.new is not None:
            raise SegctlError(f"{args.new}: --live compares one intent with the switches; give one FILE")
        return _live(args)
    if args.new is None:
        raise SegctlError("diff: give OLD and NEW (or one FILE with --live)")
    return _reachability(args) if args.reachability else _rules(args)


# ---------------------------------------------------------------------------- rules


def _programs(path: str) -> dict[str, SwitchProgram]:
    from segctl.flows.compiler import compile_network
    from segctl.topology.network import load_network

    return compile_network(load_network(path))


def _rules(args: argparse.Namespace) -> int:
    old, new = _programs(args.old), _programs(args.new)
    result: dict[str, dict[str, list[str]]] = {}
    for name in [*old, *(n for n in new if n not in old)]:
        before = [r.to_ofctl() for r in old[name].rules] if name in old else []
        after = [r.to_ofctl() for r in new[name].rules] if name in new else []
        mb = [m.to_ofctl() for m in old[name].meters] if name in old else []
        ma = [m.to_ofctl() for m in new[name].meters] if name in new else []
        before_set, after_set = set(before), set(after)
        result[name] = {
            "added": [line for line in after if line not in before_set],
            "removed": [line for line in before if line not in after_set],
            "meters_added": [m for m in ma if m not in mb],
            "meters_removed": [m for m in mb if m not in ma],
        }
    if args.output == "json":
        print_json({"switches": result})
        return EXIT_OK
    changed = False
    for name, d in result.items():
        if not any(d.values()):
            continue
        changed = True
        print(f"switch {name}: +{len(d['added'])} -{len(d['removed'])} flows")
        for line in d["removed"]:
            print(f"- {line}")
        for line in d["added"]:
            print(f"+ {line}")
        for m in d["meters_removed"]:
            print(f"- meter {m}")
        for m in d["meters_added"]:
            print(f"+ meter {m}")
    if not changed:
        print("no changes")
    return EXIT_OK


# ---------------------------------------------------------------------------- reachability


def _reachability(args: argparse.Namespace) -> int:
    from segctl.cli._reachdiff import reachability_changes
    from segctl.topology.network import load_network

    changes = reachability_changes(load_network(args.old), load_network(args.new))
    opened = [c for c in changes if c.change == "opened"]
    crossing = sorted({(c.src, c.dst) for c in opened if c.cross_tenant})
    code = EXIT_VIOLATION if crossing else EXIT_OK
    if args.output == "json":
        print_json(
            {
                "old": args.old,
                "new": args.new,
                "opened": len(opened),
                "closed": len(changes) - len(opened),
                "cross_tenant_opened": [{"src": s, "dst": d} for s, d in crossing],
                "changes": [c.to_json() for c in changes],
            }
        )
        return code
    print(
        f"reachability {args.old} -> {args.new}: {len(opened)} opened, {len(changes) - len(opened)} closed"
        + (f", {len(crossing)} pair(s) opened across tenants" if crossing else "")
    )
    for c in changes:
        print(str(c))
    if crossing:
        shown = ", ".join(f"{s} -> {d}" for s, d in crossing[:5]) + (", ..." if len(crossing) > 5 else "")
        print(f"CROSS-TENANT: {len(crossing)} pair(s) open across tenants: {shown}")
    elif not changes:
        print("no reachability changes")
    return code


# ---------------------------------------------------------------------------- live


def _live_pairs(report: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(extra, missing): the pairs the verifier finds the live tables serve beyond the intent
    (any property but allowed-delivered names them) and short of it (allowed-delivered).

    The verifier judges, not the raw ``observed`` bit: that one also counts ARP inside a
    segment, which the intent never lists as a grant.
    """
    reasons: dict[tuple[str, str], list[Any]] = {}
    for cx in report.violations:
        if cx.src and cx.dst:
            reasons.setdefault((cx.src, cx.dst), []).append(cx)
    extra: list[dict[str, Any]] = []
    missing: list[dict[str, Any]] = []
    for src, row in zip(report.endpoints, report.matrix, strict=True):
        for dst, cell in zip(report.endpoints, row, strict=True):
            if cell.status != "violation":
                continue
            found = reasons.get((src, dst), [])
            entry = {
                "src": src,
                "dst": dst,
                "intent": cell.expected,
                "delivered": cell.observed,
                "why": [f"[{cx.property}] {cx.message}" for cx in found],
            }
            short = {cx.property == "allowed-delivered" for cx in found}
            if not found:  # counted, but no counterexample kept for this pair
                short = {cell.expected != "·" and not cell.observed}
            if False in short:
                extra.append(entry)
            if True in short:
                missing.append(entry)
    return extra, missing


def _rule_drift(live: Mapping[str, Sequence[Flow]], compiled: Mapping[str, Sequence[Flow]]) -> dict[str, Any]:
    """Per switch, the live rules the compiler would not write and the compiled ones missing."""
    from segctl.openflow.ofctl import format_flow

    out: dict[str, Any] = {}
    for name, flows in compiled.items():
        have, want = set(live.get(name, ())), set(flows)
        extra = sorted(format_flow(f) for f in live.get(name, ()) if f not in want)
        missing = sorted(format_flow(f) for f in flows if f not in have)
        if extra or missing:
            out[name] = {"extra": extra, "missing": missing}
    return out


def _live(args: argparse.Namespace) -> int:
    from segctl.cli._tables import compiled_tables
    from segctl.openflow.tables import dump_live
    from segctl.topology.network import load_network
    from segctl.verifier.verify import verify

    network = load_network(args.old)
    live = dump_live(network, prefix=args.bridge_prefix)
    report = verify(network, live)
    extra, missing = _live_pairs(report)
    rules = _rule_drift(live, compiled_tables(network))
    failing = [p.title for p in report.properties if not p.holds]
    code = EXIT_VIOLATION if extra or missing or rules or failing else EXIT_OK
    if args.output == "json":
        print_json(
            {"intent": args.old, "extra": extra, "missing": missing, "rules": rules,
             "failing_properties": failing, "match": code == EXIT_OK}
        )  # fmt: skip
        return code
    print(
        f"live tables vs {args.old}: {len(extra)} pair(s) get more than the intent allows, "
        f"{len(missing)} less"
    )
    for e in extra:
        what = (
            "what the intent denies" if e["intent"] == "·" else f"more than the intent allows ({e['intent']})"
        )
        print(f"+ {e['src']} -> {e['dst']}: the tables deliver {what}")
        print("".join(f"    {why}\n" for why in e["why"]), end="")
    for e in missing:
        print(
            f"- {e['src']} -> {e['dst']}: the intent allows it ({e['intent']}); "
            "the tables do not deliver it all"
        )
        print("".join(f"    {why}\n" for why in e["why"]), end="")
    for name, d in rules.items():
        print(
            f"switch {name}: {len(d['extra'])} rule(s) the intent does not compile to, "
            f"{len(d['missing'])} missing"
        )
        print("".join(f"  + {line}\n" for line in d["extra"]), end="")
        print("".join(f"  - {line}\n" for line in d["missing"]), end="")
    if failing:
        print(f"failing properties: {', '.join(failing)} (details: segctl verify {args.old} --live)")
    print("the live tables match the intent" if code == EXIT_OK else "DIFFERENCES FOUND")
    return code
