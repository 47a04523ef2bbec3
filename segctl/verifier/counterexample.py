"""Counterexamples: one concrete packet, its hop-by-hop trace in intent terms, its fate.

:func:`build` turns a :class:`~segctl.verifier.properties.Violation` (a symbolic header
space and the engine outcome it was found in) into a :class:`Counterexample`: every
field of one injected packet, the conntrack state each ``ct()`` lookup returned on the
path (found by replaying candidate states through the independent concrete simulator
:mod:`segctl.verifier.simulate`, fewest non-``new`` first), every hop (switch, table,
priority, match, actions, cookie and the intent object the cookie names) and the
disposition. ``ofproto_flow`` and ``ct_next`` replay it on real OVS::

    ovs-appctl ofproto/trace BRIDGE "<ofproto_flow>" --ct-next trk,new ...

:func:`trace_packet` is the concrete side of ``segctl trace``: simulate one packet and
explain each fate. Cookies are decoded for naming only (:mod:`segctl.openflow.cookies`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from segctl.errors import IntentError
from segctl.openflow.cookies import describe_cookie
from segctl.openflow.ofctl import Ct, Flow, mac_int, mac_text
from segctl.openflow.ofmatch import shorthand
from segctl.topology.network import Network
from segctl.topology.ordered import is_ordered, packet_decision, packet_space
from segctl.verifier.checks import Target, Violation
from segctl.verifier.headerspace import BDD, HeaderSpace
from segctl.verifier.simulate import Packet, SimHop, SimResult, simulate
from segctl.verifier.spaces import Spaces
from segctl.verifier.symbolic import DELIVERED, LOOP, TRUNCATED, Disposition, Topology

__all__ = [
    "CT_CHOICES",
    "Counterexample",
    "TraceHop",
    "build",
    "format_packet",
    "ofproto_flow",
    "sim_packet",
    "trace_packet",
]

_CT_BITS = {"new": 0x01, "est": 0x02, "rel": 0x04, "rpl": 0x08, "inv": 0x10, "trk": 0x20}
#: Conntrack states tried per ``ct()`` lookup, in order of preference.
CT_CHOICES = ("trk,new", "trk,est,rpl", "trk,est", "trk,rel", "trk,inv")
_MAX_CT_COMBOS = 3125
#: Most ct() lookups on one path whose states are searched (source and destination policy
#: stages, a shared-service reply lookup: three on segctl's pipeline).
_MAX_CT_LOOKUPS = 5


@dataclass(frozen=True)
class TraceHop:
    """One rule hit (or a miss, ``priority=-1``) with the intent object behind its cookie."""

    switch: str
    table: int
    priority: int
    cookie: int
    intent: str
    match: str
    actions: str
    line: int = 0
    ct_state: str = ""  # the state a ct() lookup of this hop returned (recirculating ct only)

    def to_json(self) -> dict[str, Any]:
        return {
            "switch": self.switch,
            "table": self.table,
            "priority": self.priority,
            "cookie": f"{self.cookie:#x}",
            "intent": self.intent,
            "match": self.match,
            "actions": self.actions,
            "line": self.line,
            "ct_state": self.ct_state,
        }

    def __str__(self) -> str:
        if self.priority < 0:
            return f"{self.switch} table {self.table}: no rule matches (table miss) -> drop"
        ct = f"  [ct -> {self.ct_state}]" if self.ct_state else ""
        return (
            f"{self.switch} table {self.table} priority {self.priority} ({self.intent}, cookie "
            f"{self.cookie:#x}): {self.match or '(any)'} -> {self.actions}{ct}"
        )


@dataclass(frozen=True)
class Counterexample:
    """One concrete violating packet and its trace."""

    property: str
    message: str
    ingress: tuple[str, int]
    src: str | None
    dst: str | None
    packet: dict[str, str]
    final: dict[str, str]
    ct_states: tuple[str, ...]
    hops: tuple[TraceHop, ...]
    disposition: str
    disposition_kind: str
    delivered_to: str | None
    ofproto_flow: str
    confirmed: bool
    commit: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "property": self.property,
            "message": self.message,
            "ingress": {"switch": self.ingress[0], "port": self.ingress[1]},
            "src": self.src,
            "dst": self.dst,
            "packet": self.packet,
            "final_packet": self.final,
            "ct_states": list(self.ct_states),
            "trace": [h.to_json() for h in self.hops],
            "disposition": {
                "kind": self.disposition_kind,
                "text": self.disposition,
                "endpoint": self.delivered_to,
            },
            "commit": self.commit or None,
            "replay": {
                "ofproto_trace_flow": self.ofproto_flow,
                "ct_next": list(self.ct_states),
                "confirmed_by_simulator": self.confirmed,
            },
        }


# ---------------------------------------------------------------------------- packets


def format_packet(pkt: Mapping[str, int]) -> dict[str, str]:
    """The fields of a packet that its ethertype gives meaning to, as display strings."""
    out = {
        "eth_src": mac_text(pkt["eth_src"]),
        "eth_dst": mac_text(pkt["eth_dst"]),
        "eth_type": f"{pkt['eth_type']:#06x}",
    }
    out["vlan"] = f"vid {pkt['vlan_vid']}" if pkt.get("vlan_present") else "untagged"
    eth = pkt["eth_type"]
    if eth == 0x0800:
        out.update(
            ip_src=str(IPv4Address(pkt["ip_src"])),
            ip_dst=str(IPv4Address(pkt["ip_dst"])),
            ip_proto=str(pkt["ip_proto"]),
            nw_ttl=str(pkt["nw_ttl"]),
        )
    elif eth == 0x0806:
        out.update(
            arp_op=str(pkt["arp_op"]),
            arp_spa=str(IPv4Address(pkt["ip_src"])),
            arp_tpa=str(IPv4Address(pkt["ip_dst"])),
            arp_sha=mac_text(pkt["arp_sha"]),
            arp_tha=mac_text(pkt["arp_tha"]),
        )
    elif eth == 0x86DD:
        out.update(
            ipv6_src=str(IPv6Address(pkt["ipv6_src"])),
            ipv6_dst=str(IPv6Address(pkt["ipv6_dst"])),
            ip_proto=str(pkt["ip_proto"]),
        )
    if eth in (0x0800, 0x86DD):
        if pkt["ip_proto"] in (6, 17):
            out.update(tp_src=str(pkt["tp_src"]), tp_dst=str(pkt["tp_dst"]))
        elif pkt["ip_proto"] in (1, 58):
            out.update(icmp_type=str(pkt["icmp_type"]), icmp_code=str(pkt["icmp_code"]))
    return out


def ofproto_flow(pkt: Mapping[str, int], in_port: int) -> str:
    """The packet in ``ovs-appctl ofproto/trace`` flow syntax (``tcp_dst``, never ``tp_dst``)."""
    parts = [f"in_port={in_port}", f"dl_src={mac_text(pkt['eth_src'])}", f"dl_dst={mac_text(pkt['eth_dst'])}"]
    if pkt.get("vlan_present"):
        parts.append(f"dl_vlan={pkt['vlan_vid']}")
    eth, proto = pkt["eth_type"], pkt["ip_proto"]
    if eth == 0x0806:
        parts += [
            "arp",
            f"arp_op={pkt['arp_op']}",
            f"arp_spa={IPv4Address(pkt['ip_src'])}",
            f"arp_tpa={IPv4Address(pkt['ip_dst'])}",
            f"arp_sha={mac_text(pkt['arp_sha'])}",
            f"arp_tha={mac_text(pkt['arp_tha'])}",
        ]
    elif eth in (0x0800, 0x86DD):
        v6 = eth == 0x86DD
        name = shorthand(eth, proto)
        parts.append(name or f"{'ipv6' if v6 else 'ip'},nw_proto={proto}")
        if v6:
            parts += [f"ipv6_src={IPv6Address(pkt['ipv6_src'])}", f"ipv6_dst={IPv6Address(pkt['ipv6_dst'])}"]
        else:
            parts += [f"nw_src={IPv4Address(pkt['ip_src'])}", f"nw_dst={IPv4Address(pkt['ip_dst'])}"]
            parts.append(f"nw_ttl={pkt['nw_ttl']}")
        l4 = (name or "").removesuffix("6")  # tcp6 matches tcp_src/tcp_dst, icmp6 icmpv6_type
        if l4 in ("tcp", "udp"):
            parts += [f"{l4}_src={pkt['tp_src']}", f"{l4}_dst={pkt['tp_dst']}"]
        elif l4 == "icmp":
            icmp = "icmpv6" if v6 else "icmp"
            parts += [f"{icmp}_type={pkt['icmp_type']}", f"{icmp}_code={pkt['icmp_code']}"]
            if v6 and pkt["icmp_type"] in (135, 136):  # neighbour solicitation / advertisement
                parts.append(f"nd_target={IPv6Address(pkt['nd_target'])}")
    else:
        parts.append(f"dl_type={eth:#06x}")
    return ",".join(parts)


def sim_packet(pkt: Mapping[str, int], in_port: int) -> Packet:
    """The simulator's :class:`Packet` for a header-space packet (``ip_*`` doubles as ``arp_*pa``)."""
    vlan = (0x1000 | pkt["vlan_vid"]) if pkt.get("vlan_present") else 0
    return Packet(
        in_port=in_port,
        eth_src=pkt["eth_src"],
        eth_dst=pkt["eth_dst"],
        eth_type=pkt["eth_type"],
        vlan_tci=vlan,
        ip_proto=pkt["ip_proto"],
        ip_src=pkt["ip_src"],
        ip_dst=pkt["ip_dst"],
        nw_ttl=pkt["nw_ttl"],
        tp_src=pkt["tp_src"],
        tp_dst=pkt["tp_dst"],
        icmp_type=pkt["icmp_type"],
        icmp_code=pkt["icmp_code"],
        arp_op=pkt["arp_op"],
        arp_spa=pkt["ip_src"],
        arp_tpa=pkt["ip_dst"],
        arp_sha=pkt["arp_sha"],
        arp_tha=pkt["arp_tha"],
        ipv6_src=pkt["ipv6_src"],
        ipv6_dst=pkt["ipv6_dst"],
        nd_target=pkt["nd_target"],
        nd_sll=pkt["nd_sll"],
        nd_tll=pkt["nd_tll"],
        nd_reserved=pkt["nd_reserved"],
        nd_options_type=pkt["nd_options_type"],
    )


def _ct_bits(state: str) -> int:
    return sum(_CT_BITS[f] for f in state.split(","))


# ---------------------------------------------------------------------------- building


_Key = tuple[str, int, int, int, str, str]  # switch, table, priority, line, match, actions
_BITS_TEXT = {_ct_bits(s): s for s in (*CT_CHOICES, "trk,rel,rpl", "trk,inv,rpl", "trk,new,rpl")}


def _ct_text(bits: int) -> str:
    known = _BITS_TEXT.get(bits)
    if known is not None:
        return known
    return ",".join(name for name, bit in _CT_BITS.items() if bits & bit) or "-trk"


def _flow_index(tables: Mapping[str, Sequence[Flow]]) -> dict[_Key, Flow]:
    """Flows by everything a hop shows (line numbers alone repeat when flows were parsed one by one)."""
    return {
        (sw, f.table, f.priority, f.line, f.match_text, f.actions_text): f
        for sw, flows in tables.items()
        for f in flows
    }


def _sim_hop_keys(hops: Sequence[SimHop], index: Mapping[_Key, Flow]) -> list[tuple[_Key, int]]:
    """The simulator's hops (which name a flow by its line) as (hop key, cookie)."""
    by_line = {k[:4]: k for k in index}
    return [
        (
            by_line.get(
                (h.switch, h.table, h.priority, h.line), (h.switch, h.table, h.priority, h.line, "", "")
            ),
            h.cookie,
        )
        for h in hops
    ]


def _trace_hops(
    network: Network,
    hops: Sequence[tuple[_Key, int]],
    index: Mapping[_Key, Flow],
    ct_states: Sequence[str],
) -> tuple[TraceHop, ...]:
    """(hop key, cookie) -> TraceHops, assigning ct states in path order."""
    states = list(ct_states)
    out = []
    for key, cookie in hops:
        switch, table, priority, line = key[:4]
        flow = index.get(key) if priority >= 0 else None
        cts = sum(1 for a in flow.actions if isinstance(a, Ct) and a.table is not None) if flow else 0
        taken = [states.pop(0) if states else "trk,new" for _ in range(cts)]
        out.append(
            TraceHop(
                switch,
                table,
                priority,
                cookie,
                describe_cookie(cookie, network) if priority >= 0 else "table miss",
                flow.match_text if flow else "",
                flow.actions_text if flow else "drop",
                line,
                " / ".join(taken),
            )
        )
    return tuple(out)


def _prefer(hs: HeaderSpace, network: Network, violation: Violation, space: BDD) -> BDD:
    """Narrow ``space`` to the most telling packets: bound source (at an uplink, active or
    standby: the upstream router's untagged frame, to the fabric's MAC where it can be),
    IPv4/TCP, TTL 64."""
    src = next((ep for ep in network.endpoints if (ep.switch, ep.port) == violation.ingress), None)
    uplink = next(
        (x for x in network.externals if violation.ingress in ((x.switch, x.port), *x.standby)), None
    )
    bound = fabric = hs.true  # fabric: the router's frames are to the fabric's MAC
    if src is not None:
        bound = Spaces(hs, network).bound(src)
    elif uplink is not None:
        bound = hs.oeq("eth_src", mac_int(uplink.router_mac)) & hs.oeq("vlan_present", 0)
        fabric = hs.oeq("eth_dst", mac_int(uplink.mac))
    ipv4 = hs.oeq("eth_type", 0x0800)
    tcp = ipv4 & hs.oeq("ip_proto", 6)
    ttl = hs.oeq("nw_ttl", 64)
    toward = hs.true
    if violation.dst and "/" in violation.dst:  # an endpoint (an uplink is external:NAME)
        tenant, _, name = violation.dst.partition("/")
        dst = network.endpoint(tenant, name)
        toward = hs.oeq("ip_dst", int(dst.ip)) & hs.oeq("eth_dst", mac_int(dst.mac))
    for narrow in (
        bound & fabric & tcp & ttl & toward,
        bound & tcp & ttl & toward,
        bound & fabric & tcp & ttl,
        bound & tcp & ttl,
        bound & ipv4 & ttl,
        bound & ipv4,
        bound,
        tcp & ttl,
        ipv4,
    ):
        candidate = space & narrow
        if not hs.is_empty(candidate):
            return candidate
    return space


def _meets(
    results: Sequence[SimResult], target: Target, commit: tuple[str, int, int] | None
) -> SimResult | None:
    """The first fate that shows ``target`` (None when none does)."""
    if target.kind == "missing":
        if any(r.kind == DELIVERED and r.endpoint == target.endpoint for r in results):
            return None
        return results[0] if results else None
    for r in results:
        if target.kind == "delivered" and r.kind == DELIVERED and r.endpoint == target.endpoint:
            return r
        if target.kind == "hole" and target.disposition is not None and _same_end(r, target.disposition):
            return r
        delivered = target.endpoint is None or (r.kind == DELIVERED and r.endpoint == target.endpoint)
        if target.kind == "commit" and commit in r.commits and delivered:
            return r
    return None


def _same_end(r: SimResult, d: Disposition) -> bool:
    if r.kind != d.kind:
        return False
    if d.kind in (LOOP, TRUNCATED):
        return True  # the concrete packet may notice the loop at another table of it
    return r.switch == d.switch and r.table == d.table and (d.port is None or r.port == d.port)


def _replay(
    tables: Mapping[str, Sequence[Flow]], topo: Topology, switch: str, packet: Packet, v: Violation
) -> tuple[SimResult, bool]:
    """Simulate the packet with the conntrack states of the violation's run; in run ``any``,
    combinations of states (fewest non-new first) until one shows the target. Returns the
    fate shown and whether it shows the target."""

    def sim(ct_next: Sequence[int] = (), by_zone: Mapping[int, int] | None = None) -> list[SimResult]:
        return simulate(tables, topo.links, topo.edges, switch, packet, ct_next=ct_next, ct_by_zone=by_zone)

    est = _ct_bits("trk,est,rpl")
    first = sim(by_zone=dict.fromkeys(v.zones, est) if v.ct_mode == "est" else None)
    hit = _meets(first, v.target, v.commit)
    if hit is not None or v.ct_mode != "any":
        return (hit, True) if hit is not None else (_shown(first, v.target), False)
    tried = 1
    for length in range(1, _MAX_CT_LOOKUPS + 1):
        longest = 0
        combos = sorted(
            itertools.product(CT_CHOICES, repeat=length), key=lambda c: sum(s != "trk,new" for s in c)
        )
        for combo in combos:
            if tried >= _MAX_CT_COMBOS:
                return _shown(first, v.target), False
            tried += 1
            results = sim(ct_next=[_ct_bits(s) for s in combo])
            hit = _meets(results, v.target, v.commit)
            if hit is not None:
                return hit, True
            longest = max([longest, *(len(r.ct_path) for r in results)])
        if longest < length:
            break  # no fate meets more lookups than these: longer combinations change nothing
    return _shown(first, v.target), False


def _shown(results: Sequence[SimResult], target: Target) -> SimResult:
    """The fate to show when none shows the target: one not delivered to the target's endpoint."""
    return next((r for r in results if r.endpoint != target.endpoint), results[0])


def _disposition(r: SimResult) -> Disposition:
    return Disposition(r.kind, r.switch, r.table, r.port, r.endpoint, r.detail)


def _header(p: Packet) -> dict[str, int]:
    """A simulated packet in header-space terms (``ip_*`` are ``arp_*pa`` for ARP)."""
    arp = p.eth_type == 0x0806
    return {
        "eth_src": p.eth_src, "eth_dst": p.eth_dst, "eth_type": p.eth_type,
        "vlan_present": p.vlan_tci >> 12 & 1, "vlan_vid": p.vlan_tci & 0xFFF, "ip_proto": p.ip_proto,
        "ip_src": p.arp_spa if arp else p.ip_src, "ip_dst": p.arp_tpa if arp else p.ip_dst,
        "nw_ttl": p.nw_ttl, "tp_src": p.tp_src, "tp_dst": p.tp_dst, "icmp_type": p.icmp_type,
        "icmp_code": p.icmp_code, "arp_op": p.arp_op, "arp_sha": p.arp_sha, "arp_tha": p.arp_tha,
        "ipv6_src": p.ipv6_src, "ipv6_dst": p.ipv6_dst, "nd_target": p.nd_target, "nd_sll": p.nd_sll,
        "nd_tll": p.nd_tll, "nd_reserved": p.nd_reserved, "nd_options_type": p.nd_options_type,
    }  # fmt: skip


def build(
    network: Network, tables: Mapping[str, Sequence[Flow]], hs: HeaderSpace, violation: Violation
) -> Counterexample:
    """One concrete packet of ``violation`` with its trace (see the module docstring).

    The packet is the least one (:meth:`~segctl.verifier.headerspace.HeaderSpace.pick`) of
    the violation's space, narrowed to the most telling packets; its trace is the concrete
    simulator's, so the counterexample depends on the violation alone, not on the engine
    that found it."""
    pkt = hs.pick(_prefer(hs, network, violation, violation.space), ghost=True)
    decided_by = _decided_by(network, violation, pkt)
    switch, port = violation.ingress
    index = _flow_index(tables)
    topo = Topology.from_network(network)
    result, confirmed = _replay(tables, topo, switch, sim_packet(pkt, port), violation)
    ct_states = tuple(_ct_text(b) for b in result.ct_path)
    hops = _trace_hops(network, _sim_hop_keys(result.hops, index), index, ct_states)
    commit = ""
    if violation.commit is not None:
        c_switch, c_table, c_zone = violation.commit
        commit = f"ct(commit,zone={c_zone}) at {c_switch} table {c_table}"
    disp = _disposition(result)
    return Counterexample(
        violation.property,
        violation.message + (f"; the intent decides: {decided_by}" if decided_by else ""),
        violation.ingress,
        violation.src,
        violation.dst,
        format_packet(pkt),
        format_packet(_header(result.packet)),
        ct_states,
        hops,
        str(disp),
        disp.kind,
        disp.endpoint,
        ofproto_flow(pkt, port),
        confirmed,
        commit,
    )


def _decided_by(network: Network, violation: Violation, pkt: Mapping[str, int]) -> str:
    """Under ordered rules, the rule (and tier) of the intent that decides the violation's
    IPv4 packet, in words; empty otherwise (without ordered rules the message says it all)."""
    if violation.property not in ("isolation", "conformance") or pkt.get("eth_type") != 0x0800:
        return ""
    if not is_ordered(network) or violation.src is None or violation.dst is None:
        return ""
    try:
        src, dst = network.find_endpoint(violation.src), network.find_endpoint(violation.dst)
    except IntentError:
        return ""
    proto = {6: "tcp", 17: "udp", 1: "icmp"}.get(pkt.get("ip_proto", 0), "other")
    space = packet_space(proto, pkt.get("tp_dst"), pkt.get("icmp_type"), pkt.get("icmp_code"))
    return packet_decision(network, src, dst, space)


def trace_packet(
    network: Network,
    tables: Mapping[str, Sequence[Flow]],
    switch: str,
    packet: Packet,
    ct_states: Sequence[str] = (),
) -> list[tuple[SimResult, tuple[TraceHop, ...]]]:
    """Simulate one concrete packet; every fate with its hops named in intent terms."""
    topo = Topology.from_network(network)
    index = _flow_index(tables)
    results = simulate(
        tables, topo.links, topo.edges, switch, packet, ct_next=[_ct_bits(s) for s in ct_states]
    )
    return [
        (r, _trace_hops(network, _sim_hop_keys(r.hops, index), index, [_ct_text(b) for b in r.ct_path]))
        for r in results
    ]
