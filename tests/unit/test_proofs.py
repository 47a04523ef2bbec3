"""Proofs remembered across restarts (segctl/controller/proofs.py), with the real compiler and verifier.

A restarted controller with an unchanged intent reads its gate and live proofs back from the
store instead of proving the same tables again; any change of the inputs proves again.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import yaml

import segctl
from segctl.controller import gate
from segctl.controller.audit import AuditLog
from segctl.controller.gate import GateVerifier, Progress, Verification
from segctl.controller.linkstate import without_links
from segctl.controller.memory_southbound import MemorySouthbound
from segctl.controller.metrics import ControllerMetrics
from segctl.controller.plan import gate_tables
from segctl.controller.proofs import (
    RememberingVerifier,
    code_fingerprint,
    proof_inputs,
    remembering,
    verifier_fingerprint,
)
from segctl.controller.service import ControllerService
from segctl.controller.store import Database, Store
from segctl.openflow.ofctl import Flow
from segctl.topology.network import Network, load_network

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples/leaf-spine.yaml"
SWITCHES = ["spine1", "spine2", "leaf1", "leaf2", "leaf3", "leaf4"]


class Counting:
    """The real verifier, counting how often it is asked to prove."""

    def __init__(self) -> None:
        self.inner: GateVerifier = gate.default_verifier()
        self.calls = 0

    def __call__(
        self, network: Network, tables: Mapping[str, Sequence[Flow]], *, progress: Progress | None = None
    ) -> Verification:
        self.calls += 1
        return self.inner(network, tables, progress=progress)


def _service(db_path: Path, proving: Counting) -> tuple[ControllerService, MemorySouthbound, Store]:
    db = Database(db_path)
    store = Store(db)
    sb = MemorySouthbound(SWITCHES)
    service = ControllerService(
        store, sb, remembering(proving, store), AuditLog(db), compiler=gate.default_compiler()
    )
    return service, sb, store


def _tables(network: Network) -> dict[str, list[Flow]]:
    return gate_tables(gate.default_compiler()(network))


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
    remembering(counting, store)(network, tables)
    inputs = proof_inputs(network, tables)
    for body in ('{"verdict": "pass"}', "not json", '{"verdict": "maybe", "violations": [], "report": {}}'):
        with db.transaction() as conn:
            conn.execute("UPDATE proofs SET body = ? WHERE inputs = ?", (body, inputs))
        result = remembering(counting, store)(network, tables)  # a restarted controller
        assert not result.reused and result.passed
    assert counting.calls == 4
    assert remembering(counting, store)(network, tables).reused  # the good proof was stored again


def test_the_newest_proof_is_reused_from_memory(tmp_path: Path) -> None:
    """The live proof right after a push has its gate's inputs: it is answered from memory,
    without reading the stored report back (a dense fabric's is tens of MB of JSON)."""
    network = load_network(EXAMPLE)
    tables = _tables(network)
    counting = Counting()
    db = Database(tmp_path / "c.db")
    verify = remembering(counting, Store(db))
    proven = verify(network, tables)
    with db.transaction() as conn:
        conn.execute("DELETE FROM proofs")
    again = verify(network, tables)
    assert counting.calls == 1 and again.reused and not proven.reused
    assert again.report == proven.report and again.passed == proven.passed
    down = without_links(network, [network.links[0]])
    verify(down, tables)  # only the newest is kept in memory
    assert not verify(network, tables).reused and counting.calls == 3


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


def _restarted(
    db_path: Path, metrics: ControllerMetrics | None = None
) -> tuple[ControllerService, RememberingVerifier, Counting]:
    """A controller restarted on the store at ``db_path``: loaded, every switch resynced."""
    proving = Counting()
    db = Database(db_path)
    store = Store(db)
    remembered = remembering(proving, store, metrics=metrics)
    service = ControllerService(
        store, MemorySouthbound(SWITCHES), remembered, AuditLog(db), compiler=gate.default_compiler()
    )
    service.load_current()
    for name in SWITCHES:
        service.on_switch_connected(name)
    return service, remembered, proving


def _one_port_changed() -> dict[str, Any]:
    document = yaml.safe_load(EXAMPLE.read_text())
    document["tenants"][0]["policies"][0]["services"][0]["port"] = 8081
    return document


def test_warm_up_after_a_restart_makes_the_next_change_incremental(tmp_path: Path) -> None:
    """A restart reads the live proof back and leaves the incremental verifier cold; without a
    warm-up the next change is a full proof, after one it is incremental."""
    first = Counting()
    service, _, _ = _service(tmp_path / "c.db", first)
    assert service.apply(yaml.safe_load(EXAMPLE.read_text()), actor="alice").status == "applied"
    with (
        closing(sqlite3.connect(tmp_path / "c.db")) as src,
        closing(sqlite3.connect(tmp_path / "copy.db")) as dst,
    ):
        src.backup(dst)  # the same store, twice

    cold_service, cold, cold_proving = _restarted(tmp_path / "copy.db")
    assert cold_proving.calls == 0 and cold.needs_warm_up
    assert cold_service.apply(_one_port_changed(), actor="alice").status == "applied"
    assert cold_proving.inner.incremental.stats.mode == "full"
    assert cold_proving.inner.incremental.stats.reason == "first call"

    metrics = ControllerMetrics()
    restarted, remembered, proving = _restarted(tmp_path / "c.db", metrics)
    assert proving.calls == 0 and remembered.needs_warm_up
    assert metrics.verifier_cold.value() == 1 and metrics.proofs_read_back.value() >= 1
    assert remembered.warm_up() is True
    assert proving.calls == 1 and proving.inner.incremental.stats.mode == "full"
    assert metrics.verifier_cold.value() == 0 and metrics.warm_ups.value(result="done") == 1
    assert metrics.verification_seconds.count(stage="warm-up") == 1
    assert not remembered.needs_warm_up and remembered.warm_up() is False  # nothing left to do
    changed = restarted.apply(_one_port_changed(), actor="alice")
    assert changed.status == "applied" and changed.verification is not None
    assert not changed.verification.reused and proving.calls == 2
    assert proving.inner.incremental.stats.mode == "incremental"
    # the live check of the just-proven tables is read back, and needs no warm-up
    assert changed.live is not None and changed.live.reused and not remembered.needs_warm_up
    assert changed.verification.report["ok"] is True


class Endless:
    """A verifier whose proof never ends unless its progress callback raises."""

    def __init__(self) -> None:
        self.running = threading.Event()
        self.calls = 0

    def __call__(
        self, network: Network, tables: Mapping[str, Sequence[Flow]], *, progress: Progress | None = None
    ) -> Verification:
        self.calls += 1
        self.running.set()
        while progress is not None:
            progress("still proving")
            time.sleep(0.01)
        return Verification(True)


def test_a_warm_up_is_cancelled_and_a_busy_verifier_is_left_alone(tmp_path: Path) -> None:
    network = load_network(EXAMPLE)
    tables = _tables(network)
    store = Store(Database(tmp_path / "c.db"))
    remembering(Counting(), store)(network, tables)  # the proof a restarted controller reads back
    endless = Endless()
    metrics = ControllerMetrics()
    remembered = remembering(endless, store, metrics=metrics)
    assert remembered.warm_up() is False  # nothing read back yet
    assert remembered(network, tables).reused and remembered.needs_warm_up and endless.calls == 0

    outcome: list[bool] = []
    worker = threading.Thread(target=lambda: outcome.append(remembered.warm_up()))
    worker.start()
    assert endless.running.wait(10)
    assert remembered.warm_up() is False  # a proof is running: the second warm-up does nothing
    remembered.cancel(wait=10)
    worker.join(10)
    assert outcome == [False] and not worker.is_alive()
    assert remembered.needs_warm_up  # not proven: still cold, but no warm-up starts any more
    assert remembered.warm_up() is False and endless.calls == 1
    assert metrics.warm_ups.value(result="cancelled") == 1 and metrics.verifier_cold.value() == 1


def test_the_controller_warms_its_verifier_up_in_the_background(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """``segctl controller run --store``: a green thread warms the verifier up in an OS thread
    once a proof was read back, and stops with the controller."""
    from segctl.cli import main
    from segctl.cli.controller import _ServiceFactory
    from segctl.controller.framework import hub
    from segctl.controller.runner import Started, in_os_thread

    assert main(["controller", "run", "--store", str(tmp_path / "c.db"), "--warm-after", "-1"]) == 2
    assert "--warm-after must be >= 0" in capsys.readouterr().err
    first, _, _ = _service(tmp_path / "c.db", Counting())
    assert first.apply(yaml.safe_load(EXAMPLE.read_text()), actor="alice").status == "applied"

    started = Started(MemorySouthbound(SWITCHES), in_os_thread)
    service, _ = _ServiceFactory(intent=None, store=tmp_path / "c.db", warm_after=0.05)(started)
    remembered = service.verifier
    assert isinstance(remembered, RememberingVerifier) and len(started.on_stop) == 1
    caplog.set_level(logging.INFO, logger="segctl.controller.proofs")
    try:
        for name in SWITCHES:
            service.on_switch_connected(name)  # the live proof is read back: the verifier is cold
        deadline = time.monotonic() + 60  # (the warm-up may already run while switches connect)
        while "verifier warmed up" not in caplog.text and time.monotonic() < deadline:
            hub.sleep(0.05)
        assert "verifier warmed up" in caplog.text and not remembered.needs_warm_up
        exposed = service.metrics.render()  # what GET /metrics serves
        assert 'segctl_verifier_warm_ups_total{result="done"} 1' in exposed
        assert "segctl_verifier_cold 0" in exposed and "segctl_proofs_read_back_total" in exposed
    finally:
        for stop in started.on_stop:
            stop()
    quiet = Started(MemorySouthbound(SWITCHES), in_os_thread)
    _ServiceFactory(intent=None, store=tmp_path / "c.db", warm_after=0)(quiet)
    assert quiet.on_stop == []  # --warm-after 0: no warm-up


def test_a_failing_warm_up_is_logged_and_not_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    network = load_network(EXAMPLE)
    tables = _tables(network)
    store = Store(Database(tmp_path / "c.db"))
    remembering(Counting(), store)(network, tables)

    def broken(*_args: object, **_kwargs: object) -> Verification:
        raise RuntimeError("verifier bug")

    metrics = ControllerMetrics()
    remembered = remembering(broken, store, metrics=metrics)
    assert remembered(network, tables).reused and remembered.needs_warm_up
    assert remembered.warm_up() is False and not remembered.needs_warm_up
    assert metrics.warm_ups.value(result="failed") == 1 and metrics.verifier_cold.value() == 0
    assert "verifier warm-up failed" in caplog.text and "verifier bug" in caplog.text


def test_fingerprint_follows_verdict_code_only(tmp_path: Path) -> None:
    """Editing the compiler, a report renderer or the controller keeps every remembered proof;
    editing the verifier, the flow parser or the intent model does not."""
    package = Path(segctl.__file__).resolve().parent
    copy = tmp_path / "segctl"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = code_fingerprint(copy)
    assert before == code_fingerprint(package)
    for kept in ("flows/compiler.py", "reports/html.py", "controller/service.py", "cli/verify.py"):
        (copy / kept).write_text((copy / kept).read_text() + "\n# edited\n")
        assert code_fingerprint(copy) == before, kept
    for changed in ("verifier/checks.py", "openflow/ofctl.py", "topology/analysis.py"):
        original = (copy / changed).read_text()
        (copy / changed).write_text(original + "\n# edited\n")
        assert code_fingerprint(copy) != before, changed
        (copy / changed).write_text(original)
    assert code_fingerprint(copy) == before
