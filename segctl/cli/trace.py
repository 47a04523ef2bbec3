"""``segctl trace``: what the tables do with one packet, next to what the intent says.

``segctl trace FILE --from EP --to EP|IP [-6] [--proto tcp|udp|icmp|any|N] [--sport N]
[--dport N] [--icmp-type N] [--icmp-code N] [--reply] [--ct STATE ...]`` simulates one
IPv4 packet (IPv6 with ``-6`` or an IPv6 ``--to``: ``icmp`` is then ICMPv6) with the
verifier's concrete simulator (:mod:`segctl.verifier.simulate`) and
names, at every hop, the intent object behind the rule (like ``ovn-trace``). Beside it,
the intent's own verdict; when the two differ it prints a ``MISMATCH`` line and exits 1,
so a script can ask "do the tables do what the intent says for this packet?".

``--reply`` traces the reply of the connection ``--from`` opens to ``--to``. Its conntrack
states come from the request: the request is simulated first, and each ``ct()`` lookup
of the reply returns ``trk,est,rpl`` where the request was committed (same switch, same
zone) and ``trk,new`` elsewhere, as real conntrack would. ``--proto any`` traces a tcp, a
udp and an icmp packet. The tables come from :mod:`segctl.cli._tables`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import TYPE_CHECKING, Any

from segctl.cli._tables import add_source_options, load_tables
from segctl.cli._verdict import verdict as judge
from segctl.cli.common import EXIT_OK, EXIT_VIOLATION, add_output_option, print_json
from segctl.errors import IntentError, Problem
from segctl.openflow.ofmatch import IP_PROTO_ICMPV6

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from segctl.cli._verdict import Verdict
    from segctl.openflow.ofctl import Flow
    from segctl.topology.network import EndpointInfo, Network
    from segctl.verifier.counterexample import TraceHop
    from segctl.verifier.simulate import Packet, SimResult

__all__ = ["register"]

_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1}
#: ICMP query types and the type of their reply: the pairs OVS conntrack tracks (echo,
#: timestamp, information), as ``segctl.topology.grants.ICMP_REPLY_TYPES`` (the verifier's
#: table; a unit test keeps them equal, this module imports no intent code at start-up).
#: An address mask request (17) is not one of them: conntrack calls it invalid.
ICMP_REPLY = {8: 0, 13: 14, 15: 16}
#: ICMPv6 echo request -> echo reply, as ``segctl.topology.grants.ICMPV6_REPLY_TYPES``.
ICMP6_REPLY = {128: 129}
DEFAULT_SPORT, DEFAULT_DPORT, DEFAULT_ICMP_TYPE, DEFAULT_ICMP6_TYPE = 40000, 80, 8, 128
Address = IPv4Address | IPv6Address
#: The states a reply's ct() lookup returns where the request was / was not committed.
CT_REPLY, CT_NEW = "trk,est,rpl", "trk,new"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``trace``."""
    p = subparsers.add_parser(
        "trace",
        help="explain hop by hop what the tables do with one packet, next to the intent's verdict",
        description="Simulate one packet from an endpoint through the flow tables and name, at every "
        "hop, the intent object behind the rule (like ovn-trace). Exit 0 when the tables do what "
        "the intent says, 1 (and a MISMATCH line) when they do not, 2 on bad input.",
    )
    p.add_argument("file", metavar="FILE", help="intent file (.yaml, .yml or .json)")
    p.add_argument("--from", dest="src", required=True, metavar="EP", help="source endpoint (tenant/name)")
    p.add_argument(
        "--to", dest="dst", required=True, metavar="EP|IP", help="destination endpoint, IPv4 or IPv6 address"
    )
    p.add_argument(
        "-6",
        "--ipv6",
        action="store_true",
        help="trace IPv6 between the endpoints' global addresses (implied by an IPv6 --to); "
        "icmp is then ICMPv6 (default type 128, echo request)",
    )
    p.add_argument(
        "--proto",
        default="tcp",
        help="tcp, udp, icmp, any (one packet of each) or an IP protocol number (default tcp)",
    )
    p.add_argument("--sport", type=int, help=f"tcp/udp source port (default {DEFAULT_SPORT})")
    p.add_argument("--dport", type=int, help=f"tcp/udp destination port (default {DEFAULT_DPORT})")
    p.add_argument("--icmp-type", type=int, help=f"icmp type (default {DEFAULT_ICMP_TYPE}, echo request)")
    p.add_argument("--icmp-code", type=int, help="icmp code (default 0)")
    p.add_argument("--ttl", type=int, default=64, help="IPv4 TTL (default 64)")
    p.add_argument(
        "--reply",
        action="store_true",
        help="trace the reply of the connection --from opens to --to, with the conntrack states "
        "the request left (trk,est,rpl where it was committed)",
    )
    p.add_argument(
        "--ct",
        action="append",
        default=[],
        metavar="STATE",
        help="conntrack state for the next ct() lookup, e.g. trk,est,rpl (repeatable; default trk,new)",
    )
    add_source_options(p)
    add_output_option(p)
    p.set_defaults(func=_trace)


# ---------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Service:
    """What one traced packet carries, in the connection's (request) direction."""

    proto: str  # tcp, udp, icmp (icmp6 under IPv6) or a decimal IP protocol number
    number: int
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    ipv6: bool = False

    @property
    def replies(self) -> dict[int, int]:
        """Query ICMP type -> its reply type, in this packet's family."""
        return ICMP6_REPLY if self.ipv6 else ICMP_REPLY

    def reply_icmp_type(self) -> int | None:
        if self.icmp_type is None:
            return None
        return self.replies.get(self.icmp_type, self.icmp_type)

    def describe(self, *, reply: bool = False) -> str:
        if self.sport is not None and self.dport is not None:
            if reply:
                return f"{self.proto}/{self.sport} (reply from port {self.dport})"
            return f"{self.proto}/{self.dport}"
        if self.icmp_type is not None:
            kind = self.reply_icmp_type() if reply else self.icmp_type
            return f"{self.proto} type {kind} code {self.icmp_code}"
        return f"ip proto {self.number}"


def _bad(option: str, message: str) -> IntentError:
    return IntentError([Problem(option, message)])


def _range(args: argparse.Namespace, name: str, top: int, what: str) -> None:
    value = getattr(args, name)
    if value is not None and not 0 <= value <= top:
        raise _bad(f"--{name.replace('_', '-')}", f"{value}: not {what}")


def services(args: argparse.Namespace, *, ipv6: bool = False) -> list[Service]:
    """The packets ``--proto`` and its options ask for; options a protocol has no use for are
    errors. Under ``ipv6`` ``icmp`` (or ``icmp6``) is ICMPv6."""
    from segctl.topology.analysis import normalize_proto

    _range(args, "sport", 65535, "a port number")
    _range(args, "dport", 65535, "a port number")
    _range(args, "icmp_type", 255, "an icmp type (0-255)")
    _range(args, "icmp_code", 255, "an icmp code (0-255)")
    proto = normalize_proto(args.proto)
    if ipv6 and proto in ("icmp6", "icmpv6", "ipv6-icmp", str(IP_PROTO_ICMPV6)):
        proto = "icmp"
    elif proto in ("icmp6", "icmpv6", "ipv6-icmp"):
        raise _bad("--proto", f"{args.proto} is IPv6: add -6 or give an IPv6 --to")
    if proto == "any":
        protos = ["tcp", "udp", "icmp"]
    elif proto in _NUMBERS or (proto.isdigit() and 0 <= int(proto) <= 255):
        protos = [proto]
    else:
        raise _bad("--proto", f"{args.proto}: not tcp, udp, icmp, any or a protocol number (0-255)")
    ports = args.sport is not None or args.dport is not None
    icmp = args.icmp_type is not None or args.icmp_code is not None
    if ports and not {"tcp", "udp"} & set(protos):
        option = "--dport" if args.dport is not None else "--sport"
        raise _bad(
            option, f"{proto} has no ports" + ("; use --icmp-type/--icmp-code" if proto == "icmp" else "")
        )
    if icmp and "icmp" not in protos:
        option = "--icmp-type" if args.icmp_type is not None else "--icmp-code"
        raise _bad(option, f"only applies to --proto icmp (or any), not {proto}")
    if args.reply and args.ct:
        raise _bad("--ct", "--reply sets the conntrack states from the request; leave --ct out")
    default_type, queries = (DEFAULT_ICMP6_TYPE, ICMP6_REPLY) if ipv6 else (DEFAULT_ICMP_TYPE, ICMP_REPLY)
    icmp_type = default_type if args.icmp_type is None else args.icmp_type
    if args.reply and "icmp" in protos and icmp_type not in queries:
        raise _bad("--icmp-type", f"{icmp_type}: not an icmp query, so it has no reply to trace")
    out = []
    for p in protos:
        if p in ("tcp", "udp"):
            sport = DEFAULT_SPORT if args.sport is None else args.sport
            dport = DEFAULT_DPORT if args.dport is None else args.dport
            out.append(Service(p, _NUMBERS[p], sport, dport, ipv6=ipv6))
        elif p == "icmp":
            name, number = ("icmp6", IP_PROTO_ICMPV6) if ipv6 else ("icmp", 1)
            out.append(Service(name, number, icmp_type=icmp_type, icmp_code=args.icmp_code or 0, ipv6=ipv6))
        else:
            out.append(Service(p, int(p), ipv6=ipv6))
    return out


# ---------------------------------------------------------------------------- endpoints


def _destination(
    network: Network, src: EndpointInfo, to: str, *, ipv6: bool = False
) -> tuple[EndpointInfo | None, Address, list[str]]:
    """The destination endpoint (if any), its address, and notes on how an address resolved
    (``ipv6``: an endpoint's global IPv6 address)."""
    try:
        addr = ip_address(to)
    except ValueError:
        dst = network.find_endpoint(to)
        if not ipv6:
            return dst, dst.ip, []
        if dst.ipv6 is None:
            raise _bad("--to", f"{dst.qualified} has no ipv6 address") from None
        return dst, dst.ipv6, []
    if ipv6 and isinstance(addr, IPv4Address):
        raise _bad("--to", f"{to}: an IPv4 address, and -6 traces IPv6")
    if isinstance(addr, IPv6Address):
        owners = [ep for ep in network.endpoints if addr in ep.ipv6_sources]
    else:
        owners = [ep for ep in network.endpoints if ep.ip == addr]
    if not owners:
        return None, addr, [f"no endpoint has the address {addr}"]
    own = [ep for ep in owners if ep.tenant == src.tenant]
    if own:
        dst, why = own[0], f"inside {src.tenant}, the sender's own tenant: the tables route it there"
    else:
        from segctl.topology.analysis import pair_grants

        granted = [ep for ep in owners if pair_grants(network, src, ep)]
        dst = (granted or owners)[0]
        why = "the one the sender has a grant to" if granted else "the first in the intent"
    others = [ep.qualified for ep in owners if ep.key != dst.key]
    if not others:
        return dst, addr, []
    return (
        dst,
        addr,
        [
            f"{addr} is also the address of {', '.join(others)} (overlapping addresses); "
            f"it resolved to {dst.qualified} {why}. Name an endpoint with --to to trace another owner"
        ],
    )


def _next_hop_mac(network: Network, sender: EndpointInfo, receiver: EndpointInfo | None) -> tuple[str, bool]:
    """The eth_dst ``sender``'s kernel uses toward ``receiver`` (the one first-hop rule,
    :func:`segctl.topology.network.first_hop_mac`), and whether it is the gateway's."""
    from segctl.topology.network import first_hop_mac, routed

    return first_hop_mac(network, sender, receiver), routed(sender, receiver)


def source_address(sender: EndpointInfo, toward: Address) -> Address:
    """The address ``sender`` sends from toward ``toward``: its IPv4 address, or under IPv6
    its link-local one toward a link-local address and its global one otherwise."""
    if isinstance(toward, IPv4Address):
        return sender.ip
    if toward.is_link_local and sender.ipv6_link_local is not None:
        return sender.ipv6_link_local
    if sender.ipv6 is None:
        raise _bad("--from", f"{sender.qualified} has no ipv6 address, so it sends no IPv6")
    return sender.ipv6


def _packet(
    sender: EndpointInfo, eth_dst: str, ip_src: Address, ip_dst: Address, svc: Service, *,
    ttl: int, reply: bool,
) -> Packet:  # fmt: skip
    from segctl.openflow.ofctl import mac_int
    from segctl.verifier.simulate import Packet

    sport, dport = (svc.dport, svc.sport) if reply else (svc.sport, svc.dport)
    icmp_type = (svc.reply_icmp_type() if reply else svc.icmp_type) or 0
    v6 = isinstance(ip_src, IPv6Address)
    return Packet(
        in_port=sender.port,
        eth_src=mac_int(sender.mac),
        eth_dst=mac_int(eth_dst),
        eth_type=0x86DD if v6 else 0x0800,
        ip_proto=svc.number,
        ip_src=0 if v6 else int(ip_src),
        ip_dst=0 if v6 else int(ip_dst),
        ipv6_src=int(ip_src) if v6 else 0,
        ipv6_dst=int(ip_dst) if v6 else 0,
        nw_ttl=ttl,
        tp_src=sport or 0,
        tp_dst=dport or 0,
        icmp_type=icmp_type,
        icmp_code=svc.icmp_code or 0,
        # a neighbour solicitation asks for its destination's address (unicast, as a
        # reachability check does)
        nd_target=int(ip_dst) if v6 and svc.number == IP_PROTO_ICMPV6 and icmp_type == 135 else 0,
    )


# ---------------------------------------------------------------------------- conntrack


def _fabric(network: Network) -> tuple[dict[tuple[str, int], tuple[str, int]], dict[tuple[str, int], str]]:
    links: dict[tuple[str, int], tuple[str, int]] = {}
    for a, ap, b, bp in network.links:
        links[(a, ap)] = (b, bp)
        links[(b, bp)] = (a, ap)
    return links, {(ep.switch, ep.port): ep.qualified for ep in network.endpoints}


def _ct_lookups(tables: Mapping[str, Sequence[Flow]], results: Sequence[SimResult]) -> list[tuple[str, int]]:
    """(switch, zone) of every recirculating ct() the run met, in the order it took states."""
    from segctl.openflow.ofctl import Ct

    flows = {(sw, f.table, f.priority, f.line, f.cookie): f for sw, fs in tables.items() for f in fs}
    seen: set[tuple[object, ...]] = set()
    out: list[tuple[str, int]] = []
    for r in results:  # depth first: a fork's ct() lookups come after its shared prefix
        for i, hop in enumerate(r.hops):
            flow = flows.get((hop.switch, hop.table, hop.priority, hop.line, hop.cookie))
            cts = [a for a in flow.actions if isinstance(a, Ct) and a.table is not None] if flow else []
            if cts and (key := tuple(r.hops[: i + 1])) not in seen:
                seen.add(key)
                out += [(hop.switch, ct.zone) for ct in cts]
    return out


def reply_states(
    network: Network, tables: Mapping[str, Sequence[Flow]], request: tuple[str, Packet],
    reply: tuple[str, Packet],
) -> tuple[list[str], list[tuple[str, int]]]:  # fmt: skip
    """The state each ct() lookup of the reply returns, and where the request committed.

    ``request``/``reply``: (ingress switch, packet). A lookup returns :data:`CT_REPLY` on a
    switch and zone where the request was committed, else :data:`CT_NEW`. Which lookups the
    reply meets depends on the states it got, so the states are fixed one lookup at a time.
    """
    from segctl.verifier.simulate import simulate

    links, edges = _fabric(network)
    first = simulate(tables, links, edges, request[0], request[1])
    committed = sorted({(sw, zone) for r in first for sw, _table, zone in r.commits})
    states: list[str] = []
    for _ in range(64):
        results = simulate(tables, links, edges, reply[0], reply[1], ct_next=[_bits(s) for s in states])
        want = [CT_REPLY if place in committed else CT_NEW for place in _ct_lookups(tables, results)]
        if want == states:
            break
        states = want
    return states, committed


def _bits(state: str) -> int:
    from segctl.verifier.simulate import CT_EST, CT_NEW, CT_TRK

    bits = {"trk": CT_TRK, "new": CT_NEW, "est": CT_EST, "rpl": 0x08}
    return sum(bits[f] for f in state.split(","))


# ---------------------------------------------------------------------------- one trace


@dataclass(frozen=True)
class Trace:
    """One traced packet: what it is, what the intent says, what the tables did."""

    src: EndpointInfo
    dst: EndpointInfo | None
    addr: Address
    service: Service
    reply: bool
    verdict: Verdict
    eth_dst: str
    routed: bool
    ct_states: tuple[str, ...]
    committed: tuple[tuple[str, int], ...]
    fates: tuple[tuple[SimResult, tuple[TraceHop, ...]], ...]
    #: False when --ct set states by hand: the intent's verdict is for new connections.
    judged: bool = True
    #: The request's source address (``src.ip``, or under IPv6 its global or link-local one).
    src_addr: Address | None = None

    @property
    def source(self) -> Address:
        return self.src.ip if self.src_addr is None else self.src_addr

    @property
    def sender(self) -> str:
        return self.dst.qualified if self.reply and self.dst else self.src.qualified

    @property
    def logged(self) -> tuple[TraceHop, ...]:
        """The hops whose rule sent the packet (or a copy) to the controller: logged decisions."""
        seen: dict[tuple[str, int, int, int], TraceHop] = {}
        for _, hops in self.fates:
            for hop in hops:
                if any(a.lower().startswith("controller") for a in hop.actions.split(",")):
                    seen.setdefault((hop.switch, hop.table, hop.priority, hop.line), hop)
        return tuple(seen.values())

    @property
    def receiver(self) -> str:
        if self.verdict.receiver is not None:
            return self.verdict.receiver
        return self.src.qualified if self.reply else (self.dst.qualified if self.dst else str(self.addr))

    @property
    def delivered(self) -> list[str]:
        return [r.endpoint or "?" for r, _ in self.fates if r.kind == "delivered"]

    @property
    def mismatch(self) -> str:
        """Why the tables differ from the intent for this packet ("" when they agree)."""
        got = self.delivered
        if not self.judged:
            return ""
        if self.verdict.allowed:
            if got == [self.receiver]:
                return ""
            if not got:
                where = "; ".join(_fate_text(r, hops) for r, hops in self.fates) or "the packet vanished"
                return f"the intent allows this packet but the tables do not deliver it ({where})"
            return (
                f"the intent allows this packet to {self.receiver}, "
                f"but the tables deliver it to {', '.join(got)}"
            )
        if got:
            return f"the intent denies this packet but the tables deliver it to {', '.join(got)}"
        return ""


def trace_one(
    network: Network, tables: Mapping[str, Sequence[Flow]], src: EndpointInfo, dst: EndpointInfo | None,
    addr: Address, svc: Service, *, reply: bool, ct: Sequence[str] = (), ttl: int = 64,
) -> Trace:  # fmt: skip
    """Trace the request (or, with ``reply``, the reply) of ``src`` -> ``dst`` for ``svc``."""
    from segctl.verifier.counterexample import trace_packet

    verdict = judge(network, src, dst, addr, svc, reply=reply)
    eth_dst, routed = _next_hop_mac(network, src, dst)
    src_addr = source_address(src, addr)
    request = _packet(src, eth_dst, src_addr, addr, svc, ttl=ttl, reply=False)
    states, committed = list(ct), list[tuple[str, int]]()
    if reply:
        if dst is None:
            raise _bad("--to", f"--reply needs an endpoint to reply; no endpoint has the address {addr}")
        eth_dst, routed = _next_hop_mac(network, dst, src)
        packet = _packet(dst, eth_dst, addr, src_addr, svc, ttl=ttl, reply=True)
        states, committed = reply_states(network, tables, (src.switch, request), (dst.switch, packet))
        fates = trace_packet(network, tables, dst.switch, packet, states)
    else:
        fates = trace_packet(network, tables, src.switch, request, states)
    return Trace(
        src, dst, addr, svc, reply, verdict, eth_dst, routed, tuple(states), tuple(committed),
        tuple((r, tuple(hops)) for r, hops in fates), judged=all(s == CT_NEW for s in ct), src_addr=src_addr,
    )  # fmt: skip


def _fate_text(r: SimResult, hops: Sequence[TraceHop]) -> str:
    if r.kind == "delivered":
        return f"delivered to {r.endpoint} ({r.switch}:{r.port})"
    where = f"{r.switch}" + (f" table {r.table}" if r.table is not None else "")
    guard = hops[-1].intent if hops else "?"
    return f"{r.kind} at {where} by {guard}"


def trace_text(t: Trace) -> list[str]:
    """The readable form: packet, intent verdict, hops, fates, and MISMATCH or agreement."""
    sender_ip, receiver_ip = (t.addr, t.source) if t.reply else (t.source, t.addr)
    head = "reply" if t.reply else "packet"
    lines = [
        f"{head} {t.sender} ({sender_ip}) -> {t.receiver} ({receiver_ip}) "
        f"{t.service.describe(reply=t.reply)}, eth_dst {t.eth_dst}{' (gateway)' if t.routed else ''}",
        f"intent: {t.verdict.text}",
    ]
    if t.logged:
        where = "; ".join(f"{h.switch} table {h.table} ({h.intent})" for h in t.logged)
        lines.append(f"logged: sent to the controller at {where}")
    if t.reply:
        where = ", ".join(f"{sw} zone {zone}" for sw, zone in t.committed)
        lines.append(
            "conntrack: "
            + (f"the request was committed on {where}" if where else "the request was committed nowhere")
            + "; the reply's lookups return "
            + (", ".join(t.ct_states) or "nothing (no ct() on its path)")
        )
    for r, hops in t.fates:
        lines.append("")
        lines += [f"  {i:2}. {hop}" for i, hop in enumerate(hops, 1)]
        lines.append(f"  => {_fate_text(r, hops)}")
    if not t.fates:
        lines.append("  => no fate (the packet vanished)")
    if not t.judged:
        lines.append("not judged: --ct set conntrack states by hand (--reply judges a reply)")
    else:
        lines.append(f"MISMATCH: {t.mismatch}" if t.mismatch else "ok: the tables agree with the intent")
    return lines


def trace_json(t: Trace, notes: Sequence[str]) -> dict[str, Any]:
    """The JSON form of one trace (``docs/cli.md``)."""
    sender_ip, receiver_ip = (t.addr, t.source) if t.reply else (t.source, t.addr)
    svc = t.service
    sport, dport = (svc.dport, svc.sport) if t.reply else (svc.sport, svc.dport)
    first = next(iter(t.fates), None)
    return {
        "from": t.src.qualified,
        "to": t.dst.qualified if t.dst else str(t.addr),
        "reply": t.reply,
        "packet": {
            "sender": t.sender,
            "receiver": t.receiver,
            "ip_src": str(sender_ip),
            "ip_dst": str(receiver_ip),
            "family": 6 if svc.ipv6 else 4,
            "proto": svc.proto,
            "sport": sport,
            "dport": dport,
            "icmp_type": None if first is None or svc.icmp_type is None else first[0].packet.icmp_type,
            "icmp_code": svc.icmp_code,
            "eth_dst": t.eth_dst,
        },
        "intent": {
            "verdict": "allowed" if t.verdict.allowed else "denied",
            "text": t.verdict.text,
            "grants": [g.to_json() for g in t.verdict.grants],
        },
        "logged": [{"switch": h.switch, "table": h.table, "by": h.intent} for h in t.logged],
        "ct_states": list(t.ct_states),
        "committed": [{"switch": sw, "zone": zone} for sw, zone in t.committed],
        "fates": [
            {
                "kind": r.kind,
                "switch": r.switch,
                "table": r.table,
                "port": r.port,
                "endpoint": r.endpoint,
                "trace": [h.to_json() for h in hops],
            }
            for r, hops in t.fates
        ],
        "match": (not t.mismatch) if t.judged else None,
        "mismatch": t.mismatch or None,
        "notes": list(notes),
    }


def _trace(args: argparse.Namespace) -> int:
    network, tables = load_tables(args)
    src = network.find_endpoint(args.src)
    ipv6 = args.ipv6 or ":" in args.dst
    dst, addr, notes = _destination(network, src, args.dst, ipv6=ipv6)
    wanted = services(args, ipv6=ipv6)
    traces = [
        trace_one(network, tables, src, dst, addr, svc, reply=args.reply, ct=args.ct, ttl=args.ttl)
        for svc in wanted
    ]
    code = EXIT_VIOLATION if any(t.mismatch for t in traces) else EXIT_OK
    if args.output == "json":
        docs = [trace_json(t, notes) for t in traces]
        match = None if not all(t.judged for t in traces) else code == EXIT_OK
        print_json(docs[0] if len(docs) == 1 else {"traces": docs, "match": match})
        return code
    for i, t in enumerate(traces):
        if len(traces) > 1:
            print(("\n" if i else "") + f"== {t.service.proto} ==")
        lines = trace_text(t)
        print(lines[0])
        for note in notes:
            print(f"note: {note}")
        print("\n".join(lines[1:]))
    return code
