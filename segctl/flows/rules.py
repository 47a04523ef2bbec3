"""Immutable OpenFlow rules as the compiler emits them, and their ``ovs-ofctl`` text.

A :class:`Rule` is ``(table, priority, cookie, match, actions)``. The match is a tuple
of ``(field, value)`` text pairs kept in one canonical field order (:data:`MATCH_ORDER`),
so equal rules print byte-identically; actions are the typed actions of
:mod:`segctl.openflow.ofctl` (the verifier's vocabulary, nothing else). ``to_ofctl()``
gives the ``ovs-ofctl -O OpenFlow13 add-flows`` line; :func:`segctl.openflow.ofctl.parse_flow`
reads it (and the ``dump-flows`` line OVS prints for it) back to the same normalized flow.

Examples
--------
>>> from segctl.openflow.ofctl import GotoTable
>>> r = Rule(0, 100, 0x1, (("in_port", "1"), ("proto", "arp")), (GotoTable(10),))
>>> r.to_ofctl()
'table=0,priority=100,cookie=0x1,in_port=1,arp,actions=goto_table:10'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter

from segctl.errors import CompileError
from segctl.flows.pipeline import POLICY_SRC, table_by_id
from segctl.openflow.ofctl import (
    Action,
    Conjunction,
    Controller,
    Ct,
    DecTtl,
    Drop,
    Flow,
    GotoTable,
    Meter,
    Output,
    PopVlan,
    PushVlan,
    SetField,
    WriteMetadata,
    format_action,
    parse_flow,
)

__all__ = ["MATCH_ORDER", "PROTOCOLS", "Rule", "action_kind", "rules_text"]

#: Protocol shorthands a rule may use as its ``proto`` match.
PROTOCOLS = ("ip", "arp", "tcp", "udp", "icmp", "ipv6", "tcp6", "udp6", "icmp6")

#: The canonical order of match fields in rule text (``proto`` prints as a bare word).
MATCH_ORDER: tuple[str, ...] = (
    "in_port", "proto", "vlan_tci", "dl_src", "dl_dst", "metadata",
    *(f"reg{i}" for i in range(8)),
    "ct_state", "ct_zone", "conj_id",
    "nw_src", "nw_dst", "nw_ttl",
    "arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha",
    "tcp_src", "tcp_dst", "udp_src", "udp_dst", "icmp_type", "icmp_code",
    "ipv6_src", "ipv6_dst", "nd_target", "nd_sll",
)  # fmt: skip
_ORDER = {name: i for i, name in enumerate(MATCH_ORDER)}
_FIRST = itemgetter(0)
_KINDS: dict[type, str] = {
    Output: "output",
    Controller: "controller",
    Drop: "drop",
    GotoTable: "goto_table",
    WriteMetadata: "write_metadata",
    SetField: "set_field",
    DecTtl: "dec_ttl",
    PushVlan: "push_vlan",
    PopVlan: "pop_vlan",
    Ct: "ct",
    Conjunction: "conjunction",
    Meter: "meter",
}
# OpenFlow instruction order: meter, apply-actions, write-metadata, goto-table.
_INSTRUCTION_RANK = {Meter: 0, WriteMetadata: 2, GotoTable: 3}


def action_kind(action: Action) -> str:
    """The vocabulary name of an action (``output``, ``ct``, ``set_field``...)."""
    return _KINDS[type(action)]


#: (table, match field names, action types) already accepted: the checks below depend only
#: on this shape, so each distinct shape is checked once per process.
_VALID_SHAPES: set[tuple[int, tuple[str, ...], tuple[type, ...]]] = set()


def _check_shape(
    shape: tuple[int, tuple[str, ...], tuple[type, ...]], actions: tuple[Action, ...], where: str
) -> None:
    """Raise CompileError unless a rule of this shape is valid for its pipeline table."""
    table, names, _ = shape
    if len(set(names)) != len(names):
        raise CompileError(f"{where}: a field is matched twice: {list(names)}")
    unknown = [n for n in names if n not in _ORDER]
    if unknown:
        raise CompileError(f"{where}: unknown match fields {unknown}")
    if list(names) != sorted(names, key=_ORDER.__getitem__):
        raise CompileError(f"{where}: match fields out of canonical order: {list(names)}")
    kinds = {action_kind(a) for a in actions}
    if not actions:
        raise CompileError(f"{where}: no actions (write Drop() to drop)")
    if "drop" in kinds and len(actions) > 1:
        raise CompileError(f"{where}: drop cannot be combined with other actions")
    if "conjunction" in kinds and kinds != {"conjunction"}:
        raise CompileError(f"{where}: conjunction flows may carry only conjunction actions")
    if "controller" in kinds and "meter" not in kinds and table != POLICY_SRC.id:
        # policy_src's logged decisions forward too: a meter instruction would cap their
        # traffic, so the switch's controller meter (CONTROLLER_METER) caps only the copies
        raise CompileError(f"{where}: a rule that sends to the controller must carry a meter")
    ranks = [_INSTRUCTION_RANK.get(type(a), 1) for a in actions]
    if ranks != sorted(ranks):
        raise CompileError(f"{where}: actions out of instruction order (meter, actions, metadata, goto)")
    table_by_id(table).check(set(names), kinds, where)


@dataclass(frozen=True, order=True)
class Rule:
    """One flow of one switch. Construction checks it against its pipeline table."""

    table: int
    priority: int
    cookie: int
    match: tuple[tuple[str, str], ...]
    actions: tuple[Action, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.priority <= 0xFFFF or not 0 <= self.cookie < 2**64:
            raise CompileError(f"{self._where()}: priority or cookie out of range")
        shape = (self.table, tuple(map(_FIRST, self.match)), tuple(map(type, self.actions)))
        if shape not in _VALID_SHAPES:
            _check_shape(shape, self.actions, self._where())
            _VALID_SHAPES.add(shape)

    def _where(self) -> str:
        return f"rule table={self.table},priority={self.priority},cookie={self.cookie:#x}"

    @classmethod
    def make(
        cls,
        table: int,
        priority: int,
        cookie: int,
        match: Iterable[tuple[str, str]],
        actions: Iterable[Action],
    ) -> Rule:
        """Build a rule from match pairs in any order (they are put in canonical order)."""
        ordered = tuple(sorted(match, key=lambda kv: _ORDER.get(kv[0], len(_ORDER))))
        return cls(table, priority, cookie, ordered, tuple(actions))

    def match_text(self) -> str:
        """The match as ``ovs-ofctl`` text (formatted once per rule object, then cached on it)."""
        text: str | None = self.__dict__.get("_match_text")
        if text is None:
            text = ",".join(value if name == "proto" else f"{name}={value}" for name, value in self.match)
            object.__setattr__(self, "_match_text", text)  # a cache, not a field: eq/hash/order ignore it
        return text

    def actions_text(self) -> str:
        return ",".join(format_action(a) for a in self.actions)

    def to_ofctl(self) -> str:
        """The ``ovs-ofctl -O OpenFlow13 add-flows`` line of this rule."""
        head = f"table={self.table},priority={self.priority},cookie={self.cookie:#x}"
        match = self.match_text()
        return f"{head},{match + ',' if match else ''}actions={self.actions_text()}"

    def to_flow(self) -> Flow:
        """This rule as the verifier's normalized :class:`~segctl.openflow.ofctl.Flow`."""
        return parse_flow(self.to_ofctl())

    def key(self) -> tuple[int, int, tuple[tuple[str, str], ...]]:
        """What OVS identifies a flow by: table, priority and match."""
        return (self.table, self.priority, self.match)


def rules_text(rules: Iterable[Rule]) -> str:
    """One ``add-flows`` line per rule, newline-terminated."""
    return "".join(r.to_ofctl() + "\n" for r in rules)
