"""Uplink failover through the controller service: examples/internet.yaml declares the
``internet`` uplink on edge2:48 with a standby on edge1:48.

The real compiler and the real (incremental) gate verifier run with the in-memory
southbound: a port status of the active uplink recompiles for the standby, proves the
whole fabric and pushes; the standby's own port status changes no rule; a controller that
reads the port states of a reconnecting switch fails over at once.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
import yaml

from segctl.controller.audit import AuditEntry, AuditLog, verify_chain
from segctl.controller.gate import GateVerifier, Verification, Verifier, default_compiler
from segctl.controller.memory_southbound import MemorySouthbound
from segctl.controller.plan import compile_tables, sorted_tables
from segctl.controller.proofs import proof_inputs
from segctl.controller.service import ControllerService
from segctl.controller.store import Database, Store
from segctl.errors import SwitchError
from segctl.openflow.ofctl import Flow, Output, mac_text
from segctl.topology.network import Network, load_network, with_uplinks_down

ROOT = Path(__file__).resolve().parents[2]
INTERNET = ROOT / "examples" / "internet.yaml"
DOC = yaml.safe_load(INTERNET.read_text())
SWITCHES = ["edge1", "edge2"]
UPLINK_IN, UPLINK_OUT = 0, 53  # table 0 admits from the uplink port; table 53 sends out of it


def make_service(path: Path, sb: MemorySouthbound, verifier: Verifier | None = None) -> ControllerService:
    db = Database(path)
    return ControllerService(
        Store(db), sb, verifier or GateVerifier(), AuditLog(db), compiler=default_compiler()
    )


@pytest.fixture
def sb() -> MemorySouthbound:
    return MemorySouthbound(SWITCHES)


@pytest.fixture
def svc(tmp_path: Path, sb: MemorySouthbound) -> ControllerService:
    service = make_service(tmp_path / "c.db", sb)
    service.apply(DOC, actor="alice")
    return service


def uplink_rules(flows: set[Flow] | frozenset[Flow], port: int = 48) -> dict[str, int]:
    """How many rules admit from ``port`` (table 0) and send out of it (table 53)."""
    admit = sum(1 for f in flows if f.table == UPLINK_IN and (m := f.get("in_port")) and m.value == port)
    out = sum(1 for f in flows if f.table == UPLINK_OUT and Output(port) in f.actions)
    return {"in": admit, "out": out}


def on(svc: ControllerService, switch: str) -> dict[str, int]:
    return uplink_rules(svc.desired(switch).flows)


NONE = {"in": 0, "out": 0}


def assert_in_sync(svc: ControllerService, sb: MemorySouthbound) -> None:
    for name in sb.connected_switches():
        assert sb.flows(name) == set(svc.desired(name).flows), name


def entries(svc: ControllerService, prefix: tuple[str, ...] = ("uplink.", "port.")) -> list[AuditEntry]:
    return [e for e in svc.audit_log.entries(limit=10_000) if e.action.startswith(prefix)]


def test_the_active_uplink_going_down_moves_the_rules_to_the_standby_and_back(
    svc: ControllerService, sb: MemorySouthbound
) -> None:
    declared = {n: svc.desired(n) for n in SWITCHES}
    assert on(svc, "edge2")["in"] > 0 and on(svc, "edge2")["out"] > 0
    assert on(svc, "edge1") == NONE  # the standby gets no rules

    result = svc.link_status("edge2", 48, up=False)
    assert result is not None and result.status == "applied"
    assert result.verification is not None and result.verification.passed  # the whole proof
    assert result.live_verdict == "pass"
    assert on(svc, "edge1")["in"] > 0 and on(svc, "edge1")["out"] > 0
    assert on(svc, "edge2") == NONE
    assert_in_sync(svc, sb)
    assert svc.network is not None and svc.network.external("internet").port == 48
    assert svc.network.external("internet").switch == "edge2"  # the declared network stays
    (entry,) = entries(svc)
    assert (entry.action, entry.object, entry.actor) == (
        "uplink.failover",
        "uplink/internet/edge2:48",
        "system",
    )
    assert entry.detail["previous"] == "edge2:48" and entry.detail["active"] == "edge1:48"
    assert sorted(entry.detail["pushed"]) == SWITCHES and entry.detail["live_verdict"] == "pass"
    assert len(svc.store.revisions()) == 1  # a failover is not an intent revision

    assert svc.link_status("edge2", 48, up=False) is None  # repeated: no-op, not logged
    assert svc.verify_live(actor="alice").live_verdict == "pass"  # proven on the effective network

    result = svc.link_status("edge2", 48, up=True)
    assert result is not None and result.status == "applied"
    assert {n: svc.desired(n) for n in SWITCHES} == declared
    assert_in_sync(svc, sb)
    assert [(e.action, e.object) for e in entries(svc)] == [
        ("uplink.failover", "uplink/internet/edge2:48"),
        ("uplink.restored", "uplink/internet/edge2:48"),
    ]
    assert verify_chain(svc.store.db) == []


def test_a_standby_going_down_changes_no_rule_and_is_logged(
    svc: ControllerService, sb: MemorySouthbound
) -> None:
    before = {n: sb.flows(n) for n in SWITCHES}
    assert svc.link_status("edge1", 48, up=False) is None
    assert svc.link_status("edge1", 48, up=True) is None
    assert svc.link_status("edge1", 48, up=True) is None  # repeated (OVS's transitional "up"): not logged
    assert {n: sb.flows(n) for n in SWITCHES} == before
    assert [(e.action, e.object, e.detail) for e in entries(svc)] == [
        ("port.down", "port/edge1:48", {"uplink": "internet", "active": "edge2:48"}),
        ("port.up", "port/edge1:48", {"uplink": "internet", "active": "edge2:48"}),
    ]


def test_with_every_uplink_down_the_rules_return_to_the_first_declared_port(
    svc: ControllerService, sb: MemorySouthbound
) -> None:
    declared = {n: svc.desired(n) for n in SWITCHES}
    svc.link_status("edge2", 48, up=False)
    result = svc.link_status("edge1", 48, up=False)
    assert result is not None and result.status == "applied"
    assert {n: svc.desired(n) for n in SWITCHES} == declared
    last = entries(svc)[-1]
    assert (last.action, last.object) == ("uplink.failover", "uplink/internet/edge1:48")
    assert last.detail["all_down"] is True and last.detail["active"] == "edge2:48"
    # the first declared port back while all were down: its rules are already there
    assert svc.link_status("edge2", 48, up=True) is None
    assert entries(svc)[-1].action == "port.up"
    assert_in_sync(svc, sb)


def test_a_restarted_controller_fails_over_when_the_switch_reports_its_ports(
    tmp_path: Path, svc: ControllerService
) -> None:
    """Stopped with both uplinks up; edge2:48 went down meanwhile. The new controller loads
    the declared revision, and edge2's port descriptions (no port 48) move the uplink at once."""
    sb = MemorySouthbound(SWITCHES)
    restarted = make_service(tmp_path / "c.db", sb)
    restarted.load_current()
    for name in SWITCHES:  # the app resyncs a connecting switch, then reads its ports
        restarted.on_switch_connected(name)
    assert on(restarted, "edge2")["out"] > 0
    assert restarted.port_states("edge1", {1: True, 10: True, 11: True, 12: True, 48: True}) == []
    results = restarted.port_states("edge2", {1: True, 11: True, 12: True})  # 48 is gone
    assert len(results) == 1 and results[0].status == "applied"
    assert on(restarted, "edge2") == NONE and on(restarted, "edge1")["out"] > 0
    assert_in_sync(restarted, sb)
    assert [e.action for e in entries(restarted)] == ["uplink.failover"]
    # reading the same states again changes and logs nothing
    assert restarted.port_states("edge2", {1: True, 11: True, 12: True}) == []
    assert len(entries(restarted)) == 1


def test_a_standby_found_down_on_connect_is_logged_once(svc: ControllerService) -> None:
    assert svc.port_states("edge1", {1: True, 10: True}) == []  # no port 48: the standby is down
    assert svc.port_states("edge1", {1: True, 10: True}) == []
    assert [(e.action, e.object) for e in entries(svc)] == [("port.down", "port/edge1:48")]


def refusing_edge1() -> Verifier:
    """The real gate, except that it refuses every network whose uplink is on edge1."""
    real = GateVerifier()

    def verify(
        network: Network, tables: Mapping[str, Sequence[Flow]], *, progress: Any = None
    ) -> Verification:
        verification = real(network, tables, progress=progress)
        if network.external("internet").switch == "edge1":
            return Verification(False, verification.violations, verification.report)
        return verification

    return verify


def test_a_failover_that_fails_verification_keeps_the_old_rules(tmp_path: Path, sb: MemorySouthbound) -> None:
    svc = make_service(tmp_path / "c.db", sb, refusing_edge1())
    svc.apply(DOC, actor="alice")
    before = {n: sb.flows(n) for n in SWITCHES}
    assert svc.link_status("edge2", 48, up=False) is None
    assert {n: sb.flows(n) for n in SWITCHES} == before
    assert on(svc, "edge2")["out"] > 0
    (entry,) = entries(svc)
    assert (entry.action, entry.object) == ("uplink.failover.rejected", "uplink/internet/edge2:48")
    assert entry.detail["active"] == "edge1:48" and "error" in entry.detail


def test_the_live_proof_of_a_failed_push_is_against_the_standby(
    svc: ControllerService, sb: MemorySouthbound
) -> None:
    """edge1 refuses the failover's bundle: the live tables still send to edge2:48, which is
    down; proven against the effective network (edge1:48 active) they fail."""
    sb.fail_next_push("edge1")
    result = svc.link_status("edge2", 48, up=False)
    assert result is not None and "edge1" in result.errors
    assert result.live is not None and not result.live.passed


def test_the_gate_verifier_starts_over_when_an_uplink_moves() -> None:
    """The incremental verifier counts the external networks as structure: kept parts
    proven against the old uplink would call the old tables fine after a failover (they
    did, before)."""
    net = load_network(INTERNET)
    moved = with_uplinks_down(net, [("edge2", 48)])
    compiler = default_compiler()
    old = sorted_tables({n: list(t.flows) for n, t in compile_tables(compiler, net).items()})
    new = sorted_tables({n: list(t.flows) for n, t in compile_tables(compiler, moved).items()})
    verifier = GateVerifier()
    assert verifier(net, old).passed
    assert not verifier(moved, old).passed
    assert verifier(moved, new).passed
    assert verifier(net, old).passed and not verifier(net, new).passed


def test_a_remembered_proof_is_keyed_by_the_active_uplink() -> None:
    net = load_network(INTERNET)
    moved = with_uplinks_down(net, [("edge2", 48)])
    tables: dict[str, list[Flow]] = {"edge1": [], "edge2": []}
    assert proof_inputs(net, tables, fingerprint="x") != proof_inputs(moved, tables, fingerprint="x")
    same = with_uplinks_down(net, [("edge1", 48)])  # a standby down: the same network
    assert proof_inputs(same, tables, fingerprint="x") == proof_inputs(net, tables, fingerprint="x")


# -- the gratuitous ARP after a move of the active uplink ---------------------------------

FABRIC_MAC = "02:5e:ff:00:00:01"  # the external network's MAC (the default for the first one)


def garp(frame: bytes) -> dict[str, Any]:
    """The fields of an Ethernet + ARP frame, parsed here independently of the builder."""
    dst, src, eth_type, htype, ptype, hlen, plen, op, sha, spa, tha, tpa = struct.unpack(
        "!6s6sHHHBBH6s4s6s4s", frame[:42]
    )
    return {
        "eth_dst": mac_text(int.from_bytes(dst, "big")),
        "eth_src": mac_text(int.from_bytes(src, "big")),
        "eth_type": eth_type,
        "arp": (htype, ptype, hlen, plen),
        "op": op,
        "sha": mac_text(int.from_bytes(sha, "big")),
        "spa": str(IPv4Address(spa)),
        "tha": mac_text(int.from_bytes(tha, "big")),
        "tpa": str(IPv4Address(tpa)),
    }


EXPECTED_GARP = {
    "eth_dst": "ff:ff:ff:ff:ff:ff",
    "eth_src": FABRIC_MAC,
    "eth_type": 0x0806,
    "arp": (1, 0x0800, 6, 4),
    "op": 1,  # a request: the sender and target address are the same
    "sha": FABRIC_MAC,
    "spa": "198.51.100.10",  # acme's SNAT address: the first tenant's, answered by the fabric
    "tha": "00:00:00:00:00:00",
    "tpa": "198.51.100.10",
}


def frames(sb: MemorySouthbound) -> dict[str, list[tuple[int, bytes]]]:
    return {name: list(sb.switches[name].frames) for name in SWITCHES}


def test_the_fabric_announces_itself_out_of_the_new_active_uplink(
    svc: ControllerService, sb: MemorySouthbound
) -> None:
    assert svc.network is not None and svc.network.external("internet").mac == FABRIC_MAC
    assert frames(sb) == {"edge1": [], "edge2": []}  # an intent change announces nothing

    svc.link_status("edge2", 48, up=False)
    assert frames(sb)["edge2"] == []
    ((port, frame),) = frames(sb)["edge1"]
    assert port == 48 and len(frame) == 60 and garp(frame) == EXPECTED_GARP
    (entry,) = entries(svc)
    assert entry.detail["announced"] == {"port": "edge1:48", "ip": "198.51.100.10", "mac": FABRIC_MAC}

    svc.link_status("edge2", 48, up=True)  # restored: announced out of edge2:48, once
    assert len(frames(sb)["edge1"]) == 1
    ((port, frame),) = frames(sb)["edge2"]
    assert port == 48 and garp(frame) == EXPECTED_GARP
    assert entries(svc)[-1].detail["announced"]["port"] == "edge2:48"


def test_the_announcement_goes_after_the_new_rules_are_on_the_switch(
    svc: ControllerService, sb: MemorySouthbound
) -> None:
    """When the frame leaves, the new active port's switch already holds the uplink rules."""
    seen: list[dict[str, int]] = []
    send = sb.packet_out

    def watching(switch: str, port: int, frame: bytes) -> None:
        seen.append(uplink_rules(sb.flows(switch), port))
        send(switch, port, frame)

    sb.packet_out = watching  # type: ignore[method-assign]
    svc.link_status("edge2", 48, up=False)
    assert len(seen) == 1 and seen[0]["in"] > 0 and seen[0]["out"] > 0


def test_no_announcement_for_a_standby_a_rejected_failover_or_every_uplink_down(
    tmp_path: Path, svc: ControllerService, sb: MemorySouthbound
) -> None:
    svc.link_status("edge1", 48, up=False)  # the standby's state changes: nothing moves
    svc.link_status("edge1", 48, up=True)
    assert frames(sb) == {"edge1": [], "edge2": []}

    svc.link_status("edge2", 48, up=False)
    svc.link_status("edge1", 48, up=False)  # every uplink down: no port to announce on
    assert len(frames(sb)["edge1"]) == 1 and frames(sb)["edge2"] == []
    assert "announced" not in entries(svc)[-1].detail

    other = MemorySouthbound(SWITCHES)
    refusing = make_service(tmp_path / "r.db", other, refusing_edge1())
    refusing.apply(DOC, actor="alice")
    assert refusing.link_status("edge2", 48, up=False) is None
    assert frames(other) == {"edge1": [], "edge2": []}


def test_no_announcement_from_a_switch_that_refused_the_new_rules(
    svc: ControllerService, sb: MemorySouthbound
) -> None:
    """edge1 refused the failover's bundle: its port 48 has no rules, so drawing the
    upstream's traffic there would black-hole it."""
    sb.fail_next_push("edge1")
    svc.link_status("edge2", 48, up=False)
    assert frames(sb) == {"edge1": [], "edge2": []}
    assert entries(svc)[-1].detail["announced"] == {
        "port": "edge1:48",
        "skipped": "edge1 did not take the new rules",
    }


def test_a_failed_packet_out_is_in_the_audit_entry(svc: ControllerService, sb: MemorySouthbound) -> None:
    def refuses(switch: str, port: int, frame: bytes) -> None:
        raise SwitchError(f"packet-out on {switch}:{port}: switch refused")

    sb.packet_out = refuses  # type: ignore[method-assign]
    result = svc.link_status("edge2", 48, up=False)
    assert result is not None and result.status == "applied"  # the failover itself stands
    assert entries(svc)[-1].detail["announced"]["error"] == "packet-out on edge1:48: switch refused"


def test_the_memory_southbound_sends_only_whole_frames(sb: MemorySouthbound) -> None:
    with pytest.raises(ValueError, match="14 to 1514"):
        sb.packet_out("edge1", 48, b"\x00" * 13)
    with pytest.raises(ValueError):
        sb.packet_out("edge1", 48, b"\x00" * 1515)
    sb.disconnect("edge1")
    with pytest.raises(SwitchError):
        sb.packet_out("edge1", 48, b"\x00" * 60)
