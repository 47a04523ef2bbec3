"""Flow <-> OpenFlow 1.4 message conversion (segctl.controller.ofswitch).

Offline: every match field and action of the vocabulary goes Flow -> OFPFlowMod ->
wire bytes -> os-ken's own parser -> OFPFlowStats -> Flow and must come back equal.
Online (real OVS): the same flows pushed by the real app in one bundle and dumped back
both through OpenFlow and through ``ovs-ofctl dump-flows`` equal what was pushed.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from support.vocabulary import VOCABULARY

from segctl.controller import ofswitch
from segctl.controller.framework import ProtocolDesc, ofproto_v1_4
from segctl.controller.southbound import SwitchMeter
from segctl.errors import UnsupportedFlowError
from segctl.openflow.ofctl import Controller, Drop, Flow, format_flow, parse_flow, parse_flows

REPO = Path(__file__).resolve().parents[2]

#: Every match field and action of the ofctl vocabulary, each at least once.


def _dp() -> ProtocolDesc:
    return ProtocolDesc(ofproto_v1_4.OFP_VERSION)


def _wire_round_trip(flow: Flow) -> Flow:
    """Flow -> OFPFlowMod -> bytes -> os-ken parser -> OFPFlowStats -> Flow."""
    dp = _dp()
    msg = ofswitch.flow_mod(dp, flow)
    msg.serialize()
    parsed = type(msg).parser(dp, dp.ofproto.OFP_VERSION, msg.msg_type, msg.msg_len, 0, msg.buf)
    stats = dp.ofproto_parser.OFPFlowStats(
        table_id=parsed.table_id,
        priority=parsed.priority,
        cookie=parsed.cookie,
        match=parsed.match,
        instructions=parsed.instructions,
    )
    return ofswitch.flow_from_stats(stats, ofp=dp.ofproto)


@pytest.mark.parametrize("line", [ln for ln in VOCABULARY.splitlines() if ln.strip()])
def test_every_vocabulary_flow_survives_the_wire(line: str) -> None:
    flow = parse_flow(line)
    back = _wire_round_trip(flow)
    assert back == flow, f"{format_flow(flow)}\n!= {format_flow(back)}"
    assert parse_flow(back.text) == flow


def test_vocabulary_covers_every_field_and_action() -> None:
    flows = parse_flows(VOCABULARY)
    fields = {m.field for f in flows for m in f.match}
    from segctl.openflow.ofctl import FIELD_WIDTHS

    modelled = set(FIELD_WIDTHS) - {f"reg{i}" for i in range(1, 7)}
    assert modelled <= fields, f"untested fields: {sorted(modelled - fields)}"
    kinds = {type(a).__name__ for f in flows for a in f.actions}
    from segctl.openflow import ofctl

    every = set(ofctl.Action.__args__) if hasattr(ofctl.Action, "__args__") else set()
    assert {c.__name__ for c in every} <= kinds


def test_strict_delete_carries_table_priority_and_match_only() -> None:
    dp = _dp()
    flow = parse_flow("table=2,priority=40,cookie=0x9,ct_state=+trk+new,tcp,tp_dst=80,actions=drop")
    msg = ofswitch.flow_mod(dp, flow, delete=True)
    assert msg.command == dp.ofproto.OFPFC_DELETE_STRICT
    assert (msg.table_id, msg.priority) == (2, 40)
    assert dict(msg.match.items()) == {
        "eth_type": 0x800,
        "ip_proto": 6,
        "tcp_dst": 80,
        "ct_state": (0x21, 0x21),
    }
    assert msg.instructions == []


def test_flow_changes_orders_deletes_first_and_deduplicates() -> None:
    dp = _dp()
    a, b, c = parse_flows(
        """
        table=0,priority=10,in_port=1,actions=output:2
        table=0,priority=10,in_port=2,actions=output:1
        table=1,priority=5,actions=drop
        """
    )
    a_new = parse_flow("table=0,priority=10,in_port=1,actions=output:3")
    msgs = ofswitch.flow_changes(dp, remove=[a, b, b], add=[a_new, c, c])
    commands = [m.command for m in msgs]
    ofp = dp.ofproto
    # a is modified in place (its add replaces it; no delete), b deleted, c added once
    assert commands == [ofp.OFPFC_DELETE_STRICT, ofp.OFPFC_ADD, ofp.OFPFC_ADD]
    assert dict(msgs[0].match.items()) == {"in_port": 2}


def test_replace_all_and_drop_all() -> None:
    dp = _dp()
    msgs = ofswitch.drop_all(dp)
    ofp = dp.ofproto
    assert msgs[0].command == ofp.OFPFC_DELETE and msgs[0].table_id == ofp.OFPTT_ALL
    assert len(msgs) == 2 and msgs[1].priority == 0 and msgs[1].instructions == []
    flows = parse_flows(VOCABULARY)
    assert len(ofswitch.replace_all(dp, flows + flows)) == len(set(flows)) + 1


@pytest.mark.parametrize(
    "meter",
    [SwitchMeter(1, "pktps", 2000, 200), SwitchMeter(7, "kbps", 10000, None), SwitchMeter(3, "pktps", 5)],
)
def test_meter_round_trip(meter: SwitchMeter) -> None:
    dp = _dp()
    msg = ofswitch.meter_mod(dp, meter)
    msg.serialize()
    parsed = type(msg).parser(dp, dp.ofproto.OFP_VERSION, msg.msg_type, msg.msg_len, 0, msg.buf)
    config = dp.ofproto_parser.OFPMeterConfigStats(
        flags=parsed.flags, meter_id=parsed.meter_id, bands=parsed.bands
    )
    assert ofswitch.meter_from_config(config, ofp=dp.ofproto) == meter
    assert ofswitch.meter_mod(dp, meter, modify=True).command == dp.ofproto.OFPMC_MODIFY


def test_bundle_messages_are_atomic_and_typed() -> None:
    dp = _dp()
    ofp = dp.ofproto
    first, second = ofswitch.next_bundle_id(), ofswitch.next_bundle_id()
    assert first != second
    for request, type_ in (
        ("open", ofp.OFPBCT_OPEN_REQUEST),
        ("commit", ofp.OFPBCT_COMMIT_REQUEST),
        ("discard", ofp.OFPBCT_DISCARD_REQUEST),
    ):
        msg = ofswitch.bundle_ctrl(dp, first, request)
        assert (msg.type, msg.flags, msg.bundle_id) == (type_, ofp.OFPBF_ATOMIC, first)
    add = ofswitch.bundle_add(dp, first, ofswitch.flow_mod(dp, parse_flow("priority=1,actions=drop")))
    add.serialize()  # the inner flow mod must serialise inside the bundle
    assert (
        ofswitch.reply_class(ofswitch.bundle_ctrl(dp, first, "commit")) is dp.ofproto_parser.OFPBundleCtrlMsg
    )
    assert ofswitch.reply_class(add) is None


def test_controller_with_reason_is_refused_not_mistranslated() -> None:
    flow = Flow(0, 1, 0, (), (Controller(max_len=128, reason="no_match"),))
    with pytest.raises(UnsupportedFlowError):
        ofswitch.flow_mod(_dp(), flow)
    assert _wire_round_trip(Flow(0, 1, 0, (), (Drop(),))).actions == (Drop(),)


def test_packet_out_sends_the_frame_from_the_controller_out_of_one_port() -> None:
    dp = _dp()
    ofp = dp.ofproto
    frame = bytes(range(60))
    msg = ofswitch.packet_out(dp, 48, frame)
    msg.serialize()  # ofp_packet_out (16 bytes after the header), one action, the frame
    buffer_id, in_port, actions_len = struct.unpack_from("!IIH", msg.buf, 8)
    assert (msg.msg_type, buffer_id, in_port) == (ofp.OFPT_PACKET_OUT, ofp.OFP_NO_BUFFER, ofp.OFPP_CONTROLLER)
    kind, _, port, max_len = struct.unpack_from("!HHIH", msg.buf, 24)
    assert (actions_len, kind, port, max_len) == (16, ofp.OFPAT_OUTPUT, 48, 0)
    assert bytes(msg.buf[24 + actions_len :]) == frame


# ---------------------------------------------------------------------- real OVS
