"""Fast OpenFlow 1.4 encoding of flow mods and bundle adds (the push fast path).

os-ken builds an object tree per flow mod (``OFPFlowMod``, ``OFPMatch``, instructions,
actions) and serialises it field by field through ``msg_pack_into``; for a
10,000-rule push that alone costs ~0.9 s of Python. This module writes the same bytes
directly:

* match fields (OXM and Nicira NXM/experimenter) with their TLV headers taken from
  os-ken's own field table once per (field, masked) and values packed with
  ``int.to_bytes``;
* instructions (meter, apply-actions, write-metadata, goto-table) packed by hand;
* actions: ``set_field`` packed by hand (its values vary per endpoint); every other
  action is serialised by os-ken once per distinct action value and cached.

:func:`flow_mod_bytes` is cached per :class:`~segctl.openflow.ofctl.Flow`, so pushing
rules that were pushed before (a switch reconnecting, a resync) costs a dictionary
lookup per rule. The output is identical, byte for byte, to os-ken's serialisation
of :func:`segctl.controller.ofswitch.flow_mod` (``tests/unit/test_wire.py`` checks it for
the whole vocabulary and every compiled example). Messages carry xid 0 here;
:func:`bundle_add_frames` writes the real xids while framing the bundle adds.

The dump path, the other way: os-ken parses every entry of a flow stats reply into an
object tree (``OFPFlowStats``, ``OFPMatch``, instructions, actions; ~40 µs an entry,
most of a live check of unchanged tables). :func:`install_raw_flow_stats` makes it
keep each entry as bytes instead (:class:`RawFlowStats`), and :func:`flows_from_dump`
turns them into flows, decoding (with os-ken and
:func:`~segctl.controller.ofswitch.flow_from_stats`) only entries not seen before:
a dump of the tables a resync just wrote costs a slice and a lookup per flow.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Iterable, Iterator, Sequence
from functools import cache, lru_cache
from typing import NamedTuple

from segctl.controller import ofswitch
from segctl.controller.framework import ProtocolDesc, ofproto_v1_4
from segctl.openflow.ofctl import (
    Action,
    Drop,
    FieldMatch,
    Flow,
    GotoTable,
    Meter,
    SetField,
    WriteMetadata,
    format_flow,
)

__all__ = [
    "CHUNK",
    "Mod",
    "RawFlowStats",
    "bundle_add_frames",
    "clear_cache",
    "delete_all_mod",
    "flow_changes",
    "flow_mod_bytes",
    "flows_from_dump",
    "install_raw_flow_stats",
    "replace_all",
    "stats_entry_bytes",
]

_OFP = ofproto_v1_4
_DP = ProtocolDesc(_OFP.OFP_VERSION)
_HEADER = struct.Struct("!BBHI")  # version, type, length, xid
_FLOW_MOD = struct.Struct(_OFP.OFP_FLOW_MOD_PACK_STR0)
_BUNDLE_ADD = struct.Struct("!BBHII2xH")  # header + bundle_id, pad, flags
_MATCH_HEAD = struct.Struct("!HH")
_INST_GOTO = struct.Struct("!HHB3x")
_INST_METADATA = struct.Struct("!HH4xQQ")
_INST_ACTIONS = struct.Struct("!HH4x")
_INST_METER = struct.Struct("!HHI")
_ACTION_HEAD = struct.Struct("!HH")
_VID_PRESENT = 0x1000
#: Bytes per write of bundle adds (one ``sendall`` each).
CHUNK = 64 * 1024


class Mod(NamedTuple):
    """One flow mod of a bundle: add ``flow``, delete it strictly, or (``flow`` None) delete all.

    Its bytes (:attr:`body`) are encoded when the bundle is framed, so encoding overlaps
    with the switch processing the chunks already sent.
    """

    flow: Flow | None
    delete: bool = False

    @property
    def body(self) -> bytes:
        """The encoded ``OFPFlowMod`` (xid 0)."""
        return _DELETE_ALL if self.flow is None else flow_mod_bytes(self.flow, self.delete)

    def describe(self) -> str:
        if self.flow is None:
            return "delete all flows"
        return ("delete " if self.delete else "add ") + format_flow(self.flow)


# ------------------------------------------------------------------------------ fields


_EXTENSION_SIZE = {name: size for name, size in ofswitch.EXTENSION_OXM.values()}


@cache
def _oxm_layout(name: str, masked: bool) -> tuple[bytes, int]:
    """The TLV header (OXM, NXM or experimenter) and value size of an os-ken field."""
    if name in _EXTENSION_SIZE:  # a 32-bit OXM header os-ken has no table entry for
        size = _EXTENSION_SIZE[name]
        num = int(name.split("_")[1])
        return struct.pack("!I", num << 9 | masked << 8 | size * (2 if masked else 1)), size
    num = _OFP.oxm_from_user_header(name)
    size = next(f.type.size for f in _OFP.oxm_types if f.name == name)
    buf = bytearray()
    zero = b"\0" * size
    length = _OFP.oxm_serialize(num, zero, zero if masked else None, buf, 0)
    return bytes(buf[: length - size * (2 if masked else 1)]), size


def _match_bytes(match: Iterable[FieldMatch]) -> bytes:
    """``ofp_match`` (type OXM) with its padding, fields in :func:`ofswitch.match_fields` order."""
    parts = []
    for term in match:
        name = ofswitch.OXM_NAME.get(term.field, term.field)
        masked = term.mask != ofswitch.full_mask(term.field)
        header, size = _oxm_layout(name, masked)
        parts.append(header)
        parts.append(term.value.to_bytes(size, "big"))
        if masked:
            parts.append(term.mask.to_bytes(size, "big"))
    fields = b"".join(parts)
    length = 4 + len(fields)
    return _MATCH_HEAD.pack(_OFP.OFPMT_OXM, length) + fields + b"\0" * (-length % 8)


# ----------------------------------------------------------------------------- actions


@lru_cache(maxsize=4096)
def _cached_action(action: Action) -> bytes:
    buf = bytearray()
    msg = ofswitch.ofp_action(_DP, action)
    msg.serialize(buf, 0)
    # OpenFlow actions are 8-byte multiples; os-ken pads a ct() with a nested nat() only
    # when it serializes the enclosing instruction, not the action alone
    return bytes(buf) + b"\0" * (-len(buf) % 8)


def _action_bytes(action: Action) -> bytes:
    if isinstance(action, SetField):
        name = ofswitch.OXM_NAME.get(action.field, action.field)
        value = action.value | _VID_PRESENT if action.field == "vlan_vid" else action.value
        header, size = _oxm_layout(name, False)
        length = 4 + len(header) + size
        pad = -length % 8
        return (
            _ACTION_HEAD.pack(_OFP.OFPAT_SET_FIELD, length + pad)
            + header
            + value.to_bytes(size, "big")
            + b"\0" * pad
        )
    return _cached_action(action)


def _instructions_bytes(actions: Sequence[Action]) -> bytes:
    """Instructions in :func:`ofswitch._instructions` order: meters, apply, metadata, goto."""
    meters: list[bytes] = []
    applied: list[bytes] = []
    metadata: list[bytes] = []
    goto: list[bytes] = []
    for action in actions:
        if isinstance(action, Drop):
            continue
        if isinstance(action, Meter):
            meters.append(_INST_METER.pack(_OFP.OFPIT_METER, 8, action.id))
        elif isinstance(action, GotoTable):
            goto.append(_INST_GOTO.pack(_OFP.OFPIT_GOTO_TABLE, 8, action.table))
        elif isinstance(action, WriteMetadata):
            metadata.insert(0, _INST_METADATA.pack(_OFP.OFPIT_WRITE_METADATA, 24, action.value, action.mask))
        else:
            applied.append(_action_bytes(action))
    out = b"".join(meters)
    if applied:
        body = b"".join(applied)
        out += _INST_ACTIONS.pack(_OFP.OFPIT_APPLY_ACTIONS, 8 + len(body)) + body
    return out + b"".join(metadata) + b"".join(goto)


# ------------------------------------------------------------------------------- flows


#: Encoded adds and strict deletes of the flows pushed so far (cleared when it grows past
#: :data:`CACHE_SIZE`; a Flow is hashed once per lookup, which an lru_cache would double).
CACHE_SIZE = 1 << 18
_adds: dict[Flow, bytes] = {}
_deletes: dict[Flow, bytes] = {}
# The same by flow object (its id, the object held so the id is not reused): hashing a
# Flow (nested dataclass tuples) costs more than encoding it, and a resync pushes the
# very objects of the desired tables again.
_adds_by_id: dict[int, tuple[Flow, bytes]] = {}
_deletes_by_id: dict[int, tuple[Flow, bytes]] = {}


def flow_mod_bytes(flow: Flow, delete: bool = False) -> bytes:
    """The OpenFlow 1.4 ``OFPFlowMod`` of ``flow`` (xid 0): an add, or a strict delete (cached).

    Raises :class:`~segctl.errors.UnsupportedFlowError` for an action outside the vocabulary.
    """
    by_id = _deletes_by_id if delete else _adds_by_id
    hit = by_id.get(id(flow))
    if hit is not None and hit[0] is flow:
        return hit[1]
    known = _deletes if delete else _adds
    body = known.get(flow)
    if body is None:
        if len(known) >= CACHE_SIZE:
            known.clear()
        body = known[flow] = _encode(flow, delete)
    if len(by_id) >= CACHE_SIZE:
        by_id.clear()
    by_id[id(flow)] = (flow, body)
    return body


def clear_cache() -> None:
    """Forget every encoded flow mod (benchmarks measure a cold push with it)."""
    _adds.clear()
    _deletes.clear()
    _adds_by_id.clear()
    _deletes_by_id.clear()


def _encode(flow: Flow, delete: bool) -> bytes:
    match = _match_bytes(flow.match)
    if delete:
        fixed = _FLOW_MOD.pack(
            0, 0, flow.table, _OFP.OFPFC_DELETE_STRICT, 0, 0, flow.priority,
            _OFP.OFP_NO_BUFFER, _OFP.OFPP_ANY, _OFP.OFPG_ANY, 0, 0,
        )  # fmt: skip
        instructions = b""
    else:
        fixed = _FLOW_MOD.pack(
            flow.cookie, 0, flow.table, _OFP.OFPFC_ADD, 0, 0, flow.priority,
            _OFP.OFP_NO_BUFFER, 0, 0, 0, 0,
        )  # fmt: skip
        instructions = _instructions_bytes(flow.actions)
    length = _HEADER.size + len(fixed) + len(match) + len(instructions)
    return _HEADER.pack(_OFP.OFP_VERSION, _OFP.OFPT_FLOW_MOD, length, 0) + fixed + match + instructions


def _delete_all_bytes() -> bytes:
    fixed = _FLOW_MOD.pack(
        0, 0, _OFP.OFPTT_ALL, _OFP.OFPFC_DELETE, 0, 0, _OFP.OFP_DEFAULT_PRIORITY,
        _OFP.OFP_NO_BUFFER, _OFP.OFPP_ANY, _OFP.OFPG_ANY, 0, 0,
    )  # fmt: skip
    match = _match_bytes(())
    length = _HEADER.size + len(fixed) + len(match)
    return _HEADER.pack(_OFP.OFP_VERSION, _OFP.OFPT_FLOW_MOD, length, 0) + fixed + match


_DELETE_ALL = _delete_all_bytes()


def delete_all_mod() -> Mod:
    """A flow mod deleting every flow of every table."""
    return Mod(None, True)


def _sorted_mods(flows: Iterable[Flow], *, delete: bool) -> list[Mod]:
    # De-duplicated (first occurrence kept), then table and priority high first; the sorts
    # are stable (reverse=True too), so a sorted input keeps its order within a priority
    # (no text formatting). Two C-level attrgetter sorts beat one Python key function.
    unique = sorted(dict.fromkeys(flows), key=_PRIORITY, reverse=True)
    unique.sort(key=_TABLE)
    return [Mod(f, delete) for f in unique]


_PRIORITY = operator.attrgetter("priority")
_TABLE = operator.attrgetter("table")


def flow_changes(*, remove: Iterable[Flow], add: Iterable[Flow]) -> list[Mod]:
    """Like :func:`ofswitch.flow_changes`: strict deletes first, then adds, de-duplicated.

    A flow in both ``remove`` and ``add`` (same table, priority and match) is modified
    in place by its add; its delete is dropped.
    """
    adds = list(dict.fromkeys(add))
    replaced = {(f.table, f.priority, f.match) for f in adds}
    deletes = [f for f in remove if (f.table, f.priority, f.match) not in replaced]
    return [*_sorted_mods(deletes, delete=True), *_sorted_mods(adds, delete=False)]


def replace_all(flows: Iterable[Flow]) -> list[Mod]:
    """Like :func:`ofswitch.replace_all`: delete every flow, then add ``flows``."""
    return [delete_all_mod(), *_sorted_mods(flows, delete=False)]


# ----------------------------------------------------------------------------- bundles


def bundle_add_frames(
    bundle_id: int, mods: Sequence[Mod], xids: Sequence[int], *, chunk: int = CHUNK
) -> Iterator[bytes]:
    """``OFPBundleAddMsg`` bytes of an atomic bundle, yielded in chunks of about ``chunk`` bytes.

    Flow mods are encoded as the chunks are produced (a sender that writes each chunk
    before asking for the next lets the switch work in parallel). Each chunk ends on a
    message boundary (other senders may write between chunks). The inner flow mod
    carries the outer message's xid (OpenFlow 1.4 §7.3.9.2).
    """
    if len(mods) != len(xids):
        raise ValueError(f"bundle {bundle_id}: {len(mods)} messages but {len(xids)} xids")
    parts: list[bytes] = []
    size = 0
    head = _BUNDLE_ADD.pack
    version, kind, atomic = _OFP.OFP_VERSION, _OFP.OFPT_BUNDLE_ADD_MESSAGE, _OFP.OFPBF_ATOMIC
    for mod, xid in zip(mods, xids, strict=True):
        body = mod.body
        parts.append(head(version, kind, 16 + len(body), xid, bundle_id, atomic))
        parts.append(body[:4])
        parts.append(xid.to_bytes(4, "big"))
        parts.append(body[8:])
        size += 16 + len(body)
        if size >= chunk:
            yield b"".join(parts)
            parts, size = [], 0
    if parts:
        yield b"".join(parts)


# ------------------------------------------------------------------------ flow dumps

_STATS_HEAD = struct.Struct(_OFP.OFP_FLOW_STATS_0_PACK_STR)
_U16 = struct.Struct("!H")
#: Flows decoded from dumps so far, by :attr:`RawFlowStats.key` (cleared past CACHE_SIZE).
_decoded: dict[bytes, Flow] = {}


class RawFlowStats:
    """One ``ofp_flow_stats`` entry of a reply, kept as bytes (os-ken's body class stand-in).

    ``key`` is what a :class:`~segctl.openflow.ofctl.Flow` is made of: table, priority,
    cookie, match and instructions (durations, counters, timeouts and flags left out).
    """

    __slots__ = ("entry", "key", "length")

    def __init__(self, entry: bytes) -> None:
        self.entry = entry
        self.length = len(entry)
        self.key = entry[2:3] + entry[12:14] + entry[24:32] + entry[_STATS_HEAD.size :]

    @classmethod
    def parser(cls, buf: bytes | bytearray, offset: int) -> RawFlowStats:
        (length,) = _U16.unpack_from(buf, offset)
        return cls(bytes(buf[offset : offset + length]))


def install_raw_flow_stats() -> None:
    """Make os-ken keep flow stats entries as :class:`RawFlowStats` (process-wide, idempotent)."""
    from segctl.controller.framework import ofproto_v1_4_parser

    ofproto_v1_4_parser.OFPFlowStatsReply.cls_stats_body_cls = RawFlowStats


def flows_from_dump(stats: Iterable[object], *, where: str = "") -> list[Flow]:
    """The flows of a dump's entries (:class:`RawFlowStats`, or os-ken ``OFPFlowStats``)."""
    from segctl.controller.framework import ofproto_v1_4_parser

    flows: list[Flow] = []
    known = _decoded
    for stat in stats:
        if not isinstance(stat, RawFlowStats):
            flows.append(ofswitch.flow_from_stats(stat, ofp=_OFP, where=where))
            continue
        flow = known.get(stat.key)
        if flow is None:
            parsed = ofproto_v1_4_parser.OFPFlowStats.parser(stat.entry, 0)
            flow = ofswitch.flow_from_stats(parsed, ofp=_OFP, where=where)
            if len(known) >= CACHE_SIZE:
                known.clear()
            known[stat.key] = flow
        flows.append(flow)
    return flows


_COUNTS = struct.Struct("!QQ")  # packet_count, byte_count: right after the cookie


def counted_flows_from_dump(stats: Iterable[object], *, where: str = "") -> list[tuple[Flow, int, int]]:
    """Like :func:`flows_from_dump`, each flow with the packet and byte counts of its entry."""
    entries = list(stats)
    counts = [
        _COUNTS.unpack_from(stat.entry, 32)
        if isinstance(stat, RawFlowStats)
        else (int(getattr(stat, "packet_count", 0)), int(getattr(stat, "byte_count", 0)))
        for stat in entries
    ]
    flows = flows_from_dump(entries, where=where)
    return [(flow, packets, nbytes) for flow, (packets, nbytes) in zip(flows, counts, strict=True)]


def stats_entry_bytes(flow: Flow) -> bytes:
    """The ``ofp_flow_stats`` entry a switch would report for ``flow`` (zero counters)."""
    body = flow_mod_bytes(flow)
    tail = body[_HEADER.size + _FLOW_MOD.size :]  # match and instructions
    length = _STATS_HEAD.size + len(tail)
    return _STATS_HEAD.pack(length, flow.table, 0, 0, flow.priority, 0, 0, 0, 0, flow.cookie, 0, 0) + tail
