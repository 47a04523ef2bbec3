"""The whole flow vocabulary through a real netdev bridge: what we write, OVS dumps back as the same flows."""

from __future__ import annotations

from collections import Counter

from support.vocabulary import PARSER_VOCABULARY as VOCABULARY

from segctl.openflow.ofctl import Flow, format_flow, parse_flows
from segctl.testbed import ovs


def test_real_ovs_round_trip(lab_prefix: str) -> None:
    """Every line OVS dumps parses to the Flow of the line we added, and so does our format."""
    bridge = f"{lab_prefix}of"
    try:
        ovs.create_bridge(bridge, dpid=0x4242)
        ovs.run(
            ["ovs-ofctl", "-O", "OpenFlow13", "add-meter", bridge, "meter=3,pktps,band=type=drop,rate=100"]
        )
        expected = _counter(parse_flows(VOCABULARY))
        ovs.add_flows(bridge, VOCABULARY.splitlines())
        dumped = _dump(bridge)
        assert _counter(dumped) == expected

        # Our canonical text is accepted by OVS and dumps back to the same flows.
        ovs.del_flows(bridge)
        ovs.add_flows(bridge, [format_flow(f) for f in parse_flows(VOCABULARY)])
        assert _counter(_dump(bridge)) == expected
        # The dump without statistics parses the same.
        assert _counter(parse_flows(ovs.dump_flows(bridge))) == expected
    finally:
        ovs.delete_bridge(bridge)


def _counter(flows: list[Flow]) -> Counter[Flow]:
    return Counter(flows)


def _dump(bridge: str) -> list[Flow]:
    return parse_flows(ovs.dump_flows(bridge, stats=True), source=bridge)
