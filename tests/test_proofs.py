"""Proofs remembered across restarts (segctl/controller/proofs.py), with the real compiler and verifier.

A restarted controller with an unchanged intent reads its gate and live proofs back from the
store instead of proving the same tables again; any change of the inputs proves again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import yaml

from segctl.controller import gate
from segctl.controller.audit import AuditLog
from segctl.controller.gate import Verification, Verifier
from segctl.controller.linkstate import without_links
from segctl.controller.memory_southbound import MemorySouthbound
from segctl.controller.proofs import proof_inputs, remembering, verifier_fingerprint
from segctl.controller.service import ControllerService
from segctl.controller.store import Database, Store
from segctl.flows.ofctl import Flow
from segctl.topology.network import Network, load_network

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples/leaf-spine.yaml"
SWITCHES = ["spine1", "spine2", "leaf1", "leaf2", "leaf3", "leaf4"]


class Counting:
    """The real verifier, counting how often it is asked to prove."""

    def __init__(self) -> None:
        self.inner: Verifier = gate.default_verifier()
        self.calls = 0

    def __call__(self, network: Network, tables: Mapping[str, Sequence[Flow]]) -> Verification:
        self.calls += 1
        return self.inner(network, tables)


def _service(db_path: Path, proving: Counting) -> tuple[ControllerService, MemorySouthbound, Store]:
    db = Database(db_path)
    store = Store(db)
    sb = MemorySouthbound(SWITCHES)
    service = ControllerService(
        store, sb, remembering(proving, store), AuditLog(db), compiler=gate.default_compiler()
    )
    return service, sb, store


def _tables(network: Network) -> dict[str, list[Flow]]:
    compiled = gate.default_compiler()(network)
    return {sw: sorted(t.flows, key=gate.flow_sort_key) for sw, t in compiled.items()}


def test_a_restart_reads_the_gate_and_live_proofs_back(tmp_path: Path) -> None:
    first = Counting()
    service, sb, _ = _service(tmp_path / "c.db", first)
    applied = service.apply(yaml.safe_load(EXAMPLE.read_text()), actor="alice")
    # the gate proves; the live tables are the gated ones, in the same order: read back
    assert applied.status == "applied" and first.calls == 1
    assert applied.verification is not None and not applied.verification.reused
    assert applied.live is not None and applied.live.reused and applied.live_verdict == "pass"

    again = Counting()
    restarted, sb2, store = _service(tmp_path / "c.db", again)
    loaded = restarted.load_current()
    assert loaded is not None and loaded.status == "unchanged"
    for name in SWITCHES:  # the switches connect to the restarted controller and are resynced
        restarted.on_switch_connected(name)
    assert {n: sb2.flows(n) for n in SWITCHES} == {n: sb.flows(n) for n in SWITCHES}
    live = store.latest_report(kind="live")
    assert live is not None and live["verdict"] == "pass"
    assert again.calls == 0  # the fabric's live tables were proven before the restart: read back
    assert live["report"]["reused"] is True and live["report"]["report"] == applied.verification.report


def test_any_change_of_the_inputs_proves_again(tmp_path: Path) -> None:
    network = load_network(EXAMPLE)
    tables = _tables(network)
    counting = Counting()
    store = Store(Database(tmp_path / "c.db"))
    verify = remembering(counting, store)
    first = verify(network, tables)
    assert counting.calls == 1 and first.passed and not first.reused
    assert verify(network, tables).reused and counting.calls == 1

    # one flow less on one switch: a different proof
    changed = verify(network, {**tables, "leaf1": tables["leaf1"][1:]})
    assert counting.calls == 2 and not changed.reused
    # the same flows in another order name other lines in the report: proven again
    verify(network, {**tables, "leaf3": list(reversed(tables["leaf3"]))})
    assert counting.calls == 3
    # a link down changes the network the tables are proven against
    down = without_links(network, [network.links[0]])
    verify(down, tables)
    assert counting.calls == 4
    # another verifier (code) never reuses this one's proofs
    assert proof_inputs(network, tables) != proof_inputs(network, tables, fingerprint="other code")
    assert proof_inputs(network, tables) == proof_inputs(network, tables, fingerprint=verifier_fingerprint())


def test_a_stored_proof_that_does_not_read_back_is_proven_again(tmp_path: Path) -> None:
    network = load_network(EXAMPLE)
    tables = _tables(network)
    counting = Counting()
    db = Database(tmp_path / "c.db")
    store = Store(db)
    verify = remembering(counting, store)
    verify(network, tables)
    inputs = proof_inputs(network, tables)
    for body in ('{"verdict": "pass"}', "not json", '{"verdict": "maybe", "violations": [], "report": {}}'):
        with db.transaction() as conn:
            conn.execute("UPDATE proofs SET body = ? WHERE inputs = ?", (body, inputs))
        result = verify(network, tables)
        assert not result.reused and result.passed
    assert counting.calls == 4
    assert verify(network, tables).reused  # the good proof was stored again


@pytest.mark.parametrize("keep", [1, 3])
def test_only_the_newest_proofs_are_kept(tmp_path: Path, keep: int) -> None:
    network = load_network(EXAMPLE)
    tables = _tables(network)
    db = Database(tmp_path / "c.db")
    store = Store(db)
    verify = remembering(Counting(), store, keep=keep)
    variants = [network, *(without_links(network, [link]) for link in network.links[:3])]
    for net in variants:
        verify(net, tables)
    rows = db.query("SELECT inputs FROM proofs")
    assert {r["inputs"] for r in rows} == {proof_inputs(n, tables) for n in variants[-keep:]}


def test_verification_round_trips_through_json() -> None:
    v = Verification(
        False, (gate.Violation("isolation", "leak", {"src": "a"}),), {"ok": False}, 1.5, reused=False
    )
    back = Verification.from_json(v.to_json())
    assert back.reused and dataclasses.replace(back, reused=False) == v
    assert back.safe is False and back.verdict == "fail"
