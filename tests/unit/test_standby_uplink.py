"""Property 10, ``standby-uplink``, on ``examples/internet.yaml`` (active uplink edge2:48,
standby edge1:48): the compiled tables verify clean with both engines, before and after a
failover (``with_uplinks_down``); an edit that admits the standby port, or that sends
anything out of it, is caught with a counterexample entering (or leaving) there that the
simulator confirms; the other properties do not read the standby port's packets."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from support.agreement import compiled_lines, doc, partitioned, reference_and_wavefront
from support.mutations import Flows
from support.random_tables import parse_tables

from segctl.topology.network import Network, load_network, with_uplinks_down
from segctl.verifier.properties import OUTSIDE, SAFETY
from segctl.verifier.report import VerificationReport
from segctl.verifier.symbolic import Topology, standby_name
from segctl.verifier.verify import verify

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "internet.yaml"
STANDBY = "standby:internet@edge1:48"
#: How property 10 says that the outside got in at a standby port (``.format(port)``).
GETS_IN = "the outside (internet) gets in at standby uplink {} of external internet: "


@cache
def _network() -> Network:
    return load_network(EXAMPLE)


@cache
def _moved() -> Network:
    """edge2:48 is down: edge1:48 is active, edge2:48 standby."""
    return with_uplinks_down(_network(), [("edge2", 48)])


def _flows(network: Network) -> Flows:
    return {sw: list(lines) for sw, lines in compiled_lines(network).items()}


def _edit(flows: Flows, switch: str, pattern: str, fn: Callable[[str], str]) -> None:
    hits = [i for i, line in enumerate(flows[switch]) if re.search(pattern, line)]
    assert hits, f"nothing matches {pattern!r} on {switch}"
    for i in hits:
        flows[switch][i] = fn(flows[switch][i])


def admit(active: str, standby: str) -> Callable[[Flows], None]:
    """The active uplink's table-0 rules copied to the standby's switch (the same port 48)."""

    def edit(flows: Flows) -> None:
        flows[standby] += [line for line in flows[active] if re.match(r"table=0,.*in_port=48,", line)]

    edit.__name__ = f"admit_{standby}"
    return edit


def admit_to_web1(flows: Flows) -> None:
    """edge1 takes IPv4 in at port 48 into acme's web segment."""
    flows["edge1"].append(
        "table=0,priority=1000,in_port=48,ip,actions=write_metadata:0x1001/0xffffffff,goto_table:50"
    )


def out_of_standby(switch: str) -> Callable[[Flows], None]:
    """``switch`` sends acme's traffic to the outside out of its port 48 (the standby) instead
    of over the fabric to the active uplink."""

    def edit(flows: Flows) -> None:
        _edit(
            flows,
            switch,
            r"table=50,.*metadata=0xff001/",
            lambda s: s.replace("push_vlan:0x8100,set_field:8190->vlan_vid,output:1", "output:48"),
        )

    edit.__name__ = f"out_of_{switch}"
    return edit


def outside_to_standby(flows: Flows) -> None:
    """edge1 sends the outside's packets for acme/web1 (from the active uplink) out of 48."""
    _edit(
        flows,
        "edge1",
        r"table=50,priority=1500,.*dl_dst=02:00:00:01:01:0a",
        lambda s: s.replace("write_metadata:0xfff01001/0xffffffff,goto_table:60", "output:48"),
    )


def standby_loop(flows: Flows) -> None:
    """What comes in at edge1:48 goes to edge2 tagged 4000, and both switches send such packets
    back where they came from: a loop that starts at the standby port."""
    flows["edge1"] += [
        "table=0,priority=2000,in_port=48,actions=push_vlan:0x8100,set_field:8096->vlan_vid,output:1",
        "table=0,priority=2000,in_port=1,vlan_tci=0x1fa0/0x1fff,actions=IN_PORT",
    ]
    flows["edge2"].append("table=0,priority=2000,in_port=1,vlan_tci=0x1fa0/0x1fff,actions=IN_PORT")


def _verify(network: Network, mutate: Callable[[Flows], None] | None = None) -> VerificationReport:
    flows = _flows(network)
    if mutate is not None:
        mutate(flows)
    tables = parse_tables(flows)
    reference, wavefront = reference_and_wavefront(network, tables)
    assert reference == wavefront, "both engines write the same report"
    return verify(network, tables)


def _failing(report: VerificationReport) -> list[str]:
    return [p.id for p in report.properties if not p.holds]


def test_the_standby_port_is_an_ingress_after_the_uplinks() -> None:
    """Endpoints' tags and the active uplink's do not move; the standby port comes last and has
    its own name (``external:internet`` is the active uplink's)."""
    net = _network()
    topo = Topology.from_network(net)
    alone = Topology.from_network(replace(net, externals=(replace(net.externals[0], attach=()),)))
    assert topo.ingress_ports() == [*alone.ingress_ports(), ("edge1", 48)]
    assert topo.ingress_ports()[-2] == ("edge2", 48)
    assert standby_name("internet", ("edge1", 48)) == STANDBY
    assert topo.standby == {("edge1", 48): STANDBY}
    assert topo.edges[("edge1", 48)] == STANDBY and topo.uplinks == {("edge2", 48): "external:internet"}
    moved = Topology.from_network(_moved())
    assert moved.uplinks == {("edge1", 48): "external:internet"}
    assert moved.standby == {("edge2", 48): "standby:internet@edge2:48"}


@pytest.mark.parametrize("network", [_network, _moved], ids=["declared", "failed-over"])
def test_the_example_verifies_clean_with_both_engines(network: Callable[[], Network]) -> None:
    report = _verify(network())
    assert report.ok, [c.message for c in report.violations]
    prop = report.property("standby-uplink")
    assert dict(prop.counts) == {"standby uplinks": 1}
    assert "standby-uplink" in SAFETY and OUTSIDE[-1].id == "standby-uplink"


@pytest.mark.parametrize(
    ("network", "mutate", "ingress", "words", "fate"),
    [
        (_network, admit("edge2", "edge1"), ("edge1", 48),
         GETS_IN.format("edge1:48") + "miss at edge1 table=46",
         "miss at edge1 table=46"),
        (_network, admit_to_web1, ("edge1", 48),
         "the outside (internet) gets through standby uplink edge1:48 of external internet to acme/web1",
         "delivered to acme/web1 (edge1:10)"),
        (_network, out_of_standby("edge1"), ("edge1", 11),
         "acme/app1 sends out through standby uplink edge1:48 of external internet",
         f"delivered to {STANDBY} (edge1:48)"),
        (_network, outside_to_standby, ("edge2", 48),
         "external:internet sends out through standby uplink edge1:48 of external internet",
         f"delivered to {STANDBY} (edge1:48)"),
        (_moved, admit("edge1", "edge2"), ("edge2", 48),
         GETS_IN.format("edge2:48") + "miss at edge2 table=46",
         "miss at edge2 table=46"),
        (_moved, out_of_standby("edge2"), ("edge2", 11),
         "acme/app2 sends out through standby uplink edge2:48 of external internet",
         "delivered to standby:internet@edge2:48 (edge2:48)"),
    ],
    ids=["admit", "admit-to-web1", "app1-out", "outside-out", "failed-over-admit", "failed-over-app2-out"],
)  # fmt: skip
def test_each_edit_at_a_standby_port_is_caught(
    network: Callable[[], Network], mutate: Callable[[Flows], None], ingress: tuple[str, int], words: str,
    fate: str,
) -> None:  # fmt: skip
    report = _verify(network(), mutate)
    prop = report.property("standby-uplink")
    assert not prop.holds
    shown = [cx for cx in prop.counterexamples if cx.message == words]
    assert shown, [cx.message for cx in prop.counterexamples]
    cx = shown[0]
    assert cx.ingress == ingress and cx.disposition == fate and cx.confirmed, cx
    assert cx.hops, "a hop-by-hop trace"
    assert f"in_port={ingress[1]}," in cx.ofproto_flow


def test_the_other_properties_do_not_read_the_standby_port() -> None:
    """The outside delivered to web1 through the standby is this property's alone: not
    exposure (the active uplink's), not isolation or spoof-guard (endpoints'); no matrix cell
    or outside cell names the standby port."""
    report = _verify(_network(), admit_to_web1)
    assert _failing(report) == ["standby-uplink"]
    text = json.dumps(report.to_json()["outside"]) + json.dumps(report.to_json().get("matrix", {}))
    assert "standby:" not in text
    assert [c.external for c in report.outside] == ["external:internet"] * len(_network().endpoints)


def test_a_loop_from_the_standby_port_is_reported_by_name() -> None:
    """loop-free names the standby port as the sender (an outside tag is not an endpoint)."""
    report = _verify(_network(), standby_loop)
    assert {"loop-free", "standby-uplink"} <= set(_failing(report))
    loops = report.property("loop-free").counterexamples
    assert [(cx.src, cx.ingress, cx.disposition_kind) for cx in loops] == [(STANDBY, ("edge1", 48), "loop")]
    assert loops[0].message.startswith("packets from edge1:48 loop at edge2 table=0")
    (shown,) = report.property("standby-uplink").counterexamples
    assert shown.message.startswith(GETS_IN.format("edge1:48") + "loop at edge2 table=0")


def _section(text: str, prop: str) -> Any:
    return next(p for p in json.loads(text)["properties"] if p["id"] == prop)


def test_a_partitioned_proof_finds_the_same_violations() -> None:
    """The outside (the standby port too) is injected in the first part only; the endpoints'
    packets out of the standby are found in their own parts."""
    for mutate in (admit_to_web1, out_of_standby("edge1")):
        flows = _flows(_network())
        mutate(flows)
        tables = parse_tables(flows)
        whole = doc(verify(_network(), tables))
        for engine in ("wavefront", "reference"):
            split = partitioned(_network(), tables, engine, 2)
            assert _section(split, "standby-uplink") == _section(whole, "standby-uplink")


def test_the_incremental_verifier_sees_a_standby_edit() -> None:
    """The controller's verifier, kept across calls: the edit at the standby is re-proven, and
    property 10 reports what the full proof does (then clean again once the edit is gone).
    (The other outside properties' counts are summed over parts, so only its section is
    compared.)"""
    from segctl.verifier.incremental import IncrementalVerifier

    clean = parse_tables(_flows(_network()))
    flows = _flows(_network())
    admit_to_web1(flows)
    edited = parse_tables(flows)
    kept = IncrementalVerifier()
    assert kept.verify(_network(), clean).ok
    again = kept.verify(_network(), edited)
    full = doc(verify(_network(), edited))
    assert _section(doc(again), "standby-uplink") == _section(full, "standby-uplink")
    assert [p.id for p in again.properties if not p.holds] == ["standby-uplink"]
    assert kept.verify(_network(), clean).ok


def test_a_packet_from_the_outside_is_the_routers_frame() -> None:
    """A counterexample injected at an uplink (standby here) is what the upstream router
    would send: from its MAC, untagged, to the fabric's MAC where that gets in too (it was
    all-zero MACs)."""
    ext = _network().external("internet")
    report = _verify(_network(), admit(active="edge2", standby="edge1"))
    (cx, *_) = report.property("standby-uplink").counterexamples
    packet = cx.to_json()["packet"]
    assert (packet["eth_src"], packet["eth_dst"]) == (ext.router_mac, ext.mac)
    report = _verify(_network(), admit_to_web1)  # delivered: to web1's MAC, from the router's
    (cx, *_) = report.property("standby-uplink").counterexamples
    assert cx.to_json()["packet"]["eth_src"] == ext.router_mac
