"""The fast encoder (segctl.controller.wire) writes exactly what os-ken writes.

Byte for byte, for every flow of the ofctl vocabulary and of every compiled example
(adds and strict deletes), for delete-all, and for the bundle-add framing; and the
bytes parse back through os-ken's own parser into the same Flow.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.vocabulary import VOCABULARY

from segctl.controller import ofswitch, wire
from segctl.controller.framework import ProtocolDesc, ofproto_v1_4
from segctl.flows.compiler import compile_network
from segctl.openflow.ofctl import Flow, parse_flow, parse_flows
from segctl.topology.network import load_network, resolve
from segctl.topology.synthetic import synthetic_intent

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(
    [*(REPO / "examples").glob("*.yaml"), *(REPO / "segctl" / "mininet_scenarios" / "intents").glob("*.yaml")]
)


def _dp() -> ProtocolDesc:
    return ProtocolDesc(ofproto_v1_4.OFP_VERSION)


def _oskens(msg: object, xid: int = 0) -> bytes:
    msg.set_xid(xid)  # type: ignore[attr-defined]
    msg.serialize()  # type: ignore[attr-defined]
    return bytes(msg.buf)  # type: ignore[attr-defined]


def _example_flows() -> list[Flow]:
    flows: list[Flow] = []
    networks = [load_network(path) for path in EXAMPLES]
    networks.append(resolve(synthetic_intent(k=4, tenants=3, endpoints=24)))
    for network in networks:
        for program in compile_network(network).values():
            flows += [parse_flow(r.to_ofctl()) for r in program.rules]
    return flows


VOCAB_FLOWS = parse_flows(VOCABULARY)


@pytest.mark.parametrize("flow", VOCAB_FLOWS, ids=lambda f: f.text or str(f.priority))
@pytest.mark.parametrize("delete", [False, True], ids=["add", "delete"])
def test_vocabulary_bytes_equal_oskens(flow: Flow, delete: bool) -> None:
    want = _oskens(ofswitch.flow_mod(_dp(), flow, delete=delete))
    assert wire.flow_mod_bytes(flow, delete) == want


def test_every_compiled_example_flow_bytes_equal_oskens() -> None:
    flows = _example_flows()
    assert len(EXAMPLES) >= 7 and len(flows) > 1000
    dp = _dp()
    bad = [f.text for f in flows if wire.flow_mod_bytes(f) != _oskens(ofswitch.flow_mod(dp, f))]
    assert not bad, f"{len(bad)} flows differ, first: {bad[0]}"
    bad = [
        f.text
        for f in flows
        if wire.flow_mod_bytes(f, True) != _oskens(ofswitch.flow_mod(dp, f, delete=True))
    ]
    assert not bad, f"{len(bad)} strict deletes differ, first: {bad[0]}"


def test_bytes_parse_back_to_the_same_flow() -> None:
    dp = _dp()
    parser = dp.ofproto_parser
    for flow in VOCAB_FLOWS:
        body = wire.flow_mod_bytes(flow)
        msg = parser.OFPFlowMod.parser(dp, dp.ofproto.OFP_VERSION, 14, len(body), 0, bytearray(body))
        stats = parser.OFPFlowStats(
            table_id=msg.table_id,
            priority=msg.priority,
            cookie=msg.cookie,
            match=msg.match,
            instructions=msg.instructions,
        )
        assert ofswitch.flow_from_stats(stats, ofp=dp.ofproto) == flow


def test_delete_all_equals_oskens() -> None:
    dp = _dp()
    assert wire.delete_all_mod().body == _oskens(ofswitch.replace_all(dp, [])[0])


def test_bundle_add_framing_equals_oskens() -> None:
    dp = _dp()
    flows = VOCAB_FLOWS
    mods = wire.replace_all(flows)
    xids = list(range(1000, 1000 + len(mods)))
    got = b"".join(wire.bundle_add_frames(77, mods, xids))
    want = b""
    for mod, xid in zip(mods, xids, strict=True):
        inner = ofswitch.flow_mod(dp, mod.flow) if mod.flow is not None else ofswitch.replace_all(dp, [])[0]
        want += _oskens(ofswitch.bundle_add(dp, 77, inner), xid)
    assert got == want


def test_changes_and_replace_match_ofswitch_as_sets() -> None:
    """Same messages as the os-ken path (the order within a priority may differ)."""
    dp = _dp()
    a, b, c = parse_flows(
        """
        table=0,priority=10,in_port=1,actions=output:2
        table=0,priority=10,in_port=2,actions=output:1
        table=1,priority=5,actions=drop
        """
    )
    a_new = parse_flow("table=0,priority=10,in_port=1,actions=output:3")
    got = wire.flow_changes(remove=[a, b, b], add=[a_new, c, c])
    want = ofswitch.flow_changes(dp, remove=[a, b, b], add=[a_new, c, c])
    assert [m.body for m in got] == [_oskens(m) for m in want]
    assert [m.delete for m in got] == [True, False, False]
    assert got[0].describe().startswith("delete table=0")
    replaced = wire.replace_all(VOCAB_FLOWS + VOCAB_FLOWS[:3])
    assert sorted(m.body for m in replaced) == sorted(
        _oskens(m) for m in ofswitch.replace_all(dp, VOCAB_FLOWS)
    )
    keys = [(m.flow.table, -m.flow.priority) for m in replaced[1:] if m.flow is not None]
    assert keys == sorted(keys) and len(keys) == len(VOCAB_FLOWS)


def test_frames_split_on_message_boundaries() -> None:
    mods = wire.replace_all(_example_flows())
    xids = list(range(1, len(mods) + 1))
    chunks = list(wire.bundle_add_frames(5, mods, xids, chunk=4096))
    assert len(chunks) > 1
    count = 0
    for chunk in chunks:
        offset = 0
        while offset < len(chunk):
            length = int.from_bytes(chunk[offset + 2 : offset + 4], "big")
            assert chunk[offset + 1] == ofproto_v1_4.OFPT_BUNDLE_ADD_MESSAGE
            offset += length
            count += 1
        assert offset == len(chunk)
    assert count == len(mods)
    with pytest.raises(ValueError, match="bundle 5"):
        list(wire.bundle_add_frames(5, mods, xids[:-1]))


def test_raw_flow_stats_decode_to_the_same_flows() -> None:
    """Stats entries kept as bytes (the dump path) give the flows os-ken's parse gives."""
    dp = _dp()
    parser = dp.ofproto_parser
    flows = [*VOCAB_FLOWS, *VOCAB_FLOWS]  # the second time from the decode cache
    entries = b"".join(wire.stats_entry_bytes(f) for f in flows)
    raw, offset = [], 0
    while offset < len(entries):
        raw.append(wire.RawFlowStats.parser(bytearray(entries), offset))
        offset += raw[-1].length
    assert wire.flows_from_dump(raw) == flows
    oskens = [parser.OFPFlowStats.parser(r.entry, 0) for r in raw]
    assert wire.flows_from_dump(oskens) == flows
    decoded = wire.flows_from_dump(raw)
    assert [f.text for f in decoded] == [ofswitch.flow_from_stats(s, ofp=dp.ofproto).text for s in oskens]


def test_the_gateway_advertisement_fields_are_the_ones_ovs_reads() -> None:
    """nd_reserved and nd_options_type have no os-ken name: they go out as OVS's OXM class
    0x1000 fields 1 and 2 (32 and 8 bits), the bytes ``ovs-ofctl`` writes for
    ``set_field:...->nd_reserved`` / ``->nd_options_type``; nd_tll as the standard
    IPV6_ND_TLL. Each survives a dump (the stats entry decoded back to the same flow)."""
    flow = parse_flow(
        "table=10,priority=1500,icmp6,icmp_type=135,nd_target=fd00:1:1::1,actions="
        "set_field:136->icmpv6_type,set_field:3758096384->nd_reserved,set_field:2->nd_options_type,"
        "goto_table:80"
    )
    body = wire.flow_mod_bytes(flow)
    assert bytes.fromhex("10000204e0000000") in body
    assert bytes.fromhex("1000040102") in body
    assert wire.flows_from_dump([wire.RawFlowStats(wire.stats_entry_bytes(flow))]) == [flow]
    tll = parse_flow(
        "table=80,priority=2600,icmp6,icmp_type=136,actions=set_field:02:5e:00:00:00:01->nd_tll,IN_PORT"
    )
    assert bytes.fromhex("80004206025e00000001") in wire.flow_mod_bytes(tll)
    assert wire.flows_from_dump([wire.RawFlowStats(wire.stats_entry_bytes(tll))]) == [tll]
