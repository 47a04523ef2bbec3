"""Uplink failover through the controller service: examples/internet.yaml declares the
``internet`` uplink on edge2:48 with a standby on edge1:48.

The real compiler and the real (incremental) gate verifier run with the in-memory
southbound: a port status of the active uplink recompiles for the standby, proves the
whole fabric and pushes; the standby's own port status changes no rule; a controller that
reads the port states of a reconnecting switch fails over at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from segctl.openflow.ofctl import Flow, Output
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


def test_a_failover_that_fails_verification_keeps_the_old_rules(tmp_path: Path, sb: MemorySouthbound) -> None:
    real = GateVerifier()

    def refuses_edge1(
        network: Network, tables: Mapping[str, Sequence[Flow]], *, progress: Any = None
    ) -> Verification:
        verification = real(network, tables, progress=progress)
        if network.external("internet").switch == "edge1":
            return Verification(False, verification.violations, verification.report)
        return verification

    svc = make_service(tmp_path / "c.db", sb, refuses_edge1)
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
