"""Flow <-> OpenFlow 1.4 message conversion (segctl.controller.ofswitch).

Offline: every match field and action of the vocabulary goes Flow -> OFPFlowMod ->
wire bytes -> os-ken's own parser -> OFPFlowStats -> Flow and must come back equal.
Online (real OVS): the same flows pushed by the real app in one bundle and dumped back
both through OpenFlow and through ``ovs-ofctl dump-flows`` equal what was pushed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segctl.controller import ofswitch
from segctl.controller.framework import ProtocolDesc, ofproto_v1_4
from segctl.controller.southbound import SwitchMeter
from segctl.errors import UnsupportedFlowError
from segctl.openflow.ofctl import Controller, Drop, Flow, format_flow, parse_flow, parse_flows
from segctl.testbed import Lab, LabSpec, SwitchSpec, ovs
from segctl.testbed.intent_lab import free_port

REPO = Path(__file__).resolve().parents[1]

#: Every match field and action of the ofctl vocabulary, each at least once.
VOCABULARY = """
table=0,priority=100,in_port=1,eth_src=02:00:00:00:00:01,actions=write_metadata:0x10/0xff,goto_table:1
table=0,priority=90,in_port=2,dl_vlan=100,actions=pop_vlan,write_metadata:0x20,goto_table:1
table=0,priority=89,in_port=2,vlan_tci=0x1000/0x1000,actions=drop
table=0,priority=88,in_port=3,vlan_tci=0x0000/0x1fff,eth_dst=02:00:00:00:00:00/01:00:00:00:00:00,actions=drop
table=1,priority=50,arp,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/24,arp_op=1,actions=set_field:02:5e:00:00:00:01->eth_src,set_field:2->arp_op,IN_PORT
table=1,priority=49,arp,arp_sha=02:00:00:00:00:01,arp_tha=00:00:00:00:00:00,actions=set_field:02:5e:00:00:00:01->arp_sha,set_field:10.0.0.1->arp_spa,set_field:02:00:00:00:00:01->arp_tha,set_field:10.0.0.9->arp_tpa,output:1
table=1,priority=40,ip,nw_src=10.0.0.0/24,actions=ct(zone=5,table=2)
table=1,priority=39,ip,nw_ttl=1,actions=drop
table=2,priority=40,ct_state=+trk+new,tcp,tp_dst=80,actions=ct(commit,zone=5),goto_table:3
table=2,priority=39,ct_state=+trk+new,udp,udp_src=53,udp_dst=1024/0xfc00,actions=ct(commit,zone=65535),goto_table:3
table=2,priority=38,ct_state=+trk+new,tcp,tcp_src=1000,actions=ct(commit),goto_table:3
table=2,priority=30,ct_state=+trk+est,ip,actions=goto_table:3
table=2,priority=20,ct_state=+inv+trk,actions=drop
table=2,priority=19,ct_zone=5,ct_state=+trk+rel,actions=goto_table:3
table=2,priority=10,ip,ip_dst=10.0.0.2,actions=conjunction(7,1/2)
table=2,priority=10,tcp,tcp_dst=22,actions=conjunction(7,2/2)
table=2,priority=10,conj_id=7,ip,actions=goto_table:3
table=2,priority=9,ip,ip_src=10.0.0.3,actions=conjunction(8,1/3),conjunction(9,2/2)
table=3,priority=10,cookie=0x1234abcd,metadata=0x10/0xff,eth_dst=02:00:00:00:00:02,actions=meter:1,push_vlan:0x8100,set_field:4196->vlan_vid,output:2
table=3,priority=9,ip,eth_dst=02:5e:00:00:00:01,actions=set_field:02:5e:00:00:00:01->eth_src,set_field:02:00:00:00:00:09->eth_dst,dec_ttl,output:3
table=3,priority=8,reg0=0x5,reg7=0x1/0x1,actions=set_field:0x7->reg1,CONTROLLER:65535
table=3,priority=7,icmp,icmp_type=8,icmp_code=0,actions=output:4,LOCAL
table=3,priority=6,ipv6,ipv6_src=fe80::/64,ipv6_dst=fe80::1,actions=drop
table=3,priority=5,icmp6,icmpv6_type=135,icmpv6_code=0,nd_target=fe80::1,actions=drop
table=3,priority=4,icmp6,icmpv6_type=136,nd_target=fe80::2,actions=drop
table=3,priority=3,icmp6,icmpv6_type=135,nd_sll=02:00:00:00:00:01,actions=drop
table=3,priority=0,actions=drop
"""


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
    from segctl.flows import ofctl

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


# ---------------------------------------------------------------------- real OVS


_HARNESS = r"""
import json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from segctl.controller.runner import Endpoint, RunOptions, run
from segctl.controller.southbound import SwitchMeter
from segctl.openflow.ofctl import format_flow, parse_flows

port, flows_path, out_path, dpid = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
FLOWS = parse_flows(open(flows_path).read())

class Hooks:
    def __init__(self, started):
        self.app = started.app
    def switch_name(self, d):
        return "s1" if d == dpid else None
    def on_switch_connected(self, name):
        self.app.resync(name, FLOWS, [SwitchMeter(1, "pktps", 100, 10)])
        dumped = self.app.dump(name)
        with open(out_path, "w") as fh:
            json.dump({"flows": [format_flow(f) for f in dumped],
                       "meters": [m.__dict__ for m in self.app.dump_meters(name)]}, fh)
    def on_switch_disconnected(self, name):
        pass
    def on_link_status(self, switch, port, up):
        pass
    def on_port_states(self, switch, ports):
        pass
    def audit(self):
        pass

sys.exit(run(RunOptions(listen=Endpoint("127.0.0.1", port)), lambda st: (Hooks(st), None)))
"""


def _wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_real_ovs_round_trip_through_the_app(lab_prefix: str, tmp_path: Path) -> None:
    """Flows pushed by the app in one bundle come back equal, via OpenFlow and via ovs-ofctl."""
    flows_file = tmp_path / "flows.txt"
    flows_file.write_text(VOCABULARY)
    out = tmp_path / "dump.json"
    port = free_port()
    dpid = 0x5E6C7001
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HARNESS, str(port), str(flows_file), str(out), str(dpid)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with Lab(LabSpec(lab_prefix, [SwitchSpec("s1", dpid)])) as lab:
            ovs.set_controller(lab.bridge("s1"), [f"tcp:127.0.0.1:{port}"])
            _wait_for(out.exists, 20, "the app to push and dump")
            _wait_for(lambda: out.stat().st_size > 0, 5, "the dump file")
            dumped = json.loads(out.read_text())
            want = set(parse_flows(VOCABULARY))
            assert {parse_flow(t) for t in dumped["flows"]} == want
            assert set(parse_flows(ovs.dump_flows(lab.bridge("s1")))) == want
            assert dumped["meters"] == [{"meter_id": 1, "unit": "pktps", "rate": 100, "burst": 10}]
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
