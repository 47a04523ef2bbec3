"""Read and write OpenFlow rules in ``ovs-ofctl`` text form.

:func:`parse_flows` reads both the ``ovs-ofctl add-flows`` syntax and the output of
``ovs-ofctl -O OpenFlow13 dump-flows`` (with or without statistics, ``reset_counts``,
``NXST_FLOW``/``OFPST_FLOW reply`` header lines) into immutable :class:`Flow` objects.
:func:`format_flow` writes the canonical ``add-flows`` line of a :class:`Flow`;
``parse_flow(format_flow(f)) == f`` for every flow.

Normalization (so that a compiled line and the line OVS dumps back compare equal):

* match field aliases are unified to one name (``dl_src`` → ``eth_src``, ``nw_src`` →
  ``ip_src`` or, under ARP, ``arp_spa``, ``tp_dst`` → ``tcp_dst``/``udp_dst`` by protocol,
  ``dl_vlan``/``vlan_vid`` → ``vlan_tci``, ``nw_proto`` → ``ip_proto`` or, under ARP,
  ``arp_op``, ``icmp_type`` → ``icmpv6_type`` under IPv6, ...); shorthands (``ip``, ``tcp``,
  ``arp``, ``icmp6``, ...) expand to ``eth_type``/``ip_proto``;
* every value is an integer with a mask (``value & mask == value``; an exact match has
  the field's full mask); the VLAN match keeps only the present bit and the VID
  (``0x1fff``); PCP matching is not supported;
* actions are typed (:data:`Action`); aliases unified (``mod_dl_src`` → ``SetField``,
  ``strip_vlan`` → ``PopVlan``, ``output:in_port`` → ``Output(IN_PORT)``,
  ``output:CONTROLLER`` → ``Controller``, ``mod_vlan_vid`` → ``[PushVlan,] SetField``
  exactly as OVS translates it for OpenFlow 1.3); ``SetField("vlan_vid", v)`` holds the
  12-bit VID (``ovs-ofctl`` writes it with the present bit, ``set_field:4196->vlan_vid``);
* instructions are put in OpenFlow order: ``meter`` first, then apply-actions in their
  order, then ``write_metadata``, then ``goto_table``; an empty action list is ``Drop``.

Anything outside the modelled vocabulary (``move``, ``load``, ``resubmit``, ``nat``,
``tcp_flags``, ``nw_tos``, port names, ...) raises :class:`UnsupportedFlowError` naming
the line and the token: the verifier never ignores what it does not understand.
Malformed text raises :class:`FlowSyntaxError` with the line number.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

from segctl.errors import FlowSyntaxError, UnsupportedFlowError

__all__ = [
    "CONTROLLER",
    "FIELD_WIDTHS",
    "IN_PORT",
    "LOCAL",
    "SET_FIELDS",
    "Action",
    "Conjunction",
    "Controller",
    "Ct",
    "DecTtl",
    "Drop",
    "FieldMatch",
    "Flow",
    "GotoTable",
    "Meter",
    "Output",
    "PopVlan",
    "PushVlan",
    "SetField",
    "WriteMetadata",
    "format_action",
    "format_flow",
    "format_match",
    "format_value",
    "parse_flow",
    "parse_flows",
]

#: Reserved OpenFlow 1.3 port numbers (32-bit).
IN_PORT = 0xFFFFFFF8
CONTROLLER = 0xFFFFFFFD
LOCAL = 0xFFFFFFFE
_PORT_NAMES = {"IN_PORT": IN_PORT, "LOCAL": LOCAL}

#: Bit width of every normalized match field.
FIELD_WIDTHS: dict[str, int] = {
    "in_port": 32,
    "metadata": 64,
    **{f"reg{i}": 32 for i in range(8)},
    "conj_id": 32,
    "ct_state": 8,
    "ct_zone": 16,
    "eth_src": 48,
    "eth_dst": 48,
    "eth_type": 16,
    "vlan_tci": 16,
    "ip_proto": 8,
    "ip_src": 32,
    "ip_dst": 32,
    "nw_ttl": 8,
    "tcp_src": 16,
    "tcp_dst": 16,
    "udp_src": 16,
    "udp_dst": 16,
    "icmp_type": 8,
    "icmp_code": 8,
    "icmpv6_type": 8,
    "icmpv6_code": 8,
    "arp_op": 16,
    "arp_spa": 32,
    "arp_tpa": 32,
    "arp_sha": 48,
    "arp_tha": 48,
    "ipv6_src": 128,
    "ipv6_dst": 128,
    "nd_target": 128,
    "nd_sll": 48,
}
_FIELD_ORDER = {name: i for i, name in enumerate(FIELD_WIDTHS)}
_MAC_FIELDS = {"eth_src", "eth_dst", "arp_sha", "arp_tha", "nd_sll"}
_IP4_FIELDS = {"ip_src", "ip_dst", "arp_spa", "arp_tpa"}
_IP6_FIELDS = {"ipv6_src", "ipv6_dst", "nd_target"}
_DEC_FIELDS = {"in_port", "ip_proto", "nw_ttl", "icmp_type", "icmp_code", "icmpv6_type", "icmpv6_code",
               "arp_op", "tcp_src", "tcp_dst", "udp_src", "udp_dst", "conj_id", "ct_zone"}  # fmt: skip

#: Fields that ``set_field`` may write (``vlan_vid`` is the 12-bit VID).
SET_FIELDS: dict[str, int] = {
    "eth_src": 48,
    "eth_dst": 48,
    "vlan_vid": 12,
    "arp_op": 16,
    "arp_sha": 48,
    "arp_spa": 32,
    "arp_tha": 48,
    "arp_tpa": 32,
    **{f"reg{i}": 32 for i in range(8)},
}

ETH_IP, ETH_ARP, ETH_IPV6 = 0x0800, 0x0806, 0x86DD
_SHORTHANDS: dict[str, tuple[int, int | None]] = {
    "ip": (ETH_IP, None),
    "ipv4": (ETH_IP, None),
    "arp": (ETH_ARP, None),
    "ipv6": (ETH_IPV6, None),
    "tcp": (ETH_IP, 6),
    "udp": (ETH_IP, 17),
    "icmp": (ETH_IP, 1),
    "tcp6": (ETH_IPV6, 6),
    "udp6": (ETH_IPV6, 17),
    "icmp6": (ETH_IPV6, 58),
}
_SHORTHAND_BY_KEY = {v: k for k, v in _SHORTHANDS.items() if k != "ipv4"}
_SIMPLE_ALIASES = {
    "dl_src": "eth_src",
    "dl_dst": "eth_dst",
    "dl_type": "eth_type",
    "ipv6_src": "ipv6_src",
    "ipv6_dst": "ipv6_dst",
    "nd_target": "nd_target",
    "nd_sll": "nd_sll",
}
_STAT_KEYS = {"duration", "n_packets", "n_bytes", "idle_timeout", "hard_timeout", "idle_age", "hard_age",
              "importance", "packet_count", "byte_count"}  # fmt: skip
_FLAGS = {"reset_counts", "send_flow_rem", "check_overlap", "no_packet_counts", "no_byte_counts"}
#: Fields OVS matches exactly only (a mask is an error, as in ``ovs-ofctl``).
_EXACT_FIELDS = {"in_port", "conj_id", "ct_zone", "eth_type", "ip_proto", "nw_ttl", "icmp_type", "icmp_code",
                 "icmpv6_type", "icmpv6_code", "arp_op"}  # fmt: skip
_PLAIN_FIELDS = {"ct_state", "ct_zone", "metadata", "conj_id", "in_port", "eth_src", "eth_dst"} | {
    f"reg{i}" for i in range(8)
}
_CT_BITS = {"new": 0x01, "est": 0x02, "rel": 0x04, "rpl": 0x08, "inv": 0x10, "trk": 0x20, "snat": 0x40,
            "dnat": 0x80}  # fmt: skip
_CT_ORDER = ("trk", "new", "est", "rel", "rpl", "inv", "snat", "dnat")


# ----------------------------------------------------------------------------- model


@dataclass(frozen=True, order=True)
class FieldMatch:
    """One normalized match term: ``packet[field] & mask == value``."""

    field: str
    value: int
    mask: int


@dataclass(frozen=True)
class Output:
    """Output to a port; ``port`` may be :data:`IN_PORT` or :data:`LOCAL`."""

    port: int


@dataclass(frozen=True)
class Controller:
    """Send to the controller (``controller(...)``, ``CONTROLLER:N``)."""

    max_len: int = 65535
    reason: str = ""


@dataclass(frozen=True)
class Drop:
    """The explicit ``drop`` action (an empty action list)."""


@dataclass(frozen=True)
class GotoTable:
    table: int


@dataclass(frozen=True)
class WriteMetadata:
    """``metadata = (metadata & ~mask) | (value & mask)``."""

    value: int
    mask: int = (1 << 64) - 1


@dataclass(frozen=True)
class SetField:
    """Write ``value`` into ``field`` (a name of :data:`SET_FIELDS`)."""

    field: str
    value: int


@dataclass(frozen=True)
class DecTtl:
    """Decrement the IPv4 TTL (a packet whose TTL would reach 0 is dropped)."""


@dataclass(frozen=True)
class PushVlan:
    ethertype: int = 0x8100


@dataclass(frozen=True)
class PopVlan:
    pass


@dataclass(frozen=True)
class Ct:
    """Send through conntrack in ``zone``; ``table`` recirculates the packet there."""

    commit: bool = False
    zone: int = 0
    table: int | None = None


@dataclass(frozen=True)
class Conjunction:
    """Clause ``clause`` (1-based) of ``n_clauses`` of conjunctive match ``id``."""

    id: int
    clause: int
    n_clauses: int


@dataclass(frozen=True)
class Meter:
    id: int


#: Every action and instruction the verifier models.
Action: TypeAlias = (
    Output | Controller | Drop | GotoTable | WriteMetadata | SetField | DecTtl | PushVlan | PopVlan | Ct
    | Conjunction | Meter
)  # fmt: skip


@dataclass(frozen=True)
class Flow:
    """One OpenFlow rule. ``match`` is sorted in :data:`FIELD_WIDTHS` order.

    ``line`` and ``text`` say where the flow came from; they do not take part in equality.
    """

    table: int
    priority: int
    cookie: int
    match: tuple[FieldMatch, ...]
    actions: tuple[Action, ...]
    line: int = field(default=0, compare=False)
    text: str = field(default="", compare=False)

    def get(self, name: str) -> FieldMatch | None:
        """The match term on ``name``, or None when the field is wildcarded."""
        return next((m for m in self.match if m.field == name), None)

    @property
    def match_text(self) -> str:
        return format_match(self.match)

    @property
    def actions_text(self) -> str:
        return ",".join(format_action(a) for a in self.actions)


# ---------------------------------------------------------------------------- values


def _full(name: str) -> int:
    return (1 << FIELD_WIDTHS[name]) - 1


def _int(text: str) -> int:
    return int(text, 0) if text[:2].lower() == "0x" else int(text, 10)


def _mac(text: str) -> int:
    parts = text.split(":")
    if len(parts) != 6 or not all(re.fullmatch(r"[0-9a-fA-F]{1,2}", p) for p in parts):
        raise ValueError(f"bad MAC address {text!r}")
    return int("".join(p.zfill(2) for p in parts), 16)


def _parse_value(name: str, text: str) -> tuple[int, int]:
    """Parse ``value[/mask]`` of field ``name`` into (value, mask)."""
    full = _full(name)
    raw, slash, mask_text = text.partition("/")
    if name in _MAC_FIELDS:
        value = _mac(raw)
        mask = _mac(mask_text) if slash else full
    elif name in _IP4_FIELDS or name in _IP6_FIELDS:
        cls = ipaddress.IPv4Address if name in _IP4_FIELDS else ipaddress.IPv6Address
        bits = 32 if name in _IP4_FIELDS else 128
        value = int(cls(raw))
        if not slash:
            mask = full
        elif mask_text.isdigit():
            n = int(mask_text)
            if n > bits:
                raise ValueError(f"prefix length {n} too long")
            mask = full ^ ((1 << (bits - n)) - 1)
        else:
            mask = int(cls(mask_text))
    else:
        value = _int(raw)
        mask = _int(mask_text) if slash else full
    if value > full or mask > full or value < 0 or mask < 0:
        raise ValueError(f"{text} does not fit in {FIELD_WIDTHS[name]} bits")
    return value & mask, mask


def _ct_state(text: str) -> tuple[int, int]:
    if not text.startswith(("+", "-")):
        value, mask = (_int(p) for p in text.split("/")) if "/" in text else (_int(text), 0xFF)
        return value & mask, mask
    value = mask = 0
    for sign, flag in re.findall(r"([+-])([a-z]+)", text):
        if flag not in _CT_BITS or "".join(re.findall(r"[+-][a-z]+", text)) != text:
            raise ValueError(f"bad ct_state {text!r}")
        mask |= _CT_BITS[flag]
        value |= _CT_BITS[flag] if sign == "+" else 0
    return value, mask


def format_value(name: str, value: int, mask: int) -> str:
    """The ``ovs-ofctl`` text of one match term (``value[/mask]``)."""
    full = _full(name)
    if name == "ct_state":
        if mask & ~0x3F or value & ~mask:
            return f"{value:#x}/{mask:#x}"
        flags = "".join(("+" if value & _CT_BITS[f] else "-") + f for f in _CT_ORDER if mask & _CT_BITS[f])
        return flags or "0/0"
    if name in _MAC_FIELDS:

        def mac(v: int) -> str:
            return ":".join(f"{(v >> s) & 0xFF:02x}" for s in range(40, -8, -8))

        return mac(value) if mask == full else f"{mac(value)}/{mac(mask)}"
    if name in _IP4_FIELDS or name in _IP6_FIELDS:
        cls = ipaddress.IPv4Address if name in _IP4_FIELDS else ipaddress.IPv6Address
        bits = 32 if name in _IP4_FIELDS else 128
        if mask == full:
            return str(cls(value))
        inverted = full ^ mask
        if inverted & (inverted + 1) == 0:  # a prefix mask
            return f"{cls(value)}/{bits - inverted.bit_length()}"
        return f"{cls(value)}/{cls(mask)}"
    if mask == full:
        return str(value) if name in _DEC_FIELDS else f"{value:#x}"
    return f"{value:#x}/{mask:#x}"


# ----------------------------------------------------------------------------- parse


class _Unsupported(Exception):
    """Internal: a token outside the modelled vocabulary."""


def parse_flows(text: str | Iterable[str], *, source: str = "") -> list[Flow]:
    """Parse every flow of an ``add-flows`` file or a ``dump-flows`` output.

    Blank lines, ``#`` comments and ``*ST_FLOW reply`` headers are skipped. ``source``
    (a file name or a switch) prefixes error messages.
    """
    lines = text.splitlines() if isinstance(text, str) else list(text)
    flows: list[Flow] = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or re.match(r"^(NXST|OFPST)_FLOW reply", stripped):
            continue
        flows.append(parse_flow(stripped, line=number, source=source))
    return flows


def parse_flow(text: str, *, line: int = 0, source: str = "") -> Flow:
    """Parse one flow line. Raises :class:`FlowSyntaxError` or :class:`UnsupportedFlowError`."""
    where = f"{source + ':' if source else ''}{line or '?'}"
    try:
        return _parse(text.strip(), line)
    except _Unsupported as exc:
        raise UnsupportedFlowError(
            f"{where}: {exc} (not modelled by the verifier) in: {text.strip()}"
        ) from None
    except (ValueError, KeyError) as exc:
        raise FlowSyntaxError(f"{where}: {exc} in: {text.strip()}") from None


def _parse(text: str, line: int) -> Flow:
    head, sep, actions_text = text.partition("actions=")
    if not sep:
        raise ValueError("no actions= part")
    head = head.strip().rstrip(",")
    tokens = [t for t in re.split(r"[,\s]+", head) if t]
    table, priority, cookie = 0, 32768, 0
    raw: list[tuple[str, str | None]] = []
    for token in tokens:
        key, eq, value = token.partition("=")
        if not eq:
            if key in _FLAGS:
                continue
            raw.append((key, None))
        elif key == "table":
            table = _int(value)
        elif key == "priority":
            priority = _int(value)
        elif key == "cookie":
            if "/" in value:
                raise ValueError("a cookie mask belongs to a flow filter, not a flow")
            cookie = _int(value)
        elif key in _STAT_KEYS:
            continue
        else:
            if not value:
                raise ValueError(f"{key}= has no value")
            raw.append((key, value))
    if not 0 <= table <= 254 or not 0 <= priority <= 65535:
        raise ValueError("table or priority out of range")
    match = _normalize_match(raw)
    actions = _parse_actions(actions_text.strip(), match)
    return Flow(table, priority, cookie, match, actions, line=line, text=text)


def _normalize_match(raw: list[tuple[str, str | None]]) -> tuple[FieldMatch, ...]:
    terms: dict[str, tuple[int, int]] = {}

    def put(name: str, value: int, mask: int) -> None:
        if name in _EXACT_FIELDS and mask != _full(name):
            raise ValueError(f"{name} cannot be masked")
        if name in terms and terms[name] != (value, mask):
            raise ValueError(f"{name} given twice with different values")
        terms[name] = (value, mask)

    # Pass 1: shorthands and dl_type/nw_proto decide the protocol context.
    for key, value in raw:
        if value is None:
            if key not in _SHORTHANDS:
                raise _Unsupported(f"match token {key!r}")
            short_eth, short_proto = _SHORTHANDS[key]
            put("eth_type", short_eth, 0xFFFF)
            if short_proto is not None:
                put("ip_proto", short_proto, 0xFF)
        elif key in ("dl_type", "eth_type"):
            put("eth_type", *_parse_value("eth_type", value))
    eth: int | None = terms["eth_type"][0] if "eth_type" in terms else None
    for key, value in raw:
        if key in ("nw_proto", "ip_proto") and value is not None:
            name = "arp_op" if eth == ETH_ARP else "ip_proto"
            put(name, *_parse_value(name, value))
    proto: int | None = terms["ip_proto"][0] if "ip_proto" in terms else None

    for key, value in raw:
        if value is None or key in ("dl_type", "eth_type", "nw_proto", "ip_proto"):
            continue
        name = _field_name(key, eth, proto)
        if name == "vlan_tci":
            put(name, *_vlan(key, value))
        elif name == "ct_state":
            put(name, *_ct_state(value))
        elif name == "in_port":
            put(name, _PORT_NAMES[value] if value in _PORT_NAMES else _port_number(value), _full(name))
        else:
            put(name, *_parse_value(name, value))
    kept = (FieldMatch(k, v, m) for k, (v, m) in terms.items() if m)
    return tuple(sorted(kept, key=lambda t: _FIELD_ORDER[t.field]))


def _port_number(text: str) -> int:
    if not re.fullmatch(r"\d+|0x[0-9a-fA-F]+", text):
        raise _Unsupported(f"port name {text!r} (dump with port numbers, without --names)")
    return _int(text)


def _field_name(key: str, eth: int | None, proto: int | None) -> str:
    if key in ("nw_src", "ip_src", "nw_dst", "ip_dst"):
        if eth == ETH_ARP:
            return "arp_spa" if key.endswith("src") else "arp_tpa"
        if eth != ETH_IP:
            raise ValueError(f"{key} needs ip or arp (prerequisites not met)")
        return "ip_src" if key.endswith("src") else "ip_dst"
    if key in ("tp_src", "tp_dst", "tcp_src", "tcp_dst", "udp_src", "udp_dst"):
        kind = {6: "tcp", 17: "udp"}.get(proto or -1)
        if kind is None or eth not in (ETH_IP, ETH_IPV6) or (key[:3] in ("tcp", "udp") and key[:3] != kind):
            raise ValueError(f"{key} needs tcp or udp (prerequisites not met)")
        return f"{kind}_{key[-3:]}"
    if key in ("icmp_type", "icmp_code", "icmpv6_type", "icmpv6_code"):
        suffix = key.rpartition("_")[2]
        if eth == ETH_IP and proto == 1 and not key.startswith("icmpv6"):
            return f"icmp_{suffix}"
        if eth == ETH_IPV6 and proto == 58:
            return f"icmpv6_{suffix}"
        raise ValueError(f"{key} needs icmp or icmp6 (prerequisites not met)")
    if key in ("dl_vlan", "vlan_vid", "vlan_tci"):
        return "vlan_tci"
    if key in ("nw_ttl", "ip_ttl"):
        if eth not in (ETH_IP, ETH_IPV6):
            raise ValueError(f"{key} needs ip (prerequisites not met)")
        return "nw_ttl"
    if key.startswith("arp_") and key in FIELD_WIDTHS:
        if eth != ETH_ARP:
            raise ValueError(f"{key} needs arp (prerequisites not met)")
        return key
    if key in ("ipv6_src", "ipv6_dst"):
        if eth != ETH_IPV6:
            raise ValueError(f"{key} needs ipv6 (prerequisites not met)")
        return key
    if key in ("nd_target", "nd_sll"):
        if eth != ETH_IPV6 or proto != 58:
            raise ValueError(f"{key} needs icmp6 (prerequisites not met)")
        return key
    name = _SIMPLE_ALIASES.get(key, key)
    if name in (
        "ct_state",
        "ct_zone",
        "metadata",
        "conj_id",
        "in_port",
        "eth_src",
        "eth_dst",
    ) or re.fullmatch(r"reg[0-7]", name):
        return name
    raise _Unsupported(f"match field {key!r}")


def _vlan(key: str, text: str) -> tuple[int, int]:
    """dl_vlan / vlan_vid / vlan_tci to (value, mask) over the present bit and VID."""
    if key == "dl_vlan":
        vid = _int(text)
        if vid == 0xFFFF:
            return 0, 0x1FFF
        if vid > 0xFFF:
            raise ValueError(f"dl_vlan {text} out of range")
        return 0x1000 | vid, 0x1FFF
    raw, slash, mask_text = text.partition("/")
    value = _int(raw)
    mask = _int(mask_text) if slash else (0x1FFF if key == "vlan_vid" else 0xFFFF)
    if key == "vlan_vid" and (value > 0x1FFF or mask > 0x1FFF):
        raise ValueError(f"vlan_vid {text} out of range")
    if value > 0xFFFF or mask > 0xFFFF:
        raise ValueError(f"vlan_tci {text} out of range")
    value &= mask
    if mask & 0xE000:
        # PCP matched: only "no VLAN" (present bit required 0, PCP 0) is modelled.
        if mask & 0x1000 and not value & 0x1000 and not value & 0xE000:
            mask &= 0x1FFF
        else:
            raise _Unsupported(f"vlan PCP match {key}={text}")
    if mask & 0x1000 and not value & 0x1000:
        return 0, 0x1FFF  # no VLAN: OVS matches tci == 0
    return value, mask


def _split_actions(text: str) -> list[str]:
    parts: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced ')' in actions")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError("unbalanced '(' in actions")
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()] if text.strip() else []


def _parse_actions(text: str, match: tuple[FieldMatch, ...]) -> tuple[Action, ...]:
    tokens = _split_actions(text)
    if not tokens or tokens == ["drop"]:
        return (Drop(),)
    if "drop" in tokens:
        raise ValueError('"drop" must not be accompanied by any other action')
    vlan = next((m for m in match if m.field == "vlan_tci"), None)
    has_vlan = vlan is not None and bool(vlan.mask & vlan.value & 0x1000)
    meters: list[Action] = []
    applied: list[Action] = []
    metadata: list[Action] = []
    goto: list[Action] = []
    for token in tokens:
        for action in _parse_action(token, has_vlan):
            if isinstance(action, PushVlan):
                has_vlan = True
            elif isinstance(action, PopVlan):
                has_vlan = False
            bucket = {Meter: meters, WriteMetadata: metadata, GotoTable: goto}.get(type(action), applied)
            bucket.append(action)
    if len(meters) > 1 or len(metadata) > 1 or len(goto) > 1:
        raise ValueError("an instruction (meter, write_metadata, goto_table) is given twice")
    return (*meters, *applied, *metadata, *goto)


_COLON_ACTIONS = {"output", "goto_table", "meter", "push_vlan", "mod_vlan_vid", "CONTROLLER", "controller"}


def _parse_action(token: str, has_vlan: bool) -> list[Action]:
    name, colon, arg = token.partition(":")
    paren = re.fullmatch(r"([a-z_]+)\((.*)\)", token)
    if token in ("IN_PORT", "in_port"):
        return [Output(IN_PORT)]
    if token == "LOCAL":
        return [Output(LOCAL)]
    if token in ("dec_ttl", "pop_vlan", "strip_vlan"):
        return [DecTtl() if token == "dec_ttl" else PopVlan()]
    if re.fullmatch(r"\d+", token):
        return [Output(int(token))]
    if token in ("controller", "CONTROLLER"):
        return [Controller()]
    if colon and name in (
        "output",
        "goto_table",
        "meter",
        "push_vlan",
        "mod_vlan_vid",
        "CONTROLLER",
        "controller",
    ):
        if name == "output":
            if arg in ("in_port", "IN_PORT", "LOCAL"):
                return [Output(IN_PORT if arg != "LOCAL" else LOCAL)]
            if arg == "CONTROLLER":
                return [Controller()]
            return [Output(_port_number(arg))]
        if name in ("CONTROLLER", "controller"):
            return [Controller(max_len=_int(arg))]
        if name == "goto_table":
            return [GotoTable(_int(arg))]
        if name == "meter":
            return [Meter(_int(arg))]
        if name == "push_vlan":
            if _int(arg) != 0x8100:
                raise _Unsupported(f"action {token!r} (only 802.1Q push_vlan:0x8100)")
            return [PushVlan(0x8100)]
        vid = _int(arg)
        if vid > 0xFFF:
            raise ValueError(f"mod_vlan_vid {arg} out of range")
        return [SetField("vlan_vid", vid)] if has_vlan else [PushVlan(0x8100), SetField("vlan_vid", vid)]
    if colon and name == "write_metadata":
        value_text, _, mask_text = arg.partition("/")
        mask = _int(mask_text) if mask_text else (1 << 64) - 1
        value = _int(value_text)
        if value >= 1 << 64 or mask >= 1 << 64:
            raise ValueError("write_metadata value does not fit in 64 bits")
        return [WriteMetadata(value & mask, mask)]
    if colon and name in ("mod_dl_src", "mod_dl_dst"):
        return [SetField("eth_src" if name == "mod_dl_src" else "eth_dst", _mac(arg))]
    if colon and name == "set_field":
        value_text, arrow, target = arg.partition("->")
        if not arrow:
            raise ValueError(f"set_field without '->' in {token!r}")
        target = _SIMPLE_ALIASES.get(target, target)
        if target not in SET_FIELDS or "/" in value_text:
            raise _Unsupported(f"action {token!r}")
        if target == "vlan_vid":
            v = _int(value_text)
            if not v & 0x1000 or v > 0x1FFF:
                raise ValueError(f"set_field vlan_vid needs the present bit 0x1000: {token!r}")
            return [SetField("vlan_vid", v & 0xFFF)]
        return [SetField(target, _parse_value(target, value_text)[0])]
    if paren and paren.group(1) == "ct":
        return [_parse_ct(token, paren.group(2))]
    if paren and paren.group(1) == "conjunction":
        m = re.fullmatch(r"\s*(\w+)\s*,\s*(\d+)\s*/\s*(\d+)\s*", paren.group(2))
        if not m:
            raise ValueError(f"bad conjunction {token!r}")
        cid, k, n = _int(m.group(1)), int(m.group(2)), int(m.group(3))
        if not 1 <= k <= n or not 2 <= n <= 64:
            raise ValueError(f"bad conjunction clause {k}/{n} in {token!r}")
        return [Conjunction(cid, k, n)]
    if paren and paren.group(1) == "controller":
        max_len, reason = 65535, ""
        for part in filter(None, paren.group(2).split(",")):
            key, _, val = part.partition("=")
            if key == "max_len":
                max_len = _int(val)
            elif key == "reason":
                reason = val
            else:
                raise _Unsupported(f"controller option {key!r} in {token!r}")
        return [Controller(max_len, reason)]
    raise _Unsupported(f"action {token!r}")


def _parse_ct(token: str, body: str) -> Ct:
    commit, zone, table = False, 0, None
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, eq, val = part.partition("=")
        if key == "commit" and not eq:
            commit = True
        elif key == "zone" and eq and re.fullmatch(r"\d+|0x[0-9a-fA-F]+", val):
            zone = _int(val)
            if zone > 0xFFFF:
                raise ValueError(f"ct zone {val} out of range")
        elif key == "table" and eq:
            table = _int(val)
        else:
            raise _Unsupported(f"ct option {part!r} in {token!r}")
    return Ct(commit, zone, table)


# ---------------------------------------------------------------------------- format


def format_match(match: Iterable[FieldMatch]) -> str:
    """Canonical match text, e.g. ``eth_type=0x0800,ip_proto=6,tcp_dst=80``."""
    out = []
    for term in match:
        if term.field == "eth_type" and term.mask == 0xFFFF:
            out.append(f"eth_type={term.value:#06x}")
        elif term.field == "in_port" and term.value in (IN_PORT, LOCAL):
            out.append(f"in_port={'LOCAL' if term.value == LOCAL else 'IN_PORT'}")
        elif term.field == "vlan_tci":
            out.append(f"vlan_tci={term.value:#06x}/{term.mask:#06x}")
        else:
            out.append(f"{term.field}={format_value(term.field, term.value, term.mask)}")
    return ",".join(out)


def format_action(action: Action) -> str:
    """The ``ovs-ofctl`` text of one action."""
    match action:
        case Output(port=p):
            return {IN_PORT: "IN_PORT", LOCAL: "LOCAL"}.get(p, f"output:{p}")
        case Controller(max_len=n, reason=r):
            return f"controller(reason={r},max_len={n})" if r else f"CONTROLLER:{n}"
        case Drop():
            return "drop"
        case GotoTable(table=t):
            return f"goto_table:{t}"
        case WriteMetadata(value=v, mask=m):
            return f"write_metadata:{v:#x}" + ("" if m == (1 << 64) - 1 else f"/{m:#x}")
        case SetField(field="vlan_vid", value=v):
            return f"set_field:{v | 0x1000}->vlan_vid"
        case SetField(field=f, value=v):
            return f"set_field:{format_value(f, v, _full(f))}->{f}"
        case DecTtl():
            return "dec_ttl"
        case PushVlan(ethertype=e):
            return f"push_vlan:{e:#06x}"
        case PopVlan():
            return "pop_vlan"
        case Ct(commit=c, zone=z, table=t):
            parts = (
                (["commit"] if c else [])
                + ([f"table={t}"] if t is not None else [])
                + ([f"zone={z}"] if z else [])
            )
            return f"ct({','.join(parts)})"
        case Conjunction(id=i, clause=k, n_clauses=n):
            return f"conjunction({i},{k}/{n})"
        case Meter(id=i):
            return f"meter:{i}"
    raise TypeError(f"not an action: {action!r}")


def format_flow(flow: Flow) -> str:
    """The canonical ``add-flows`` line of ``flow`` (accepted by ``ovs-ofctl -O OpenFlow13``)."""
    head = [f"table={flow.table}", f"priority={flow.priority}"]
    if flow.cookie:
        head.insert(0, f"cookie={flow.cookie:#x}")
    match = format_match(flow.match)
    actions = ",".join(format_action(a) for a in flow.actions)
    return ",".join([*head, *([match] if match else [])]) + f",actions={actions}"
