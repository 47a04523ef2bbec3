"""Which bridge holds which switch: found by datapath id, as the controller finds switches."""

from __future__ import annotations

from pathlib import Path

import pytest

from segctl.errors import SwitchError
from segctl.openflow.tables import bridges_by_dpid, dump_live
from segctl.topology.network import load_network

LEAF_SPINE = Path(__file__).resolve().parents[2] / "examples" / "leaf-spine.yaml"


def test_each_switch_gets_the_bridge_announcing_its_dpid() -> None:
    network = load_network(LEAF_SPINE)
    bridges = [(f"br-{i}", s.dpid) for i, s in enumerate(reversed(network.switches))]
    bridges += [("other", 0x99), ("fresh", None)]
    found = bridges_by_dpid(network, bridges)
    assert found == {s.name: f"br-{len(network.switches) - 1 - i}" for i, s in enumerate(network.switches)}


def test_missing_and_shared_dpids_are_named_and_a_prefix_narrows() -> None:
    network = load_network(LEAF_SPINE)
    bridges = [(f"a{s.name}", s.dpid) for s in network.switches] + [("bspine1", 0x101)]
    with pytest.raises(SwitchError) as exc:
        bridges_by_dpid(network, bridges)
    assert str(exc.value) == (
        "switch spine1 (datapath id 0x0000000000000101): bridges aspine1, bspine1 all have it; "
        "narrow with --bridge-prefix"
    )
    assert bridges_by_dpid(network, bridges, prefix="a")["spine1"] == "aspine1"
    with pytest.raises(
        SwitchError, match=r"switch leaf1 \(datapath id 0x0000000000000201\): no bridge named b\* has it"
    ):
        bridges_by_dpid(network, bridges, prefix="b")


def test_dump_live_dumps_the_found_bridge() -> None:
    network = load_network(LEAF_SPINE)
    asked: list[str] = []

    def dump(bridge: str) -> str:
        asked.append(bridge)
        return "table=0,priority=0,actions=drop\n"

    tables = dump_live(
        network, dump=dump, bridges=lambda: [(f"n{s.dpid:x}", s.dpid) for s in network.switches]
    )
    assert asked == [f"n{s.dpid:x}" for s in network.switches]
    assert {name: len(flows) for name, flows in tables.items()} == {s.name: 1 for s in network.switches}
