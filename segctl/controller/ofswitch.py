"""Pure conversions between parsed flows and os-ken OpenFlow 1.4 messages.

These functions build messages and never send them (Faucet style): the one sender
is :meth:`segctl.controller.app.SegctlApp._send`. ``dp`` is an os-ken ``Datapath``
(only its ``ofproto`` and ``ofproto_parser`` are used, so a stand-in works in tests).

* :func:`flow_mod` turns a :class:`~segctl.openflow.ofctl.Flow` into an ``OFPFlowMod``
  (add with exact table/priority/cookie/match, or a strict delete); OXM and Nicira
  fields, ``NXActionCT``, ``NXActionConjunction`` (0-based clause on the wire),
  ``OFPActionDecNwTtl``, and meters as ``OFPInstructionMeter``.
* :func:`flow_from_stats` turns an ``OFPFlowStats`` entry back into a ``Flow``, so a
  live dump compares equal to the desired rules and can be verified.
* :func:`flow_changes`, :func:`replace_all`, :func:`drop_all` order and de-duplicate
  flow mods for one bundle; :func:`bundle_ctrl`/:func:`bundle_add` wrap them.
* :func:`meter_mod`, :func:`meter_from_config` do the same for meters.
* :func:`packet_out` sends one frame the controller built out of a port.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from segctl.controller.framework import nicira_ext, ofctl_exception
from segctl.controller.southbound import SwitchMeter
from segctl.errors import UnsupportedFlowError
from segctl.openflow.ofctl import (
    FIELD_WIDTHS,
    Action,
    Conjunction,
    Controller,
    Ct,
    DecTtl,
    Drop,
    FieldMatch,
    Flow,
    GotoTable,
    Meter,
    Nat,
    Output,
    PopVlan,
    PushVlan,
    SetField,
    WriteMetadata,
    format_flow,
    mac_int,
    mac_text,
)

__all__ = [
    "OFCTL_ERRORS",
    "barrier",
    "bundle_add",
    "bundle_ctrl",
    "describe_error",
    "drop_all",
    "flow_changes",
    "flow_from_stats",
    "flow_mod",
    "flow_stats_request",
    "match_fields",
    "match_from_oxm",
    "meter_config_request",
    "meter_delete",
    "meter_from_config",
    "meter_mod",
    "next_bundle_id",
    "ofp_match",
    "packet_out",
    "replace_all",
    "reply_class",
]

#: Exceptions that ``ofctl_api.send_msg`` raises for a refused message or a lost switch.
OFCTL_ERRORS: tuple[type[BaseException], ...] = (
    ofctl_exception.OFError,
    ofctl_exception.InvalidDatapath,
    ofctl_exception.InvalidMessage,
    ofctl_exception.UnexpectedMultiReply,
)

#: OVS's neighbour-advertisement fields os-ken has no name for: OXM class 0x1000 (Ericsson),
#: fields 1 and 2, as os-ken names an unknown OXM (``field_<class << 7 | field>``), and
#: their value sizes. OVS writes the advertisement's flags and option type with them.
EXTENSION_OXM = {"nd_reserved": ("field_524289", 4), "nd_options_type": ("field_524290", 1)}

#: segctl field name -> os-ken OXM/NXM field name.
_OXM_NAME = {
    "ip_src": "ipv4_src",
    "ip_dst": "ipv4_dst",
    "icmp_type": "icmpv4_type",
    "icmp_code": "icmpv4_code",
    "nd_target": "ipv6_nd_target",
    "nd_sll": "ipv6_nd_sll",
    "nd_tll": "ipv6_nd_tll",
    "vlan_tci": "vlan_vid",
    **{field: name for field, (name, _) in EXTENSION_OXM.items()},
}
_FIELD_NAME = {v: k for k, v in _OXM_NAME.items()}
OXM_NAME = _OXM_NAME  # for segctl.controller.wire
_MAC_FIELDS = {"eth_src", "eth_dst", "arp_sha", "arp_tha", "nd_sll", "nd_tll"}
_IP4_FIELDS = {"ip_src", "ip_dst", "arp_spa", "arp_tpa"}
_IP6_FIELDS = {"ipv6_src", "ipv6_dst", "nd_target"}
_OFPVID_PRESENT = 0x1000
_bundle_ids = itertools.count(1)


# ------------------------------------------------------------------------------ values


def _full(name: str) -> int:
    return (1 << FIELD_WIDTHS[name]) - 1 if name in FIELD_WIDTHS else (1 << 48) - 1


full_mask = _full  # for segctl.controller.wire


def _to_oxm_value(name: str, value: int) -> Any:
    if name in EXTENSION_OXM:  # os-ken takes an unknown field's value as base64 text
        return base64.b64encode(value.to_bytes(EXTENSION_OXM[name][1], "big")).decode("ascii")
    if name in _MAC_FIELDS:
        return mac_text(value)
    if name in _IP4_FIELDS:
        return str(ipaddress.IPv4Address(value))
    if name in _IP6_FIELDS:
        return str(ipaddress.IPv6Address(value))
    return value


def _from_oxm_value(name: str, value: Any) -> int:
    if isinstance(value, int):
        return value
    if name in EXTENSION_OXM and isinstance(value, str):
        return int.from_bytes(base64.b64decode(value), "big")
    if name in _MAC_FIELDS:
        return mac_int(str(value))
    if name in _IP4_FIELDS or name in _IP6_FIELDS:
        return int(ipaddress.ip_address(value))
    raise UnsupportedFlowError(f"match field {name}: cannot read value {value!r}")


def match_fields(match: Iterable[FieldMatch]) -> list[tuple[str, Any]]:
    """``OFPMatch`` fields for normalized match terms, in a prerequisite-safe order.

    The terms keep :data:`FIELD_WIDTHS` order (``eth_type`` before ``ip_proto`` before
    the L3/L4 fields). os-ken's own sort by OXM class would put Nicira fields such as
    ``nw_ttl`` before ``eth_type``, which OVS rejects (bad prerequisite).
    """
    out: list[tuple[str, Any]] = []
    for term in match:
        name = _OXM_NAME.get(term.field, term.field)
        value = _to_oxm_value(term.field, term.value)
        if term.mask == _full(term.field):
            out.append((name, value))
        else:
            out.append((name, (value, _to_oxm_value(term.field, term.mask))))
    return out


def ofp_match(dp: Any, match: Iterable[FieldMatch]) -> Any:
    """An ``OFPMatch`` for normalized match terms."""
    return dp.ofproto_parser.OFPMatch(_ordered_fields=match_fields(match))


def match_from_oxm(items: Iterable[tuple[str, Any]]) -> tuple[FieldMatch, ...]:
    """Normalized match terms from ``OFPMatch.items()`` (the inverse of :func:`match_fields`)."""
    terms: list[FieldMatch] = []
    for oxm_name, raw in items:
        name = _FIELD_NAME.get(oxm_name, oxm_name)
        if name not in FIELD_WIDTHS:
            raise UnsupportedFlowError(f"match field {oxm_name} is not modelled")
        full = _full(name)
        if isinstance(raw, tuple):
            value, mask = _from_oxm_value(name, raw[0]), _from_oxm_value(name, raw[1])
        else:
            value, mask = _from_oxm_value(name, raw), full
        if name == "vlan_tci":
            mask &= 0x1FFF
            mask = 0x1FFF if mask == 0x1FFF else mask
        mask &= full
        if mask:
            terms.append(FieldMatch(name, value & mask, mask))
    order = list(FIELD_WIDTHS)
    return tuple(sorted(terms, key=lambda t: order.index(t.field)))


# ------------------------------------------------------------------------------- flows


def _instructions(dp: Any, actions: Sequence[Action]) -> list[Any]:
    ofp, parser = dp.ofproto, dp.ofproto_parser
    meters: list[Any] = []
    applied: list[Any] = []
    tail: list[Any] = []
    for action in actions:
        match action:
            case Drop():
                pass
            case Meter(id=meter_id):
                meters.append(parser.OFPInstructionMeter(meter_id, ofp.OFPIT_METER))
            case GotoTable(table=table):
                tail.append(parser.OFPInstructionGotoTable(table))
            case WriteMetadata(value=value, mask=mask):
                tail.insert(0, parser.OFPInstructionWriteMetadata(value, mask))
            case _:
                applied.append(_action(dp, action))
    apply = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, applied)] if applied else []
    return [*meters, *apply, *tail]


def _action(dp: Any, action: Action) -> Any:
    ofp, parser = dp.ofproto, dp.ofproto_parser
    match action:
        case Output(port=port):
            return parser.OFPActionOutput(port, 0)
        case Controller(max_len=max_len, reason=""):
            return parser.OFPActionOutput(ofp.OFPP_CONTROLLER, max_len)
        case SetField(field="vlan_vid", value=vid):
            return parser.OFPActionSetField(vlan_vid=vid | _OFPVID_PRESENT)
        case SetField(field=name, value=value):
            return parser.OFPActionSetField(**{_OXM_NAME.get(name, name): _to_oxm_value(name, value)})
        case DecTtl():
            return parser.OFPActionDecNwTtl()
        case PushVlan(ethertype=ethertype):
            return parser.OFPActionPushVlan(ethertype)
        case PopVlan():
            return parser.OFPActionPopVlan()
        case Ct(commit=commit, zone=zone, table=table, nat=nat):
            return parser.NXActionCT(
                flags=nicira_ext.NX_CT_F_COMMIT if commit else 0,
                zone_src="",
                zone_ofs_nbits=zone,
                recirc_table=nicira_ext.NX_CT_RECIRC_NONE if table is None else table,
                alg=0,
                actions=[] if nat is None else [_nat_action(parser, nat)],
            )
        case Conjunction(id=conj_id, clause=clause, n_clauses=n):
            return parser.NXActionConjunction(clause - 1, n, conj_id)
    raise UnsupportedFlowError(f"action {action!r} cannot be sent to a switch")


ofp_action = _action  # for segctl.controller.wire (one os-ken action object)

#: ``nx_nat_flags`` of OVS's NXAST_NAT (os-ken names the action, not its flags).
_NAT_SRC, _NAT_DST = 1 << 0, 1 << 1
_NAT_FLAG_BITS = {"persistent": 1 << 2, "hash": 1 << 3, "random": 1 << 4}


def _nat_action(parser: Any, nat: Nat) -> Any:
    """The NXActionNAT inside an NXActionCT (an address minimum is sent alone when it is the
    maximum, as ``ovs-ofctl`` does; ports always go as a pair)."""
    flags = sum(_NAT_FLAG_BITS[f] for f in nat.flags)
    if nat.kind is None:
        return parser.NXActionNAT(flags)
    flags |= _NAT_SRC if nat.kind == "src" else _NAT_DST
    address = ipaddress.IPv4Address if nat.family == 4 else ipaddress.IPv6Address
    prefix = "range_ipv4" if nat.family == 4 else "range_ipv6"
    kwargs: dict[str, Any] = {f"{prefix}_min": str(address(nat.low))}
    if nat.high != nat.low:
        kwargs[f"{prefix}_max"] = str(address(nat.high))
    if nat.port_low is not None:  # OVS refuses a port minimum without its maximum
        kwargs["range_proto_min"] = nat.port_low
        kwargs["range_proto_max"] = nat.port_low if nat.port_high is None else nat.port_high
    return parser.NXActionNAT(flags, **kwargs)


def _nat_from(action: Any, where: str) -> Nat:
    """The :class:`Nat` of a dumped NXActionNAT."""
    flags = action.flags
    names = tuple(f for f, bit in _NAT_FLAG_BITS.items() if flags & bit)
    kind = "src" if flags & _NAT_SRC else "dst" if flags & _NAT_DST else None
    if (flags & _NAT_SRC and flags & _NAT_DST) or (kind is None and names):
        raise UnsupportedFlowError(f"{where}: nat flags {flags:#x} are not modelled")
    if kind is None:
        return Nat()
    v4 = action.range_ipv4_min or action.range_ipv4_max
    low_text = (action.range_ipv4_min if v4 else action.range_ipv6_min) or ""
    high_text = (action.range_ipv4_max if v4 else action.range_ipv6_max) or low_text
    if not low_text:
        raise UnsupportedFlowError(f"{where}: nat({kind}) without an address range is not modelled")
    low, high = int(ipaddress.ip_address(low_text)), int(ipaddress.ip_address(high_text))
    plow = action.range_proto_min
    phigh = action.range_proto_max if action.range_proto_max is not None else plow
    return Nat(kind, 4 if v4 else 6, low, high, plow, phigh if plow is not None else None, names)


def flow_mod(dp: Any, flow: Flow, *, delete: bool = False) -> Any:
    """An ``OFPFlowMod`` adding ``flow``, or deleting it strictly (table, priority, match)."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    match = ofp_match(dp, flow.match)
    if delete:
        return parser.OFPFlowMod(
            dp,
            table_id=flow.table,
            command=ofp.OFPFC_DELETE_STRICT,
            priority=flow.priority,
            out_port=ofp.OFPP_ANY,
            out_group=ofp.OFPG_ANY,
            match=match,
        )
    return parser.OFPFlowMod(
        dp,
        cookie=flow.cookie,
        table_id=flow.table,
        command=ofp.OFPFC_ADD,
        priority=flow.priority,
        buffer_id=ofp.OFP_NO_BUFFER,
        match=match,
        instructions=_instructions(dp, flow.actions),
    )


def _delete_all(dp: Any) -> Any:
    ofp, parser = dp.ofproto, dp.ofproto_parser
    return parser.OFPFlowMod(
        dp,
        table_id=ofp.OFPTT_ALL,
        command=ofp.OFPFC_DELETE,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        match=parser.OFPMatch(),
    )


def _key(flow: Flow) -> tuple[int, int, str]:
    return (flow.table, -flow.priority, format_flow(flow))


def flow_changes(dp: Any, *, remove: Iterable[Flow], add: Iterable[Flow]) -> list[Any]:
    """Flow mods for one bundle: strict deletes first, then adds; both de-duplicated.

    A flow in both ``remove`` and ``add`` is a modification of its actions or cookie
    (same table, priority and match): its delete is dropped, the add replaces it.
    """
    adds = sorted(set(add), key=_key)
    replaced = {(f.table, f.priority, f.match) for f in adds}
    deletes = sorted({f for f in remove if (f.table, f.priority, f.match) not in replaced}, key=_key)
    return [*(flow_mod(dp, f, delete=True) for f in deletes), *(flow_mod(dp, f) for f in adds)]


def replace_all(dp: Any, flows: Iterable[Flow]) -> list[Any]:
    """Flow mods that make the switch hold exactly ``flows``: delete all, then add."""
    return [_delete_all(dp), *(flow_mod(dp, f) for f in sorted(set(flows), key=_key))]


def drop_all(dp: Any) -> list[Any]:
    """Flow mods for a switch that the intent does not know: one priority-0 drop rule."""
    return replace_all(dp, [Flow(table=0, priority=0, cookie=0, match=(), actions=(Drop(),))])


def _actions_from(instructions: Sequence[Any], ofp: Any, where: str) -> tuple[Action, ...]:
    meters: list[Action] = []
    applied: list[Action] = []
    metadata: list[Action] = []
    goto: list[Action] = []
    for inst in instructions:
        kind = type(inst).__name__
        if kind == "OFPInstructionMeter":
            meters.append(Meter(inst.meter_id))
        elif kind == "OFPInstructionGotoTable":
            goto.append(GotoTable(inst.table_id))
        elif kind == "OFPInstructionWriteMetadata":
            metadata.append(WriteMetadata(inst.metadata, inst.metadata_mask))
        elif kind == "OFPInstructionActions" and inst.type == ofp.OFPIT_APPLY_ACTIONS:
            applied.extend(_action_from(a, ofp, where) for a in inst.actions)
        else:
            raise UnsupportedFlowError(f"{where}: instruction {inst} is not modelled")
    actions = (*meters, *applied, *metadata, *goto)
    return actions or (Drop(),)


def _action_from(action: Any, ofp: Any, where: str) -> Action:
    kind = type(action).__name__
    if kind == "OFPActionOutput":
        if action.port == ofp.OFPP_CONTROLLER:
            return Controller(max_len=action.max_len)
        return Output(action.port)
    if kind == "OFPActionSetField":
        name = _FIELD_NAME.get(action.key, action.key)
        if action.key == "vlan_vid":
            return SetField("vlan_vid", action.value & 0xFFF)
        return SetField(name, _from_oxm_value(name, action.value))
    if kind == "OFPActionDecNwTtl":
        return DecTtl()
    if kind == "OFPActionPushVlan":
        return PushVlan(action.ethertype)
    if kind == "OFPActionPopVlan":
        return PopVlan()
    nested = list(getattr(action, "actions", None) or [])
    if kind == "NXActionCT" and not action.zone_src and not action.alg and len(nested) <= 1:
        table = None if action.recirc_table == nicira_ext.NX_CT_RECIRC_NONE else action.recirc_table
        nat = None
        if nested:
            if type(nested[0]).__name__ != "NXActionNAT":
                raise UnsupportedFlowError(f"{where}: action {action} is not modelled")
            nat = _nat_from(nested[0], where)
        return Ct(bool(action.flags & nicira_ext.NX_CT_F_COMMIT), action.zone_ofs_nbits, table, nat)
    if kind == "NXActionConjunction":
        return Conjunction(action.id, action.clause + 1, action.n_clauses)
    raise UnsupportedFlowError(f"{where}: action {action} is not modelled")


def flow_from_stats(stat: Any, *, ofp: Any, where: str = "") -> Flow:
    """A ``Flow`` (without statistics) from one ``OFPFlowStats`` entry of a dump."""
    match = match_from_oxm(stat.match.items())
    actions = _actions_from(stat.instructions, ofp, where or f"table {stat.table_id}")
    flow = Flow(stat.table_id, stat.priority, stat.cookie, match, actions)
    return Flow(flow.table, flow.priority, flow.cookie, flow.match, flow.actions, text=format_flow(flow))


def flow_stats_request(dp: Any) -> Any:
    """A request for every flow of every table."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    return parser.OFPFlowStatsRequest(
        dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0, parser.OFPMatch()
    )


# ------------------------------------------------------------------------------- ports


def port_desc_request(dp: Any) -> Any:
    """A request for the description (number, config, state) of every port."""
    return dp.ofproto_parser.OFPPortDescStatsRequest(dp, 0)


def port_is_up(port: Any, *, ofp: Any) -> bool:
    """Whether an ``OFPPort`` (port status or port description) is up: neither ``LINK_DOWN``
    in its state nor ``PORT_DOWN`` in its config."""
    return not (port.state & ofp.OFPPS_LINK_DOWN) and not (port.config & ofp.OFPPC_PORT_DOWN)


def packet_out(dp: Any, port: int, frame: bytes) -> Any:
    """An ``OFPPacketOut`` sending ``frame`` out of ``port``: from the controller
    (``in_port=CONTROLLER``), no buffer, one ``output:port`` action (past the flow tables)."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    return parser.OFPPacketOut(
        dp,
        buffer_id=ofp.OFP_NO_BUFFER,
        in_port=ofp.OFPP_CONTROLLER,
        actions=[parser.OFPActionOutput(port, 0)],
        data=bytes(frame),
    )


# ------------------------------------------------------------------------------ meters


def meter_mod(dp: Any, meter: SwitchMeter, *, modify: bool = False) -> Any:
    """An ``OFPMeterMod`` adding (or modifying) ``meter`` with one drop band (counters on)."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    flags = (ofp.OFPMF_PKTPS if meter.unit == "pktps" else ofp.OFPMF_KBPS) | ofp.OFPMF_STATS
    if meter.burst is not None:
        flags |= ofp.OFPMF_BURST
    band = parser.OFPMeterBandDrop(rate=meter.rate, burst_size=meter.burst or 0)
    return parser.OFPMeterMod(
        dp,
        command=ofp.OFPMC_MODIFY if modify else ofp.OFPMC_ADD,
        flags=flags,
        meter_id=meter.meter_id,
        bands=[band],
    )


def meter_delete(dp: Any, meter_id: int) -> Any:
    """An ``OFPMeterMod`` deleting one meter (OVS also removes the flows that use it)."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    return parser.OFPMeterMod(dp, command=ofp.OFPMC_DELETE, flags=0, meter_id=meter_id, bands=[])


def meter_config_request(dp: Any) -> Any:
    """A request for the configuration of every meter."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    return parser.OFPMeterConfigStatsRequest(dp, 0, ofp.OFPM_ALL)


def meter_from_config(config: Any, *, ofp: Any) -> SwitchMeter:
    """A :class:`SwitchMeter` from one ``OFPMeterConfigStats`` entry."""
    if len(config.bands) != 1 or type(config.bands[0]).__name__ != "OFPMeterBandDrop":
        raise UnsupportedFlowError(f"meter {config.meter_id}: only one drop band is modelled")
    band = config.bands[0]
    burst = band.burst_size if config.flags & ofp.OFPMF_BURST else None
    if config.flags & ofp.OFPMF_PKTPS:
        return SwitchMeter(config.meter_id, "pktps", band.rate, burst)
    return SwitchMeter(config.meter_id, "kbps", band.rate, burst)


# ----------------------------------------------------------------------------- bundles


def next_bundle_id() -> int:
    """A fresh bundle id for this process."""
    return next(_bundle_ids) & 0xFFFFFFFF


def bundle_ctrl(dp: Any, bundle_id: int, request: str) -> Any:
    """An atomic ``OFPBundleCtrlMsg``; ``request`` is open, commit or discard."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    type_ = {
        "open": ofp.OFPBCT_OPEN_REQUEST,
        "commit": ofp.OFPBCT_COMMIT_REQUEST,
        "discard": ofp.OFPBCT_DISCARD_REQUEST,
    }[request]
    return parser.OFPBundleCtrlMsg(dp, bundle_id, type_, ofp.OFPBF_ATOMIC, [])


def bundle_add(dp: Any, bundle_id: int, msg: Any) -> Any:
    """Wrap one flow mod into an ``OFPBundleAddMsg`` of an atomic bundle."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    return parser.OFPBundleAddMsg(dp, bundle_id, ofp.OFPBF_ATOMIC, msg, [])


def barrier(dp: Any) -> Any:
    """A barrier request."""
    return dp.ofproto_parser.OFPBarrierRequest(dp)


def reply_class(msg: Any) -> Any:
    """The reply message class that ``msg`` expects, or ``None`` (barrier only)."""
    parser = msg.datapath.ofproto_parser
    replies = {
        "OFPBundleCtrlMsg": parser.OFPBundleCtrlMsg,
        "OFPFlowStatsRequest": parser.OFPFlowStatsReply,
        "OFPMeterConfigStatsRequest": parser.OFPMeterConfigStatsReply,
        "OFPPortDescStatsRequest": parser.OFPPortDescStatsReply,
        "OFPBarrierRequest": parser.OFPBarrierReply,
    }
    return replies.get(type(msg).__name__)


def describe_error(exc: BaseException) -> str:
    """A one-line description of an ofctl exception (the switch's error type and code)."""
    result = getattr(exc, "result", None)
    if isinstance(result, list):
        parts = [f"error type {r.type} code {r.code}" for r in result if hasattr(r, "type")]
        if parts:
            return "switch refused: " + "; ".join(parts)
    if type(exc).__name__ == "InvalidDatapath":
        return "switch disconnected"
    return f"{type(exc).__name__}: {exc}"
