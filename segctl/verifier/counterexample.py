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

from segctl.openflow.cookies import describe_cookie
from segctl.openflow.ofctl import Ct, Flow
from segctl.topology.network import Network
from segctl.verifier.headerspace import BDD, HeaderSpace
from segctl.verifier.properties import Spaces, Violation
from segctl.verifier.simulate import Packet, SimResult, simulate
from segctl.verifier.symbolic import Hop, Topology

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


def _mac(value: int) -> str:
    return ":".join(f"{(value >> s) & 0xFF:02x}" for s in range(40, -8, -8))


def format_packet(pkt: Mapping[str, int]) -> dict[str, str]:
    """The fields of a packet that its ethertype gives meaning to, as display strings."""
    out = {
        "eth_src": _mac(pkt["eth_src"]),
        "eth_dst": _mac(pkt["eth_dst"]),
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
            arp_sha=_mac(pkt["arp_sha"]),
            arp_tha=_mac(pkt["arp_tha"]),
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
    parts = [f"in_port={in_port}", f"dl_src={_mac(pkt['eth_src'])}", f"dl_dst={_mac(pkt['eth_dst'])}"]
    if pkt.get("vlan_present"):
        parts.append(f"dl_vlan={pkt['vlan_vid']}")
    eth, proto = pkt["eth_type"], pkt["ip_proto"]
    if eth == 0x0806:
        parts += [
            "arp",
            f"arp_op={pkt['arp_op']}",
            f"arp_spa={IPv4Address(pkt['ip_src'])}",
            f"arp_tpa={IPv4Address(pkt['ip_dst'])}",
            f"arp_sha={_mac(pkt['arp_sha'])}",
            f"arp_tha={_mac(pkt['arp_tha'])}",
        ]
    elif eth == 0x0800:
        name = {6: "tcp", 17: "udp", 1: "icmp"}.get(proto)
        parts.append(name or f"ip,nw_proto={proto}")
        parts += [f"nw_src={IPv4Address(pkt['ip_src'])}", f"nw_dst={IPv4Address(pkt['ip_dst'])}"]
        parts.append(f"nw_ttl={pkt['nw_ttl']}")
        if name in ("tcp", "udp"):
            parts += [f"{name}_src={pkt['tp_src']}", f"{name}_dst={pkt['tp_dst']}"]
        elif name == "icmp":
            parts += [f"icmp_type={pkt['icmp_type']}", f"icmp_code={pkt['icmp_code']}"]
    elif eth == 0x86DD:
        parts += [
            "ipv6",
            f"ipv6_src={IPv6Address(pkt['ipv6_src'])}",
            f"ipv6_dst={IPv6Address(pkt['ipv6_dst'])}",
        ]
        parts.append(f"nw_proto={proto}")
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
    )


def _ct_bits(state: str) -> int:
    return sum(_CT_BITS[f] for f in state.split(","))


# ---------------------------------------------------------------------------- building


_Key = tuple[str, int, int, int, str, str]  # switch, table, priority, line, match, actions


def _flow_index(tables: Mapping[str, Sequence[Flow]]) -> dict[_Key, Flow]:
    """Flows by everything a hop shows (line numbers alone repeat when flows were parsed one by one)."""
    return {
        (sw, f.table, f.priority, f.line, f.match_text, f.actions_text): f
        for sw, flows in tables.items()
        for f in flows
    }


def _hop_key(hop: Hop) -> _Key:
    return (hop.switch, hop.table, hop.priority, hop.line, hop.match, hop.actions)


def _ct_count(hops: Sequence[_Key], index: Mapping[_Key, Flow]) -> int:
    count = 0
    for key in hops:
        flow = index.get(key)
        if flow is not None:
            count += sum(1 for a in flow.actions if isinstance(a, Ct) and a.table is not None)
    return count


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
    """Narrow ``space`` to the most telling packets: bound source, IPv4/TCP, TTL 64."""
    src = next((ep for ep in network.endpoints if (ep.switch, ep.port) == violation.ingress), None)
    bound = Spaces(hs, network).bound(src) if src is not None else hs.true
    ipv4 = hs.eq("eth_type", 0x0800)
    tcp = ipv4 & hs.eq("ip_proto", 6)
    ttl = hs.eq("nw_ttl", 64)
    toward = hs.true
    if violation.dst:
        tenant, _, name = violation.dst.partition("/")
        dst = network.endpoint(tenant, name)
        toward = hs.eq("ip_dst", int(dst.ip)) & hs.eq("eth_dst", int(dst.mac.replace(":", ""), 16))
    for narrow in (
        bound & tcp & ttl & toward,
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


def _same_path(result: SimResult, hops: Sequence[Hop], kind: str, endpoint: str | None) -> bool:
    if result.kind != kind or result.endpoint != endpoint:
        return False
    want = [(h.switch, h.table, h.priority, h.line) for h in hops]
    got = [(h.switch, h.table, h.priority, h.line) for h in result.hops]
    return want == got


def build(
    network: Network, tables: Mapping[str, Sequence[Flow]], hs: HeaderSpace, violation: Violation
) -> Counterexample:
    """One concrete packet of ``violation`` with its trace (see the module docstring)."""
    outcome = violation.outcome
    space = violation.space
    if outcome is not None:
        space &= hs.origin(outcome.relation)
    pkt = hs.pick(_prefer(hs, network, violation, space))
    switch, port = violation.ingress
    index = _flow_index(tables)
    topo = Topology.from_network(network)
    if outcome is None:
        return Counterexample(
            violation.property,
            violation.message,
            violation.ingress,
            violation.src,
            violation.dst,
            format_packet(pkt),
            format_packet(pkt),
            (),
            (),
            "not traced",
            "none",
            None,
            ofproto_flow(pkt, port),
            False,
        )
    relation = hs.restrict(outcome.space, pkt, ghost=True)
    if hs.is_empty(relation):
        pkt = hs.pick(outcome.space, ghost=True)
        relation = hs.restrict(outcome.space, pkt, ghost=True)
    final = hs.pick(relation)
    keys = [_hop_key(h) for h in outcome.hops if h.priority >= 0]
    n = _ct_count(keys, index)
    disp = outcome.disposition
    choices = ["trk,new"] if violation.ct_mode == "new" else list(CT_CHOICES)
    combos = sorted(itertools.product(choices, repeat=n), key=lambda c: sum(s != "trk,new" for s in c))
    found: tuple[str, ...] | None = None
    packet = sim_packet(pkt, port)
    for combo in combos[:_MAX_CT_COMBOS]:
        results = simulate(
            tables, topo.links, topo.edges, switch, packet, ct_next=[_ct_bits(s) for s in combo]
        )
        if any(_same_path(r, outcome.hops, disp.kind, disp.endpoint) for r in results):
            found = tuple(combo)
            break
    ct_states = found if found is not None else ("trk,new",) * n
    hops = _trace_hops(network, [(_hop_key(h), h.cookie) for h in outcome.hops], index, ct_states)
    commit = ""
    if violation.commit is not None:
        c = violation.commit
        commit = f"ct(commit,zone={c.zone}) at {c.switch} table {c.table}"
    return Counterexample(
        violation.property,
        violation.message,
        violation.ingress,
        violation.src,
        violation.dst,
        format_packet(pkt),
        format_packet(final),
        ct_states,
        hops,
        str(disp),
        disp.kind,
        disp.endpoint,
        ofproto_flow(pkt, port),
        found is not None,
        commit,
    )


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
    by_line = {k[:4]: k for k in index}  # the simulator's hops name a flow by its line
    results = simulate(
        tables, topo.links, topo.edges, switch, packet, ct_next=[_ct_bits(s) for s in ct_states]
    )
    out = []
    for r in results:
        hop_keys = [
            (
                by_line.get(
                    (h.switch, h.table, h.priority, h.line), (h.switch, h.table, h.priority, h.line, "", "")
                ),
                h.cookie,
            )
            for h in r.hops
        ]
        n = _ct_count([k for k, _ in hop_keys if k[2] >= 0], index)
        states = [*ct_states, *(["trk,new"] * n)][:n]
        out.append((r, _trace_hops(network, hop_keys, index, states)))
    return out
