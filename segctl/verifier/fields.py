"""The verifier's packet fields: widths, variable order, aliases and what a proof rewrites.

:data:`FIELDS` lists every field of the header-space model with its bit width, in the
reference variable order (top of the BDD first): the pipeline fields, the ``all_new`` label,
the packet headers, the ``tag`` label. :mod:`segctl.verifier.headerspace` builds its BDD
manager from these; see its docstring for the unifications (``arp_spa`` is ``ip_src``,
``tcp_dst`` is ``tp_dst``, ``icmpv6_type`` is ``icmp_type``: :func:`canonical`).

**Rewritable fields are a property of a proof.** A field some action may write carries a
ghost copy of its injected value (origin tracking); the ghosts cost BDD variables and nodes
on every packet, so a manager tracks only :func:`rewritable_for` its tables:
:data:`BASE_REWRITABLE` (what the IPv4/ARP pipeline rewrites: MACs, VLAN, IPv4 addresses
shared with ARP's, TTL, ARP opcode and hardware addresses) plus every header field a
``set_field`` of the tables writes (``ipv6_src``, ``nd_tll``, ...). Tables without IPv6
rewrites thus cost what they cost before IPv6 rewrites were modelled.

>>> from segctl.openflow.ofctl import parse_flows
>>> flows = parse_flows("icmp6,icmp_type=135,actions=set_field:136->icmpv6_type,IN_PORT")
>>> written_fields({"s1": flows}), [f for f in rewritable_for({"s1": flows}) if f not in BASE_REWRITABLE]
(frozenset({'icmp_type'}), ['icmp_type'])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from segctl.openflow.ofctl import IN_PORT, LOCAL, Ct, Flow, SetField

__all__ = [
    "ALL_NEW",
    "BASE_REWRITABLE",
    "CONCRETE_FIELDS",
    "FIELDS",
    "HEADER_FIELDS",
    "OPTIONAL_FIELDS",
    "PACKET_FIELDS",
    "PIPELINE_FIELDS",
    "REFERENCE_ORDER",
    "TAG_BITS",
    "canonical",
    "optional_for",
    "rewritable_for",
    "written_fields",
]

#: Bits of the ``tag`` label (ingress or granted-pair numbers in a combined relation).
TAG_BITS = 24
#: A label of the path, not of the packet: 1 while every ``ct()`` lookup on the packet's path
#: said ``+trk+new`` (the scalable engine walks runs any and new at once and reads run new
#: off it). No rule reads it, no packet shows it; :meth:`HeaderSpace.sent` drops it.
ALL_NEW = "all_new"
#: Bit widths, in the reference variable order (top of the BDD first).
FIELDS: dict[str, int] = {
    "in_port": 16,
    "metadata": 64,
    **{f"reg{i}": 32 for i in range(8)},
    "ct_state": 6,
    "ct_zone": 16,
    "all_new": 1,
    "eth_src": 48,
    "eth_dst": 48,
    "eth_type": 16,
    "vlan_present": 1,
    "vlan_vid": 12,
    "ip_proto": 8,
    "ip_src": 32,
    "ip_dst": 32,
    "nw_ttl": 8,
    "tp_src": 16,
    "tp_dst": 16,
    "icmp_type": 8,
    "icmp_code": 8,
    "arp_op": 16,
    "arp_sha": 48,
    "arp_tha": 48,
    "ipv6_src": 128,
    "ipv6_dst": 128,
    "nd_target": 128,
    "nd_sll": 48,
    "nd_tll": 48,
    "nd_reserved": 32,
    "nd_options_type": 8,
    "tag": TAG_BITS,
}
#: Fields that live only inside one switch's pipeline (reset when a packet enters a switch).
PIPELINE_FIELDS = ("in_port", "metadata", *(f"reg{i}" for i in range(8)), "ct_state", "ct_zone")
#: Pipeline fields that only constants ever write (the engine tracks them per path, outside the BDD).
CONCRETE_FIELDS = tuple(f for f in PIPELINE_FIELDS if f != "ct_state")
#: Fields carried by the packet on the wire.
HEADER_FIELDS = tuple(f for f in FIELDS if f not in PIPELINE_FIELDS and f not in ("tag", ALL_NEW))
#: Every field of a packet with its pipeline state (what :meth:`HeaderSpace.pick` gives).
PACKET_FIELDS = tuple(f for f in FIELDS if f not in ("tag", ALL_NEW))
#: The reference variable order (top first): :data:`FIELDS` in order, the tag at the bottom.
REFERENCE_ORDER: tuple[str, ...] = tuple(FIELDS)
#: Header fields every manager tracks the origin of (the IPv4/ARP pipeline's rewrites:
#: ``set_field``, ``mod_dl_*``, VLAN push/pop/set, ``dec_ttl``, the ARP responder).
BASE_REWRITABLE = ("eth_src", "eth_dst", "vlan_present", "vlan_vid", "ip_src", "ip_dst", "nw_ttl", "arp_op",
                   "arp_sha", "arp_tha")  # fmt: skip

_ALIASES = {
    "arp_spa": "ip_src",
    "arp_tpa": "ip_dst",
    "tcp_src": "tp_src",
    "udp_src": "tp_src",
    "tcp_dst": "tp_dst",
    "udp_dst": "tp_dst",
    "icmpv6_type": "icmp_type",
    "icmpv6_code": "icmp_code",
}
#: Header fields a manager declares only when some rule of its tables matches or sets them
#: (only a neighbour advertisement built in flows has them): their 88 variables, unused,
#: grew CUDD's computed table by 33 MB on a dual-stack proof of 161 endpoints (285 -> 346 MiB).
OPTIONAL_FIELDS = ("nd_tll", "nd_reserved", "nd_options_type")
_OPTIONAL = frozenset(OPTIONAL_FIELDS)
_NOT_HEADERS = frozenset((*PIPELINE_FIELDS, "vlan_vid"))  # set_field on these: the key, or the VLAN


def canonical(name: str) -> str:
    """A field's name in this model (``arp_spa`` is ``ip_src``, ``icmpv6_type`` is ``icmp_type``...)."""
    return _ALIASES.get(name, name)


def _usage(tables: Mapping[str, Sequence[Flow]]) -> tuple[frozenset[str], frozenset[str]]:
    """(header fields some ``set_field`` writes, optional fields some rule matches or sets)."""
    written: set[str] = set()
    optional: set[str] = set()
    seen: set[int] = set()  # the parser shares equal action tuples: look at each one once
    for flows in tables.values():
        for flow in flows:
            match = flow.match
            if match and match[-1].field in _OPTIONAL:  # the last fields in a parsed match's order
                optional.update(t.field for t in match if t.field in _OPTIONAL)
            if id(flow.actions) in seen:
                continue
            seen.add(id(flow.actions))
            written.update(
                canonical(a.field)
                for a in flow.actions
                if isinstance(a, SetField) and a.field not in _NOT_HEADERS
            )
            for action in flow.actions:
                if isinstance(action, Ct) and action.nat is not None:
                    # conntrack NAT rewrites both addresses (forward and reply) and the ports
                    v6 = action.nat.kind is not None and action.nat.family == 6
                    written.update(("ipv6_src", "ipv6_dst") if v6 else ("ip_src", "ip_dst"))
                    written.update(("tp_src", "tp_dst"))
    return frozenset(written), frozenset(optional | (written & _OPTIONAL))


def written_fields(tables: Mapping[str, Sequence[Flow]]) -> frozenset[str]:
    """The header fields (model names) some ``set_field`` of ``tables`` writes; VLAN and
    pipeline writes aside (the VLAN is always tracked, pipeline fields are concrete)."""
    return _usage(tables)[0]


def optional_for(tables: Mapping[str, Sequence[Flow]]) -> frozenset[str]:
    """The :data:`OPTIONAL_FIELDS` some rule of ``tables`` matches or sets."""
    return _usage(tables)[1]


def rewritable_for(tables: Mapping[str, Sequence[Flow]], extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The fields a manager for ``tables`` tracks the origin of: :data:`BASE_REWRITABLE` and
    what the tables (or ``extra``) write (``set_field``, and conntrack NAT: addresses and
    transport ports), in :data:`FIELDS` order."""
    chosen = {*BASE_REWRITABLE, *written_fields(tables), *(canonical(n) for n in extra)}
    return tuple(f for f in FIELDS if f in chosen)


_BITS: dict[str, list[str]] = {name: [f"{name}_{i}" for i in range(width)] for name, width in FIELDS.items()}


def _bits(name: str) -> list[str]:
    """The variable names of a field, MSB first (shared list: do not mutate)."""
    return _BITS[name]


def _ghost(var: str) -> str:
    return f"o.{var}"


def _variables(order: Sequence[str], rewritable: frozenset[str]) -> list[str]:
    """The BDD variables of a field order, each rewritable field's ghost bit right after its live bit."""
    out: list[str] = []
    for name in order:
        for var in _bits(name):
            out.append(var)
            if name in rewritable:
                out.append(_ghost(var))
    return out


def _assignment(name: str, value: int) -> dict[str, bool]:
    width = FIELDS[name]
    return {var: bool(value >> (width - 1 - i) & 1) for i, var in enumerate(_bits(name))}


def _port16(port: int) -> int | None:
    """OpenFlow 1.3 32-bit port numbers in the model's 16 bits (reserved ports keep their low byte)."""
    if port <= 0xFF00:
        return port
    if port >= 0xFFFFFF00:
        return 0xFF00 | (port & 0xFF)
    return None


def _show(name: str, value: int) -> str:
    if name in ("eth_src", "eth_dst", "arp_sha", "arp_tha", "nd_sll", "nd_tll"):
        return ":".join(f"{(value >> s) & 0xFF:02x}" for s in range(40, -8, -8))
    if name in ("ip_src", "ip_dst"):
        return ".".join(str((value >> s) & 0xFF) for s in (24, 16, 8, 0))
    return str(value) if value < 1024 else hex(value)


#: Reserved ports in the model's 16-bit ``in_port``.
IN_PORT16 = _port16(IN_PORT)
LOCAL16 = _port16(LOCAL)
