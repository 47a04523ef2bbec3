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

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeAlias

from segctl.errors import FlowSyntaxError, UnsupportedFlowError
from segctl.openflow.ofmatch import (
    _CACHE_SIZE,
    _SIMPLE_ALIASES,
    CONTROLLER,
    FIELD_WIDTHS,
    IN_PORT,
    LOCAL,
    FieldMatch,
    _full,
    _int,
    _parse_value,
    _port_number,
    _Unsupported,
    format_match,
    format_value,
    mac_int,
    mac_text,
    normalize_match,
    set_field_prerequisite,
)

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
    "Nat",
    "Output",
    "PopVlan",
    "PushVlan",
    "SetField",
    "WriteMetadata",
    "format_action",
    "format_flow",
    "format_match",
    "format_nat",
    "format_value",
    "mac_int",
    "mac_text",
    "parse_flow",
    "parse_flows",
    "punts_to_controller",
]

#: Fields that ``set_field`` may write (``vlan_vid`` is the 12-bit VID). A flow that sets
#: one must match its prerequisites (:func:`~segctl.openflow.ofmatch.set_field_prerequisite`:
#: ``arp`` for ``arp_*``, ``ipv6`` for ``ipv6_*``, ``icmp``/``icmp6`` for the ICMP type and
#: code, an ND type for ``nd_*``), as OVS requires.
SET_FIELDS: dict[str, int] = {
    "eth_src": 48,
    "eth_dst": 48,
    "vlan_vid": 12,
    "arp_op": 16,
    "arp_sha": 48,
    "arp_spa": 32,
    "arp_tha": 48,
    "arp_tpa": 32,
    "ipv6_src": 128,
    "ipv6_dst": 128,
    "icmp_type": 8,
    "icmp_code": 8,
    "icmpv6_type": 8,
    "icmpv6_code": 8,
    "nd_target": 128,
    "nd_sll": 48,
    "nd_tll": 48,
    "nd_reserved": 32,
    "nd_options_type": 8,
    **{f"reg{i}": 32 for i in range(8)},
}
#: ``set_field`` targets with a prerequisite on the flow's match.
_SET_PREREQUISITES = frozenset(n for n in SET_FIELDS if n[:3] in ("arp", "ipv", "icm", "nd_"))

_STAT_KEYS = {"duration", "n_packets", "n_bytes", "idle_timeout", "hard_timeout", "idle_age", "hard_age",
              "importance", "packet_count", "byte_count"}  # fmt: skip
_FLAGS = {"reset_counts", "send_flow_rem", "check_overlap", "no_packet_counts", "no_byte_counts"}


# ----------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Output:
    """Output to a port; ``port`` may be :data:`IN_PORT` or :data:`LOCAL`."""

    port: int


@dataclass(frozen=True)
class Controller:
    """Send to the controller (``controller(...)``, ``CONTROLLER:N``)."""

    max_len: int = 65535
    reason: str = ""


def punts_to_controller(actions: Sequence[object]) -> bool:
    """Does an action list hand the packet to the controller instead of forwarding it?

    ``controller`` next to an ``output`` or ``goto_table`` sends a copy (a logged
    decision) while the packet goes on; alone it is where the packet ends.

    >>> punts_to_controller([Controller()]), punts_to_controller([Controller(128), GotoTable(40)])
    (True, False)
    """
    return any(isinstance(a, Controller) for a in actions) and not any(
        isinstance(a, Output | GotoTable) for a in actions
    )


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
class Nat:
    """The ``nat(...)`` of a ``ct()`` action (ovs-actions(7)).

    ``kind`` ``"src"`` or ``"dst"`` with an address range (``low``..``high``, IPv4 or IPv6,
    as integers of ``family``) and an optional port range sets up a translation when the
    ``ct()`` commits a new connection; plain ``nat`` (``kind`` None) only applies the
    translation an existing connection already has (forward packets translated, replies
    translated back). ``flags``: ``random``, ``hash``, ``persistent`` (port selection;
    they do not change which packets are translated).
    """

    kind: str | None = None
    family: int = 4
    low: int = 0
    high: int = 0
    port_low: int | None = None
    port_high: int | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ct:
    """Send through conntrack in ``zone``; ``table`` recirculates the packet there;
    ``nat`` translates addresses (see :class:`Nat`)."""

    commit: bool = False
    zone: int = 0
    table: int | None = None
    nat: Nat | None = None


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

    def __hash__(self) -> int:
        # Flows are dict keys and set members everywhere (diffs, encodings, views); hashing
        # the nested match/action tuples each time was a visible cost of a 10,000-rule push.
        cached: int | None = self.__dict__.get("_hash")
        if cached is None:
            cached = hash((self.table, self.priority, self.cookie, self.match, self.actions))
            object.__setattr__(self, "_hash", cached)
        return cached

    def __getstate__(self) -> dict[str, object]:
        # str hashes differ between processes: never carry the cached hash along.
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    def get(self, name: str) -> FieldMatch | None:
        """The match term on ``name``, or None when the field is wildcarded."""
        return next((m for m in self.match if m.field == name), None)

    @property
    def match_text(self) -> str:
        return format_match(self.match)

    @property
    def actions_text(self) -> str:
        return ",".join(format_action(a) for a in self.actions)


# ----------------------------------------------------------------------------- parse


_REPLY_HEADERS = ("NXST_FLOW reply", "OFPST_FLOW reply")
_HEAD_SEPARATORS = re.compile(r"[,\s]+")
_PAREN_ACTION = re.compile(r"([a-z_]+)\((.*)\)")
_DIGITS = re.compile(r"\d+")
_CONJUNCTION_ARGS = re.compile(r"\s*(\w+)\s*,\s*(\d+)\s*/\s*(\d+)\s*")
_CT_ZONE = re.compile(r"\d+|0x[0-9a-fA-F]+")


def parse_flows(text: str | Iterable[str], *, source: str = "") -> list[Flow]:
    """Parse every flow of an ``add-flows`` file or a ``dump-flows`` output.

    Blank lines, ``#`` comments and ``*ST_FLOW reply`` headers are skipped. ``source``
    (a file name or a switch) prefixes error messages.
    """
    lines = text.splitlines() if isinstance(text, str) else list(text)
    flows: list[Flow] = []
    append = flows.append
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped[0] == "#" or stripped.startswith(_REPLY_HEADERS):
            continue
        append(parse_flow(stripped, line=number, source=source))
    return flows


def parse_flow(text: str, *, line: int = 0, source: str = "") -> Flow:
    """Parse one flow line. Raises :class:`FlowSyntaxError` or :class:`UnsupportedFlowError`."""
    try:
        return _parse(text.strip(), line)
    except _Unsupported as exc:
        raise UnsupportedFlowError(
            f"{_where(source, line)}: {exc} (not modelled by the verifier) in: {text.strip()}"
        ) from None
    except (ValueError, KeyError) as exc:
        raise FlowSyntaxError(f"{_where(source, line)}: {exc} in: {text.strip()}") from None


def _where(source: str, line: int) -> str:
    return f"{source + ':' if source else ''}{line or '?'}"


def _parse(text: str, line: int) -> Flow:
    head, sep, actions_text = text.partition("actions=")
    if not sep:
        raise ValueError("no actions= part")
    head = head.strip().rstrip(",")
    # Without whitespace (every compiled line) a plain split gives the same tokens as the regex.
    tokens = head.split(",") if " " not in head and head.isprintable() else _HEAD_SEPARATORS.split(head)
    table, priority, cookie = 0, 32768, 0
    raw: list[tuple[str, str | None]] = []
    for token in tokens:
        if not token:
            continue
        key, eq, value = token.partition("=")
        if not eq:
            if key in _FLAGS:
                continue
            raw.append((key, None))
        elif key == "table":
            table = _number(value)
        elif key == "priority":
            priority = _number(value)
        elif key == "cookie":
            if "/" in value:
                raise ValueError("a cookie mask belongs to a flow filter, not a flow")
            cookie = _number(value)
        elif key in _STAT_KEYS:
            continue
        else:
            if not value:
                raise ValueError(f"{key}= has no value")
            raw.append((key, value))
    if not 0 <= table <= 254 or not 0 <= priority <= 65535:
        raise ValueError("table or priority out of range")
    match = normalize_match(raw)
    has_vlan = False
    for term in match:
        if term.field == "vlan_tci":
            has_vlan = bool(term.mask & term.value & 0x1000)
            break
    actions = _parse_actions(actions_text.strip(), has_vlan)
    for action in actions:
        if isinstance(action, SetField) and action.field in _SET_PREREQUISITES:
            need = set_field_prerequisite(action.field, match)
            if need is not None:
                raise ValueError(f"set_field {action.field} needs a match on {need} (prerequisites not met)")
        if isinstance(action, Ct) and action.nat is not None:
            _check_nat_prerequisite(action.nat, match)
    return Flow(table, priority, cookie, match, actions, line=line, text=text)


def _check_nat_prerequisite(nat: Nat, match: Sequence[FieldMatch]) -> None:
    """OVS refuses ``ct(nat)`` unless the match pins IPv4 or IPv6 (of the range's family)."""
    eth_type = next((t.value for t in match if t.field == "eth_type"), None)
    families = {0x0800: 4, 0x86DD: 6}
    if eth_type not in families or (nat.kind is not None and families[eth_type] != nat.family):
        need = "ipv6" if nat.kind is not None and nat.family == 6 else "ip" if nat.kind else "ip or ipv6"
        raise ValueError(f"ct(nat) needs a match on {need} (prerequisites not met)")


@lru_cache(maxsize=_CACHE_SIZE)
def _number(text: str) -> int:
    """:func:`_int`, memoized for the table, priority and cookie of every line."""
    return _int(text)


def _split_actions(text: str) -> list[str]:
    if "(" not in text and ")" not in text:  # no nesting: every comma separates
        return [p.strip() for p in text.split(",") if p.strip()] if text.strip() else []
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


@lru_cache(maxsize=_CACHE_SIZE)
def _parse_actions(text: str, has_vlan: bool) -> tuple[Action, ...]:
    """The ordered actions of ``actions=`` text; ``has_vlan``: the match requires a VLAN tag.

    Memoized: action texts such as ``goto_table:50`` repeat tens of thousands of times and
    actions are immutable, so equal texts share one tuple. Errors are never cached.
    """
    tokens = _split_actions(text)
    if not tokens or tokens == ["drop"]:
        return (Drop(),)
    if "drop" in tokens:
        raise ValueError('"drop" must not be accompanied by any other action')
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
    paren = _PAREN_ACTION.fullmatch(token)
    if token in ("IN_PORT", "in_port"):
        return [Output(IN_PORT)]
    if token == "LOCAL":
        return [Output(LOCAL)]
    if token in ("dec_ttl", "pop_vlan", "strip_vlan"):
        return [DecTtl() if token == "dec_ttl" else PopVlan()]
    if _DIGITS.fullmatch(token):
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
        return [SetField("eth_src" if name == "mod_dl_src" else "eth_dst", mac_int(arg))]
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
        m = _CONJUNCTION_ARGS.fullmatch(paren.group(2))
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
    commit, zone, table, nat = False, 0, None, None
    for part in filter(None, (p.strip() for p in _split_actions(body))):
        key, eq, val = part.partition("=")
        if part == "nat" or part.startswith("nat("):
            if nat is not None:
                raise ValueError(f"two nat options in {token!r}")
            nat = _parse_nat(token, part[4:-1] if part.endswith(")") and part != "nat" else "")
        elif key == "commit" and not eq:
            commit = True
        elif key == "zone" and eq and _CT_ZONE.fullmatch(val):
            zone = _int(val)
            if zone > 0xFFFF:
                raise ValueError(f"ct zone {val} out of range")
        elif key == "table" and eq:
            table = _int(val)
        else:
            raise _Unsupported(f"ct option {part!r} in {token!r}")
    if nat is not None and nat.kind is not None and not commit:
        # OVS: "Flow actions may not specify NAT without commit" for src/dst translations.
        raise ValueError(f"nat(src=...) or nat(dst=...) needs commit in {token!r}")
    return Ct(commit, zone, table, nat)


_NAT_FLAGS = ("persistent", "hash", "random")  # the order OVS prints them
_NAT_RANGE = re.compile(
    r"(?P<low>\[[0-9a-fA-F:.]+\]|[0-9.]+)(?:-(?P<high>\[[0-9a-fA-F:.]+\]|[0-9.]+))?"
    r"(?::(?P<plow>\d+)(?:-(?P<phigh>\d+))?)?"
)


def _parse_nat(token: str, body: str) -> Nat:
    """``nat`` or ``nat(src|dst=A[-B][:P[-Q]][,flags])``; IPv6 addresses in brackets when a
    port range follows (OVS prints them bare otherwise; both forms parse)."""
    if not body:
        return Nat()
    kind, flags, found = None, set(), None
    for part in (p.strip() for p in body.split(",")):
        key, eq, val = part.partition("=")
        if key in ("src", "dst") and eq and kind is None:
            if val.count(":") > 1 and "[" not in val:  # IPv6 without ports: OVS prints no brackets
                val = "-".join(f"[{a}]" for a in val.split("-"))
            kind, found = key, _NAT_RANGE.fullmatch(val)
            if found is None:
                raise ValueError(f"bad nat address range {val!r} in {token!r}")
        elif part in _NAT_FLAGS and not eq:
            flags.add(part)
        else:
            raise ValueError(f"bad nat option {part!r} in {token!r}")
    if kind is None or found is None:
        raise ValueError(f"nat flags without src= or dst= in {token!r}")
    if {"hash", "random"} <= flags:
        raise ValueError(f"nat takes one of hash and random in {token!r}")
    low_text, high_text = found.group("low"), found.group("high") or found.group("low")
    family = 6 if low_text.startswith("[") else 4
    if high_text.startswith("[") != (family == 6):
        raise ValueError(f"nat address range mixes IPv4 and IPv6 in {token!r}")
    field = "ipv6_src" if family == 6 else "ip_src"
    low, high = (_parse_value(field, t.strip("[]"))[0] for t in (low_text, high_text))
    plow = None if found.group("plow") is None else int(found.group("plow"))
    phigh = plow if found.group("phigh") is None else int(found.group("phigh"))
    if low > high or (plow is not None and (phigh is None or not 0 < plow <= phigh <= 0xFFFF)):
        raise ValueError(f"bad nat range in {token!r}")
    return Nat(kind, family, low, high, plow, phigh, tuple(f for f in _NAT_FLAGS if f in flags))


def format_nat(nat: Nat) -> str:
    """The ``nat(...)`` text of ``nat``, as ``ovs-ofctl`` prints it."""
    if nat.kind is None:
        return "nat"
    field = "ipv6_src" if nat.family == 6 else "ip_src"

    def address(value: int) -> str:  # OVS brackets IPv6 addresses only before a port range
        text = format_value(field, value, _full(field))
        return f"[{text}]" if nat.family == 6 and nat.port_low is not None else text

    text = address(nat.low) + ("" if nat.high == nat.low else "-" + address(nat.high))
    if nat.port_low is not None:
        text += f":{nat.port_low}" + ("" if nat.port_high == nat.port_low else f"-{nat.port_high}")
    return f"nat({nat.kind}={text}{''.join(',' + f for f in nat.flags)})"


# ---------------------------------------------------------------------------- format


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
        case Ct(commit=c, zone=z, table=t, nat=n):
            parts = (
                (["commit"] if c else [])
                + ([f"table={t}"] if t is not None else [])
                + ([f"zone={z}"] if z else [])
                + ([format_nat(n)] if n is not None else [])
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
