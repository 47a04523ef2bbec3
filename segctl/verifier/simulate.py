"""A concrete one-packet simulator over parsed flow tables (no BDDs).

Written independently of :mod:`segctl.verifier.symbolic` (they share only the parsed
:class:`~segctl.openflow.ofctl.Flow` model) so that the two can check each other, like
Faucet's FakeOFTable beside its real pipeline. Semantics are the same OpenFlow 1.3 / OVS
rules, written down in ``docs/verification.md``: highest priority first (input order
breaks ties), conjunctive matches with a ``conj_id`` re-lookup, apply-actions in order,
``write_metadata``/``goto_table`` last, ``ct(table=…)`` forks with the conntrack state the
caller gives (like ``ofproto/trace --ct-next``), fabric links reset the pipeline fields,
a table miss drops.

Examples
--------
>>> from segctl.openflow.ofctl import parse_flows
>>> tables = {"s1": parse_flows("in_port=1,ip,actions=dec_ttl,output:2")}
>>> result = simulate(tables, {}, {("s1", 2): "t/b"}, "s1", Packet(in_port=1, eth_type=0x0800, nw_ttl=9))
>>> [(d.kind, d.endpoint, d.packet.nw_ttl) for d in result]
[('delivered', 't/b', 8)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from segctl.openflow.ofctl import (
    IN_PORT,
    Conjunction,
    Controller,
    Ct,
    DecTtl,
    Drop,
    Flow,
    GotoTable,
    Meter,
    Nat,
    Output,
    PopVlan,
    PushVlan,
    SetField,
    WriteMetadata,
    punts_to_controller,
)

__all__ = ["CT_EST", "CT_NEW", "CT_TRK", "Packet", "SimHop", "SimResult", "simulate"]

CT_NEW, CT_EST, CT_REL, CT_RPL, CT_TRK = 0x01, 0x02, 0x04, 0x08, 0x20
_MAX_DEPTH = 64


#: ``set_field`` names that write another :class:`Packet` attribute (ICMPv6 shares ICMP's).
_PUT_ALIASES = {"icmpv6_type": "icmp_type", "icmpv6_code": "icmp_code"}


@dataclass(frozen=True)
class Packet:
    """Every field of one packet plus the pipeline state (``vlan_tci`` has the 0x1000 present bit)."""

    in_port: int = 0
    metadata: int = 0
    regs: tuple[int, ...] = (0,) * 8
    ct_state: int = 0
    ct_zone: int = 0
    eth_src: int = 0
    eth_dst: int = 0
    eth_type: int = 0
    vlan_tci: int = 0
    ip_proto: int = 0
    ip_src: int = 0
    ip_dst: int = 0
    nw_ttl: int = 0
    tp_src: int = 0
    tp_dst: int = 0
    icmp_type: int = 0
    icmp_code: int = 0
    arp_op: int = 0
    arp_spa: int = 0
    arp_tpa: int = 0
    arp_sha: int = 0
    arp_tha: int = 0
    ipv6_src: int = 0
    ipv6_dst: int = 0
    nd_target: int = 0
    nd_sll: int = 0
    nd_tll: int = 0
    nd_reserved: int = 0
    nd_options_type: int = 0

    def get(self, name: str) -> int:
        """The value of an ofctl match field (``tcp_dst`` reads ``tp_dst`` ...)."""
        if name.startswith("reg"):
            return self.regs[int(name[3:])]
        if name in ("tcp_src", "udp_src", "tcp_dst", "udp_dst"):
            return self.tp_src if name.endswith("src") else self.tp_dst
        if name in ("icmpv6_type", "icmpv6_code"):
            return self.icmp_type if name.endswith("type") else self.icmp_code
        value: int = getattr(self, name)
        return value

    def put(self, name: str, value: int) -> Packet:
        """The packet with ofctl field ``name`` set (``icmpv6_type`` writes ``icmp_type`` ...)."""
        name = _PUT_ALIASES.get(name, name)
        if name.startswith("reg"):
            regs = list(self.regs)
            regs[int(name[3:])] = value
            return replace(self, regs=tuple(regs))
        if not isinstance(getattr(self, name, None), int):
            raise KeyError(f"{name} is not a packet field")
        return replace(self, **{name: value})  # type: ignore[arg-type]


@dataclass(frozen=True)
class SimHop:
    switch: str
    table: int
    priority: int  # -1: table miss
    line: int
    cookie: int


@dataclass(frozen=True)
class SimResult:
    """One fate of the packet (a packet can have several: outputs copy, ct forks)."""

    kind: str
    switch: str
    table: int | None
    port: int | None
    endpoint: str | None
    packet: Packet
    hops: tuple[SimHop, ...]
    commits: tuple[tuple[str, int, int], ...] = field(default=())
    detail: str = ""  # why, for a drop that is not a drop rule (as the symbolic engine says it)
    ct_path: tuple[int, ...] = ()  # the state each ct() lookup on this fate's path returned, in order


#: A commit without a translation, of one family (its rule pins ``eth_type``) or of any (0).
_Plain = int
_NatEntry = tuple[Nat, int, int] | _Plain


@dataclass
class _Run:
    links: Mapping[tuple[str, int], tuple[str, int]]
    edges: Mapping[tuple[str, int], str]
    tables: dict[str, dict[int, list[Flow]]]
    ct_next: list[int]
    ct_default: int
    results: list[SimResult]
    commits: list[tuple[str, int, int]]
    ct_by_zone: Mapping[int, int] = field(default_factory=dict)
    #: zone -> the translations commits into it set up, with the committing rule's match on
    #: the replaced address (None: a commit without one), in table order.
    nat_by_zone: Mapping[int, list[_NatEntry]] = field(default_factory=dict)
    nat_original: int | None = None


def simulate(
    tables: Mapping[str, Sequence[Flow]],
    links: Mapping[tuple[str, int], tuple[str, int]],
    edges: Mapping[tuple[str, int], str],
    switch: str,
    packet: Packet,
    *,
    ct_next: Sequence[int] = (),
    ct_default: int = CT_TRK | CT_NEW,
    ct_by_zone: Mapping[int, int] | None = None,
    nat_original: int | None = None,
) -> list[SimResult]:
    """Send ``packet`` (its ``in_port`` set) into ``switch`` table 0; return every fate.

    ``links`` maps a fabric (switch, port) to its peer, ``edges`` an edge (switch, port)
    to its endpoint. Each recirculating ``ct(table=…)`` takes the next state of ``ct_next``,
    then the state ``ct_by_zone`` gives its zone, then ``ct_default``. ``nat_original``
    names the connection a reply belongs to: the address its translation replaced (a
    reply then takes the binding whose committing rule matched that address, and gets it
    back), where several bindings share a translated address (tenant SNAT).
    """
    by_switch: dict[str, dict[int, list[Flow]]] = {}
    for sw, flows in tables.items():
        per: dict[int, list[Flow]] = {}
        for f in flows:
            per.setdefault(f.table, []).append(f)
        by_switch[sw] = {t: sorted(fs, key=lambda f: -f.priority) for t, fs in per.items()}
    nat = _nat_by_zone(tables)
    run = _Run(links, edges, by_switch, list(ct_next), ct_default, [], [], dict(ct_by_zone or {}), nat,
               nat_original)  # fmt: skip
    _table(run, switch, 0, packet, packet.in_port, (), frozenset(), ())
    return [replace(r, commits=tuple(run.commits)) for r in run.results]


def _matches(flow: Flow, packet: Packet, conj_id: int | None) -> bool:
    for term in flow.match:
        if term.field == "conj_id":
            if conj_id is None or conj_id != term.value:
                return False
            continue
        value = packet.get(term.field)
        if term.field == "in_port" and value >= 0xFF00 and term.value >= 0xFFFFFF00:
            value |= 0xFFFF0000  # reserved ports are 32-bit in OpenFlow 1.3
        if term.field == "vlan_tci":
            value &= 0x1FFF
        if value & term.mask != term.value:
            return False
    return True


def _lookup(flows: list[Flow], packet: Packet) -> tuple[Flow | None, int | None]:
    """(flow, conjunction id it was reached through) for one table lookup."""
    hard = next(
        (f for f in flows if not _is_conj(f) and f.get("conj_id") is None and _matches(f, packet, None)), None
    )
    best: tuple[int, int] | None = None  # (priority, id) of the best complete conjunction
    seen: dict[tuple[int, int], set[int]] = {}
    needed: dict[tuple[int, int], int] = {}
    for f in flows:
        if _is_conj(f) and _matches(f, packet, None):
            for a in f.actions:
                if isinstance(a, Conjunction):
                    seen.setdefault((f.priority, a.id), set()).add(a.clause)
                    needed[(f.priority, a.id)] = a.n_clauses
    for key, clauses in seen.items():
        if clauses >= set(range(1, needed[key] + 1)) and (
            best is None or key[0] > best[0] or (key[0] == best[0] and key[1] < best[1])
        ):
            best = key
    if best is None or (hard is not None and hard.priority >= best[0]):
        return hard, None
    cid = best[1]
    again = next((f for f in flows if not _is_conj(f) and _matches(f, packet, cid)), None)
    return again, cid


def _is_conj(flow: Flow) -> bool:
    return any(isinstance(a, Conjunction) for a in flow.actions)


def _emit(run: _Run, kind: str, switch: str, table: int | None, packet: Packet, hops: tuple[SimHop, ...],
          cts: tuple[int, ...], port: int | None = None, endpoint: str | None = None,
          detail: str = "") -> None:  # fmt: skip
    run.results.append(SimResult(kind, switch, table, port, endpoint, packet, hops, (), detail, cts))


def _table(
    run: _Run, switch: str, table: int, packet: Packet, in_port: int, hops: tuple[SimHop, ...],
    seen: frozenset[tuple[str, int, Packet]], cts: tuple[int, ...],
) -> None:  # fmt: skip
    state = (switch, table, packet)
    if state in seen:
        _emit(run, "loop", switch, table, packet, hops, cts, detail="packet returns to this table")
        return
    if len(seen) > _MAX_DEPTH:
        _emit(
            run, "truncated", switch, table, packet, hops, cts, detail=f"more than {_MAX_DEPTH} table visits"
        )
        return
    seen = seen | {state}
    flow, cid = _lookup(run.tables.get(switch, {}).get(table, []), packet)
    if flow is None:
        _emit(run, "miss", switch, table, packet, (*hops, SimHop(switch, table, -1, 0, 0)), cts)
        return
    del cid
    hops = (*hops, SimHop(switch, table, flow.priority, flow.line, flow.cookie))
    forwarded = False
    punts = punts_to_controller(flow.actions)
    for action in flow.actions:
        if isinstance(action, Output):
            forwarded = True
            _output(run, switch, table, action.port, packet, in_port, hops, seen, cts)
        elif isinstance(action, Controller) and punts:
            forwarded = True
            _emit(run, "controller", switch, table, packet, hops, cts)
        elif isinstance(action, Drop):
            forwarded = True
            _emit(run, "dropped", switch, table, packet, hops, cts, detail="drop action")
        elif isinstance(action, GotoTable):
            forwarded = True
            _table(run, switch, action.table, packet, in_port, hops, seen, cts)
        elif isinstance(action, WriteMetadata):
            packet = replace(packet, metadata=(packet.metadata & ~action.mask) | (action.value & action.mask))
        elif isinstance(action, SetField):
            if action.field == "vlan_vid":
                if packet.vlan_tci & 0x1000:
                    packet = replace(packet, vlan_tci=(packet.vlan_tci & ~0xFFF) | action.value)
            else:
                packet = packet.put(action.field, action.value)
        elif isinstance(action, DecTtl):
            if packet.nw_ttl <= 1:
                _emit(run, "ttl-expired", switch, table, packet, hops, cts, detail="dec_ttl on TTL 0 or 1")
                return
            packet = replace(packet, nw_ttl=packet.nw_ttl - 1)
        elif isinstance(action, PushVlan):
            if packet.vlan_tci & 0x1000:
                _emit(
                    run,
                    "unsupported",
                    switch,
                    table,
                    packet,
                    hops,
                    cts,
                    detail="push_vlan on a tagged packet",
                )
                return
            packet = replace(packet, vlan_tci=0x1000)
        elif isinstance(action, PopVlan):
            packet = replace(packet, vlan_tci=0)
        elif isinstance(action, Ct):
            if action.commit:
                run.commits.append((switch, table, action.zone))
            if action.table is not None:
                forwarded = True
                if run.ct_next:
                    state_bits = run.ct_next.pop(0)
                else:
                    state_bits = run.ct_by_zone.get(action.zone, run.ct_default)
                tracked = replace(packet, ct_state=state_bits, ct_zone=action.zone)
                if action.nat is not None:
                    tracked = _nat(run, action, tracked)
                _table(run, switch, action.table, tracked, in_port, hops, seen, (*cts, state_bits))
        elif isinstance(action, (Meter, Conjunction)):
            continue
    if not forwarded:
        _emit(run, "dropped", switch, table, packet, hops, cts, detail="no output")


def _nat_by_zone(tables: Mapping[str, Sequence[Flow]]) -> dict[int, list[_NatEntry]]:
    """Per zone, every translation its commits set up, with the committing rule's match on
    the replaced address (value, mask; 0, 0 when it has none), in table order; for a commit
    without one, the ``eth_type`` its rule pins (0: none)."""
    out: dict[int, list[_NatEntry]] = {}
    for _switch, flows in sorted(tables.items()):
        for flow in flows:
            for a in flow.actions:
                if not isinstance(a, Ct) or not a.commit:
                    continue
                entry: _NatEntry = next((t.value for t in flow.match if t.field == "eth_type"), 0)
                if a.nat is not None and a.nat.kind is not None:
                    name = ("ip_" if a.nat.family == 4 else "ipv6_") + a.nat.kind
                    term = next((t for t in flow.match if t.field == name), None)
                    entry = (a.nat, term.value, term.mask) if term is not None else (a.nat, 0, 0)
                if entry not in out.setdefault(a.zone, []):
                    out[a.zone].append(entry)
    return out


def _nat(run: _Run, action: Ct, packet: Packet) -> Packet:
    """Conntrack NAT on one packet after its lookup (``ct_state`` set): a new connection that
    ``action`` commits with a range takes the range's first address (and keeps its port when
    the range allows it, else the range's first port); a forward packet of an existing one
    takes the first translation committed into its zone whose committing rule matched its
    replaced side; a reply addressed to a translation's range gets the committing rule's
    exact original address back (it keeps its address where that rule left it open).
    Concrete choices inside what the symbolic model (:mod:`segctl.verifier.nat`) allows."""
    assert action.nat is not None
    state = packet.ct_state
    found = run.nat_by_zone.get(action.zone, [])
    if state & CT_NEW:
        if not action.commit or action.nat.kind is None:
            return packet
        return _translated(packet, action.nat)
    if not state & (CT_EST | CT_REL):
        return packet
    for entry in found:
        if isinstance(entry, int):  # a connection committed untranslated, of its family
            if entry in (0, packet.eth_type):
                return packet
            continue
        nat, value, mask = entry
        if packet.eth_type != (0x0800 if nat.family == 4 else 0x86DD):
            continue
        prefix = "ip_" if nat.family == 4 else "ipv6_"
        if not state & CT_RPL:
            if packet.get(prefix + str(nat.kind)) & mask == value:
                return _translated(packet, nat)
            continue
        side = prefix + ("dst" if nat.kind == "src" else "src")
        if nat.low <= packet.get(side) <= nat.high:
            original = run.nat_original
            if original is not None:
                if original & mask != value:
                    continue  # another connection's binding
                return replace(packet, **{side: original})  # type: ignore[arg-type]
            full = (1 << (32 if nat.family == 4 else 128)) - 1
            return replace(packet, **{side: value}) if mask == full else packet  # type: ignore[arg-type]
    return packet


def _translated(packet: Packet, nat: Nat) -> Packet:
    if packet.eth_type != (0x0800 if nat.family == 4 else 0x86DD):
        return packet
    assert nat.kind is not None
    address = ("ip_" if nat.family == 4 else "ipv6_") + nat.kind
    packet = replace(packet, **{address: nat.low})  # type: ignore[arg-type]
    if nat.port_low is not None and packet.ip_proto in (6, 17):
        port = "tp_" + nat.kind
        high = nat.port_high if nat.port_high is not None else nat.port_low
        if not nat.port_low <= getattr(packet, port) <= high:
            packet = replace(packet, **{port: nat.port_low})  # type: ignore[arg-type]
    return packet


def _output(
    run: _Run, switch: str, table: int, port: int, packet: Packet, in_port: int, hops: tuple[SimHop, ...],
    seen: frozenset[tuple[str, int, Packet]], cts: tuple[int, ...],
) -> None:  # fmt: skip
    if port == IN_PORT:
        port = in_port
    elif port == in_port:
        _emit(
            run,
            "dropped",
            switch,
            table,
            packet,
            hops,
            cts,
            port,
            detail="output to the ingress port needs IN_PORT",
        )
        return
    if (switch, port) in run.links:
        peer, peer_port = run.links[(switch, port)]
        arriving = replace(packet, in_port=peer_port, metadata=0, regs=(0,) * 8, ct_state=0, ct_zone=0)
        _table(run, peer, 0, arriving, peer_port, hops, seen, cts)
    elif (switch, port) in run.edges:
        _emit(run, "delivered", switch, table, packet, hops, cts, port, run.edges[(switch, port)])
    else:
        _emit(run, "unconnected", switch, table, packet, hops, cts, port,
              detail="port is neither a fabric link nor an endpoint")  # fmt: skip
