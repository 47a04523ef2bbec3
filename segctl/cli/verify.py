"""``segctl verify`` and ``segctl trace``: prove the flow tables against the intent, explain a packet.

``segctl verify FILE [--flows DIR | --live [--bridge-prefix P]] [--report DIR]`` exits 0
when every property holds, 1 on a violation, 2 on bad input. ``--report DIR`` writes
``report.json`` (schema in ``docs/report.md``), ``report.md`` and ``report.html``.

``segctl trace FILE --from EP --to EP|IP [--proto P --sport N --dport N] [--ct STATE ...]``
simulates one packet through the tables and explains each hop in intent terms, with the
intent's own verdict (which grant allows it, or why it is denied) beside it.

The tables come from ``--flows DIR`` (``DIR/<switch>.flows``), from ``--live`` (the
running bridges), or, with neither, from compiling the intent in memory: one step from an
intent to a proof or a trace, nothing written.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address, ip_address
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segctl.cli.common import EXIT_OK, EXIT_VIOLATION, add_output_option, print_json
from segctl.errors import IntentError, Problem, SegctlError

if TYPE_CHECKING:
    from segctl.openflow.ofctl import Flow
    from segctl.topology.network import EndpointInfo, Network

__all__ = ["register"]


def _add_source(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--flows",
        metavar="DIR",
        help="directory of <switch>.flows files (segctl compile --out); "
        "without --flows and --live the intent is compiled in memory",
    )
    src.add_argument("--live", action="store_true", help="dump the flows of the running OVS bridges")
    p.add_argument(
        "--bridge-prefix", default="", metavar="P", help="with --live: bridge name = P + switch name"
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``verify`` and ``trace``."""
    p = subparsers.add_parser(
        "verify",
        help="prove isolation and policy conformance of flow tables against an intent",
        description="Check the six properties (isolation, conformance, allowed traffic delivered, "
        "spoof guard, loops/black holes, commit safety) of the flow tables against the intent. "
        "Exit 0 when all hold, 1 on a violation, 2 on bad input.",
    )
    p.add_argument("file", metavar="FILE", help="intent file (.yaml, .yml or .json)")
    _add_source(p)
    p.add_argument("--report", metavar="DIR", help="write report.json, report.md and report.html to DIR")
    add_output_option(p)
    p.set_defaults(func=_verify)

    p = subparsers.add_parser(
        "trace",
        help="explain hop by hop what the tables do with one packet, in intent terms",
        description="Simulate one packet from an endpoint through the flow tables and name, at every "
        "hop, the intent object behind the rule (like ovn-trace). Exit 0.",
    )
    p.add_argument("file", metavar="FILE", help="intent file (.yaml, .yml or .json)")
    p.add_argument("--from", dest="src", required=True, metavar="EP", help="source endpoint (tenant/name)")
    p.add_argument("--to", dest="dst", required=True, metavar="EP|IP", help="destination endpoint or IPv4")
    p.add_argument("--proto", default="tcp", help="tcp, udp, icmp or an IP protocol number (default tcp)")
    p.add_argument("--sport", type=int, default=40000, help="source port (default 40000)")
    p.add_argument("--dport", type=int, default=80, help="destination port (default 80)")
    p.add_argument("--ttl", type=int, default=64, help="IPv4 TTL (default 64)")
    p.add_argument(
        "--ct",
        action="append",
        default=[],
        metavar="STATE",
        help="conntrack state for the next ct() lookup, e.g. trk,est,rpl (repeatable; default trk,new)",
    )
    _add_source(p)
    add_output_option(p)
    p.set_defaults(func=_trace)


# ---------------------------------------------------------------------------- helpers


def _source(args: argparse.Namespace) -> str:
    """Where the tables come from, in words (``compiled in memory``, ``flows DIR``, ``live``)."""
    if args.live:
        return "live bridges"
    return f"flow files in {args.flows}" if args.flows else "compiled in memory"


def _compiled(network: Network) -> dict[str, list[Flow]]:
    """The compiler's tables for ``network`` as parsed flow text, exactly as files would give them."""
    from segctl.flows.compiler import compile_network
    from segctl.openflow.ofctl import parse_flows

    return {
        name: parse_flows(prog.flows_text(), source=f"compiled {name}")
        for name, prog in compile_network(network).items()
    }


def _load(args: argparse.Namespace) -> tuple[Network, dict[str, list[Flow]]]:
    from segctl.openflow.tables import dump_live, load_flow_dir
    from segctl.topology.network import load_network

    if args.bridge_prefix and not args.live:
        raise SegctlError("--bridge-prefix: only applies with --live")
    network = load_network(args.file)
    if args.live:
        return network, dump_live(network, prefix=args.bridge_prefix)
    if args.flows:
        return network, load_flow_dir(network, args.flows)
    return network, _compiled(network)


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

    network, tables = _load(args)
    with _progress(enabled=True) as say:
        report = verify(network, tables, progress=say)
    files = _write_report(report, args.report) if args.report else []
    if args.output == "json":
        doc = report.to_json()
        doc["files"] = files
        doc["tables"] = _source(args)
        print_json(doc)
    else:
        _print_text(report, files, _source(args))
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


# ---------------------------------------------------------------------------- trace


def _endpoint(network: Network, ref: str) -> EndpointInfo:
    return network.find_endpoint(ref)


def _trace(args: argparse.Namespace) -> int:
    from segctl.openflow.ofctl import mac_int
    from segctl.topology.analysis import allowed_grants
    from segctl.topology.network import first_hop_mac, routed
    from segctl.verifier.counterexample import trace_packet
    from segctl.verifier.simulate import Packet

    network, tables = _load(args)
    src, dst, addr = _trace_ends(network, args)
    proto, proto_num = _trace_proto(args)
    eth_dst = first_hop_mac(network, src, dst)
    packet = Packet(
        in_port=src.port,
        eth_src=mac_int(src.mac),
        eth_dst=mac_int(eth_dst),
        eth_type=0x0800,
        ip_proto=proto_num,
        ip_src=int(src.ip),
        ip_dst=int(addr),
        nw_ttl=args.ttl,
        tp_src=args.sport if proto_num in (6, 17) else 0,
        tp_dst=args.dport if proto_num in (6, 17) else 0,
        icmp_type=8 if proto_num == 1 else 0,
    )
    dport = args.dport if proto_num in (6, 17) else None
    grants = allowed_grants(network, src, dst, proto, dport) if dst is not None else ()
    fates = trace_packet(network, tables, src.switch, packet, args.ct)
    if args.output == "json":
        print_json(
            {
                "from": src.qualified,
                "to": dst.qualified if dst else str(addr),
                "packet": {
                    "ip_src": str(src.ip),
                    "ip_dst": str(addr),
                    "proto": proto,
                    "sport": args.sport,
                    "dport": args.dport,
                    "eth_dst": eth_dst,
                },
                "intent": {
                    "verdict": "allowed" if grants else "denied",
                    "grants": [g.to_json() for g in grants],
                },
                "fates": [
                    {
                        "kind": r.kind,
                        "switch": r.switch,
                        "table": r.table,
                        "port": r.port,
                        "endpoint": r.endpoint,
                        "trace": [h.to_json() for h in hops],
                    }
                    for r, hops in fates
                ],
            }
        )
        return EXIT_OK
    service = f"{proto}" + (f"/{args.dport}" if dport is not None else "")
    gateway = " (gateway)" if routed(src, dst) else ""
    print(
        f"packet {src.qualified} ({src.ip}) -> {dst.qualified if dst else addr} ({addr}) {service}, "
        f"eth_dst {eth_dst}{gateway}"
    )
    verdict = (
        "allowed by " + "; ".join(f"{g.kind} {g.name}" for g in grants)
        if grants
        else f"denied by the intent (no grant from {src.qualified} to {dst.qualified if dst else addr})"
    )
    print(f"intent: {verdict}")
    _print_fates(fates)
    return EXIT_OK


def _trace_ends(
    network: Network, args: argparse.Namespace
) -> tuple[EndpointInfo, EndpointInfo | None, IPv4Address]:
    """The source endpoint, the destination endpoint (None: an address nobody owns) and its address."""
    src = _endpoint(network, args.src)
    dst: EndpointInfo | None = None
    try:
        addr = ip_address(args.dst)
    except ValueError:
        dst = _endpoint(network, args.dst)
        addr = dst.ip
    if not isinstance(addr, IPv4Address):
        raise IntentError([Problem("--to", f"{args.dst}: only IPv4 destinations are traced")])
    if dst is None:  # an address: the endpoint of the source's tenant first, then any
        owners = [ep for ep in network.endpoints if ep.ip == addr]
        dst = next((ep for ep in owners if ep.tenant == src.tenant), owners[0] if owners else None)
    return src, dst, addr


def _trace_proto(args: argparse.Namespace) -> tuple[str, int]:
    """``--proto`` normalized and as an IP protocol number; ``--sport``/``--dport`` checked."""
    from segctl.topology.analysis import normalize_proto

    proto = normalize_proto(args.proto)
    numbers = {"tcp": 6, "udp": 17, "icmp": 1}
    if proto not in numbers and not proto.isdigit():
        raise IntentError([Problem("--proto", f"{args.proto}: not tcp, udp, icmp or a protocol number")])
    for name in ("sport", "dport"):
        if not 0 <= getattr(args, name) <= 65535:
            raise IntentError([Problem(f"--{name}", f"{getattr(args, name)}: not a port number")])
    return proto, numbers.get(proto, int(proto) if proto.isdigit() else 0)


def _print_fates(fates: list[Any]) -> None:
    for r, hops in fates:
        print()
        for i, hop in enumerate(hops, 1):
            print(f"  {i:2}. {hop}")
        where = f"{r.switch}" + (f" table {r.table}" if r.table is not None else "")
        if r.kind == "delivered":
            print(f"  => delivered to {r.endpoint} ({r.switch}:{r.port})")
        else:
            guard = hops[-1].intent if hops else "?"
            print(f"  => {r.kind} at {where} by {guard}")
    if not fates:
        print("  => no fate (the packet vanished)")
