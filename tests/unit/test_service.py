"""The controller service: gate, diff, push, record, reconcile, link state.

Runs the real store, audit log and topology code with the in-memory southbound and the
small compiler/verifier of ``service_doubles`` (the flows compiler/verifier are tested
on their own). Invariant checked throughout: after every accepted change each connected
switch holds exactly its desired tables; after every rejected one nothing changed.
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.service_doubles import compile_tables, verify_tables

from segctl.controller.audit import AuditLog, verify_chain
from segctl.controller.gate import NotFound, VerificationFailed
from segctl.controller.memory_southbound import MemorySouthbound
from segctl.controller.service import ControllerService, diff_tables
from segctl.controller.store import Database, Store
from segctl.errors import IntentError

ROOT = Path(__file__).resolve().parents[2]
LEAF_SPINE = yaml.safe_load((ROOT / "examples/leaf-spine.yaml").read_text())
SWITCHES = ["spine1", "spine2", "leaf1", "leaf2", "leaf3", "leaf4"]


def make_service(path: Path, southbound: MemorySouthbound) -> ControllerService:
    db = Database(path)
    return ControllerService(Store(db), southbound, verify_tables, AuditLog(db), compiler=compile_tables)


@pytest.fixture
def sb() -> MemorySouthbound:
    return MemorySouthbound(SWITCHES)


@pytest.fixture
def svc(tmp_path: Path, sb: MemorySouthbound) -> ControllerService:
    return make_service(tmp_path / "c.db", sb)


def assert_in_sync(svc: ControllerService, sb: MemorySouthbound) -> None:
    for name in sb.connected_switches():
        assert sb.flows(name) == set(svc.desired(name).flows), name
        assert set(sb.switches[name].meters.values()) == set(svc.desired(name).meters), name


def snapshot(sb: MemorySouthbound) -> dict[str, Any]:
    return {n: (sb.flows(n), dict(s.meters)) for n, s in sb.switches.items()}


def actions(svc: ControllerService) -> list[str]:
    return [e.action for e in svc.audit_log.entries(limit=10_000)]


def with_rate(doc: dict[str, Any], pps: int) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    globex = next(t for t in doc["tenants"] if t["name"] == "globex")
    next(e for e in globex["endpoints"] if e["name"] == "gweb2")["rate_limit"]["pps"] = pps
    return doc


def test_first_apply_pushes_everything_and_records(svc: ControllerService, sb: MemorySouthbound) -> None:
    result = svc.apply(LEAF_SPINE, actor="alice")
    assert result.status == "applied"
    assert sorted(result.pushed) == sorted(SWITCHES)
    assert result.verification is not None and result.verification.passed
    assert result.live_verdict == "pass"
    assert_in_sync(svc, sb)
    assert result.revision is not None and result.revision.author == "alice"
    assert result.revision.live_verdict == "pass"
    assert svc.store.current() == result.revision
    assert actions(svc).count("switch.push") == 6 and "intent.apply" in actions(svc)
    assert verify_chain(svc.store.db) == []
    assert svc.metrics.rules.value(switch="leaf1") == len(svc.desired("leaf1").flows) > 0
    assert svc.store.latest_report(kind="live")["verdict"] == "pass"  # type: ignore[index]


def test_invalid_intent_pushes_nothing(svc: ControllerService, sb: MemorySouthbound) -> None:
    first = svc.apply(LEAF_SPINE, actor="alice")
    before = snapshot(sb)
    bad = copy.deepcopy(LEAF_SPINE)
    bad["tenants"][0]["endpoints"][0]["ip"] = "10.9.9.9"  # outside segment web
    with pytest.raises(IntentError) as err:
        svc.apply(bad, actor="mallory")
    assert any("endpoints[web1].ip" in p.location for p in err.value.problems)
    assert snapshot(sb) == before
    assert svc.store.current() == first.revision
    assert actions(svc)[-1] == "intent.rejected"


def test_failing_proof_pushes_nothing(svc: ControllerService, sb: MemorySouthbound) -> None:
    first = svc.apply(LEAF_SPINE, actor="alice")
    before = snapshot(sb)
    bad = copy.deepcopy(LEAF_SPINE)
    bad["tenants"][1]["endpoints"][0]["labels"] = {"bug": "misdeliver"}  # gweb1 -> web1's port
    with pytest.raises(VerificationFailed) as err:
        svc.apply(bad, actor="bob")
    assert {v.property for v in err.value.verification.violations} == {"isolation"}
    assert err.value.diffs  # the would-be diff is reported
    assert snapshot(sb) == before
    assert svc.store.current() == first.revision
    last = svc.audit_log.entries(limit=1000)[-1]
    assert last.action == "intent.rejected" and last.detail["reason"] == "verification"
    assert svc.store.latest_report(kind="gate")["verdict"] == "fail"  # type: ignore[index]


def test_dry_run_returns_diff_and_changes_nothing(svc: ControllerService, sb: MemorySouthbound) -> None:
    svc.apply(LEAF_SPINE, actor="alice")
    before, rev, n_audit = snapshot(sb), svc.store.current(), len(actions(svc))
    result = svc.apply(with_rate(LEAF_SPINE, 500), actor="alice", dry_run=True)
    assert result.status == "dry_run"
    assert [d.switch for d in result.diffs] == ["leaf3"]
    assert result.diffs[0].set_meters and not result.diffs[0].add
    assert snapshot(sb) == before and svc.store.current() == rev and len(actions(svc)) == n_audit


def test_update_touches_changed_switches_only(svc: ControllerService, sb: MemorySouthbound) -> None:
    svc.apply(LEAF_SPINE, actor="alice")
    counts = {n: len(sb.switches[n].pushes) for n in SWITCHES}
    result = svc.apply(with_rate(LEAF_SPINE, 500), actor="alice")
    assert result.pushed == ("leaf3",)
    assert {n: len(sb.switches[n].pushes) - counts[n] for n in SWITCHES} == {
        "spine1": 0, "spine2": 0, "leaf1": 0, "leaf2": 0, "leaf3": 1, "leaf4": 0,
    }  # fmt: skip
    assert_in_sync(svc, sb)
    # moving an endpoint changes flows on several switches; diffs applied give the new tables
    moved = copy.deepcopy(LEAF_SPINE)
    moved["tenants"][0]["endpoints"][0]["attach"] = "leaf2:20"
    result = svc.apply(moved, actor="alice")
    assert "leaf1" in result.pushed and "leaf2" in result.pushed
    assert_in_sync(svc, sb)


def test_same_content_is_unchanged(svc: ControllerService) -> None:
    first = svc.apply(LEAF_SPINE, actor="alice")
    again = svc.apply(copy.deepcopy(LEAF_SPINE), actor="bob")
    assert again.status == "unchanged" and again.revision == first.revision
    assert len(svc.store.revisions()) == 1


def test_rollback_restores_tables(svc: ControllerService, sb: MemorySouthbound) -> None:
    first = svc.apply(LEAF_SPINE, actor="alice")
    tables_a = snapshot(sb)
    svc.apply(with_rate(LEAF_SPINE, 500), actor="alice")
    assert snapshot(sb) != tables_a
    assert first.revision is not None
    back = svc.rollback(first.revision.id, actor="carol")
    assert back.revision is not None and back.revision.kind == "rollback"
    assert back.revision.parent == first.revision.id and back.revision.sha256 == first.revision.sha256
    assert {n: v[0] for n, v in snapshot(sb).items()} == {n: v[0] for n, v in tables_a.items()}
    assert "intent.rollback" in actions(svc)
    with pytest.raises(NotFound):
        svc.rollback(999, actor="carol")


def test_tenant_update_keeps_the_rest(svc: ControllerService, sb: MemorySouthbound) -> None:
    svc.apply(LEAF_SPINE, actor="alice")
    tenant = svc.tenant_document("globex")
    tenant["endpoints"] = [e for e in tenant["endpoints"] if e["name"] != "gweb2"]
    result = svc.update_tenant("globex", tenant, actor="globex-admin")
    assert result.status == "applied"
    doc = svc.document()
    assert [t["name"] for t in doc["tenants"]] == ["acme", "globex", "infra"]
    assert doc["shared_services"] == svc.document()["shared_services"] and doc["shared_services"]
    assert [e["name"] for e in svc.tenant_document("globex")["endpoints"]] == ["gweb1"]
    assert svc.tenant_document("acme")["endpoints"]  # untouched
    assert_in_sync(svc, sb)
    assert svc.audit_log.entries(action="tenant.update")[0].object == "tenant/globex"


def test_tenant_update_cannot_rename_smuggle_or_create(svc: ControllerService) -> None:
    svc.apply(LEAF_SPINE, actor="alice")
    tenant = svc.tenant_document("globex")
    with pytest.raises(IntentError, match="names tenant"):
        svc.update_tenant("globex", {**tenant, "name": "acme"}, actor="x")
    with pytest.raises(IntentError, match="unknown key"):
        svc.update_tenant("globex", {**tenant, "shared_services": []}, actor="x")
    with pytest.raises(NotFound):
        svc.update_tenant("newco", {"name": "newco"}, actor="x")
    # removing a provider endpoint breaks a shared service: the whole intent is rejected
    infra = svc.tenant_document("infra")
    with pytest.raises(IntentError):
        svc.update_tenant("infra", {**infra, "endpoints": []}, actor="x")


def test_reconcile_detects_and_repairs_drift(svc: ControllerService, sb: MemorySouthbound) -> None:
    from segctl.openflow.ofctl import parse_flow

    svc.apply(LEAF_SPINE, actor="alice")
    assert all(not r.drift for r in svc.reconcile())
    rogue = parse_flow("table=0,priority=200,in_port=10,actions=output:11")
    victim = sorted(sb.flows("leaf1"), key=lambda f: f.priority)[-1]
    sb.tamper_add("leaf1", rogue)
    sb.tamper_remove("leaf1", victim)
    sb.switches["leaf3"].meters.clear()
    reports = {r.switch: r for r in svc.reconcile()}
    assert reports["leaf1"].extra == (rogue,) and reports["leaf1"].missing == (victim,)
    assert reports["leaf1"].repaired and reports["leaf3"].meters_wrong and reports["leaf3"].repaired
    assert not reports["spine1"].drift
    assert_in_sync(svc, sb)
    assert actions(svc).count("drift.detected") == 2 and actions(svc).count("drift.repaired") == 2
    assert svc.metrics.drift_repairs.value(switch="leaf1") == 2


def test_restart_and_reconnect_resync(svc: ControllerService, sb: MemorySouthbound) -> None:
    svc.apply(LEAF_SPINE, actor="alice")
    sb.disconnect("leaf2")
    result = svc.apply(with_rate(LEAF_SPINE, 700), actor="alice")
    assert result.pending == () and result.live_verdict == "partial"
    moved = copy.deepcopy(LEAF_SPINE)
    moved["tenants"][0]["endpoints"][1]["attach"] = "leaf2:30"
    result = svc.apply(moved, actor="alice")
    assert "leaf2" in result.pending and "leaf2" not in result.pushed
    sb.connect("leaf2", wipe=True)  # restarted with empty tables
    assert sb.flows("leaf2") == set()
    svc.on_switch_connected("leaf2")
    assert_in_sync(svc, sb)
    assert "switch.resync" in actions(svc)
    # With the whole fabric connected again, the resync is followed by a live proof.
    resync = [e for e in svc.audit_log.entries() if e.action == "switch.resync"][-1]
    assert resync.detail["live_verdict"] == "pass"
    latest = svc.store.latest_report(kind="live")
    assert latest is not None and latest["verdict"] == "pass"


def test_resync_proves_the_fabric_only_once_every_switch_is_synced(
    svc: ControllerService, sb: MemorySouthbound
) -> None:
    svc.apply(LEAF_SPINE, actor="alice")
    for name in ("leaf1", "leaf2"):  # both restart; both are back before either is resynced
        sb.disconnect(name)
        svc.on_switch_disconnected(name)
    sb.connect("leaf1", wipe=True)
    sb.connect("leaf2", wipe=True)
    svc.on_switch_connected("leaf1")
    resyncs = [e for e in svc.audit_log.entries() if e.action == "switch.resync"]
    assert "live_verdict" not in resyncs[-1].detail  # leaf2 still empty: no proof (it would fail)
    svc.on_switch_connected("leaf2")
    resyncs = [e for e in svc.audit_log.entries() if e.action == "switch.resync"]
    assert resyncs[-1].object == "switch/leaf2" and resyncs[-1].detail["live_verdict"] == "pass"
    assert_in_sync(svc, sb)


def test_link_down_moves_paths_and_up_restores(svc: ControllerService, sb: MemorySouthbound) -> None:
    from segctl.openflow.ofctl import Output

    svc.apply(LEAF_SPINE, actor="alice")
    preferred = snapshot(sb)
    uses_port1 = any(Output(1) in f.actions for f in sb.flows("leaf1") if f.table == 1)
    assert uses_port1  # leaf1 prefers spine1 (port 1)
    result = svc.link_status("leaf1", 1, up=False)
    assert result is not None and result.status == "applied" and result.verification is not None
    assert not any(Output(1) in f.actions for f in sb.flows("leaf1"))
    assert_in_sync(svc, sb)
    assert svc.link_status("leaf1", 1, up=False) is None  # repeated event: no-op
    assert svc.link_status("leaf1", 10, up=False) is None  # edge port: logged only
    down = snapshot(sb)
    assert svc.link_status("spine1", 1, up=True) is None  # the other end alone: leaf1:1 is still down
    assert snapshot(sb) == down
    svc.link_status("leaf1", 1, up=True)  # both ends up: the link is back
    assert snapshot(sb) == preferred
    assert [a for a in actions(svc) if a.startswith("link.")] == ["link.down", "link.up"]
    assert len(svc.store.revisions()) == 1  # link events are not intent revisions


def test_port_states_read_on_connect_feed_the_link_state(
    svc: ControllerService, sb: MemorySouthbound
) -> None:
    """What a (re)connected switch's port descriptions say: a declared fabric port that is
    down or missing takes its link down; only changes recompile; edge ports are ignored."""
    from segctl.openflow.ofctl import Output

    svc.apply(LEAF_SPINE, actor="alice")
    preferred = snapshot(sb)
    assert svc.port_states("leaf1", {1: True, 2: True, 10: True, 11: False}) == []  # edge port 11: ignored
    assert svc.port_states("leaf1", {2: True, 10: True}) != []  # leaf1:1 is gone
    assert svc.down_links == {("leaf1", 1, "spine1", 1)}
    assert not any(Output(1) in f.actions for f in sb.flows("leaf1"))
    assert_in_sync(svc, sb)
    assert svc.port_states("leaf1", {1: False, 2: True}) == []  # still down: no change
    assert svc.port_states("spine1", {1: True, 2: True, 3: True, 4: True}) == []  # leaf1:1 still down
    results = svc.port_states("leaf1", {1: True, 2: True})
    assert len(results) == 1 and results[0].status == "applied"
    assert snapshot(sb) == preferred
    assert [a for a in actions(svc) if a.startswith(("link.", "port."))] == ["link.down", "link.up"]


def test_links_that_changed_while_a_switch_was_away_recompile_once(
    svc: ControllerService, sb: MemorySouthbound
) -> None:
    """Both uplinks of leaf1 went down while it was disconnected: its port descriptions
    take both links down in ONE recompile, gate and push (one change, two link.down entries);
    both back up is again one change that restores the preferred rules."""
    svc.apply(LEAF_SPINE, actor="alice")
    preferred = snapshot(sb)

    def gates() -> int:
        return int(svc.store.db.query("SELECT COUNT(*) FROM reports WHERE kind = 'gate'")[0][0])

    before = gates()
    results = svc.port_states("leaf1", {10: True, 11: True})  # ports 1 and 2 are gone
    assert len(results) == 1 and results[0].status == "applied"
    assert gates() == before + 1
    assert svc.down_links == {("leaf1", 1, "spine1", 1), ("leaf1", 2, "spine2", 1)}
    assert not any(f.table == 50 and "output" in f.actions_text for f in sb.flows("leaf1"))
    assert_in_sync(svc, sb)
    assert [a for a in actions(svc) if a.startswith("link.")] == ["link.down", "link.down"]
    results = svc.port_states("leaf1", {1: True, 2: True, 10: True, 11: True})
    assert len(results) == 1 and gates() == before + 2
    assert snapshot(sb) == preferred
    assert svc.down_links == set()


def test_link_down_survives_the_transitional_up_of_the_other_end(
    svc: ControllerService, sb: MemorySouthbound
) -> None:
    """The port-status sequence OVS sent in a failing link-failure run: each end reports
    "up" (LIVE cleared) then "down" (LINK_DOWN), the two ends half a second apart. The
    link goes down once and stays down: no push of the full-fabric rules in between."""
    svc.apply(LEAF_SPINE, actor="alice")
    preferred = snapshot(sb)
    events = [("spine1", True), ("spine1", False), ("leaf1", True), ("leaf1", False)]
    results = [svc.link_status(switch, 1, up=up) for switch, up in events]
    assert [r is not None for r in results] == [False, True, False, False]
    assert svc.down_links == {("leaf1", 1, "spine1", 1)}
    assert snapshot(sb) != preferred
    assert_in_sync(svc, sb)
    # Coming back: leaf1 sees no carrier until spine1's end is up too.
    assert svc.link_status("leaf1", 1, up=False) is None
    assert svc.link_status("spine1", 1, up=True) is None
    assert svc.link_status("leaf1", 1, up=True) is not None
    assert snapshot(sb) == preferred and not svc.down_links
    assert [a for a in actions(svc) if a.startswith("link.")] == ["link.down", "link.up"]


def test_partition_is_accepted_when_safe(svc: ControllerService, sb: MemorySouthbound) -> None:
    svc.apply(LEAF_SPINE, actor="alice")
    svc.link_status("leaf1", 1, up=False)
    result = svc.link_status("leaf1", 2, up=False)  # leaf1 cut off: delivery fails, isolation holds
    assert result is not None and result.verification is not None
    assert not result.verification.passed and result.verification.safe
    assert_in_sync(svc, sb)


def test_push_failure_is_reported_and_reconciled(svc: ControllerService, sb: MemorySouthbound) -> None:
    svc.apply(LEAF_SPINE, actor="alice")
    sb.fail_next_push("leaf3")
    result = svc.apply(with_rate(LEAF_SPINE, 900), actor="alice")
    assert "leaf3" in result.errors and result.live_verdict == "error"
    assert "switch.push_failed" in actions(svc)
    reports = {r.switch: r for r in svc.reconcile("leaf3")}
    assert reports["leaf3"].repaired
    assert_in_sync(svc, sb)


def test_state_survives_restart(tmp_path: Path, sb: MemorySouthbound) -> None:
    first = make_service(tmp_path / "c.db", sb)
    first.apply(LEAF_SPINE, actor="alice")
    second = make_service(tmp_path / "c.db", MemorySouthbound())
    loaded = second.load_current()
    assert loaded is not None and loaded.revision == first.store.current()
    assert {n: second.desired(n) for n in SWITCHES} == {n: first.desired(n) for n in SWITCHES}
    assert second.switch_name(0x201) == "leaf1" and second.switch_name(0x999) is None


def test_diff_replaces_in_place() -> None:
    from segctl.controller.gate import SwitchTables
    from segctl.openflow.ofctl import parse_flow

    old = parse_flow("table=1,priority=10,dl_dst=02:00:00:00:00:01,actions=output:1")
    new = parse_flow("table=1,priority=10,dl_dst=02:00:00:00:00:01,actions=output:2")
    gone = parse_flow("table=1,priority=10,dl_dst=02:00:00:00:00:02,actions=output:3")
    diff = diff_tables("s", SwitchTables(frozenset({old, gone})), SwitchTables(frozenset({new})))
    assert diff.add == (new,) and diff.remove == (gone,)


def test_real_compiler_through_the_service(tmp_path: Path, sb: MemorySouthbound) -> None:
    """The segctl compiler's rules go through diff/push/link state with the same invariants."""
    from segctl.controller.gate import Verification, default_compiler

    db = Database(tmp_path / "real.db")
    svc = ControllerService(
        Store(db), sb, lambda network, tables: Verification(True), AuditLog(db), compiler=default_compiler()
    )
    svc.apply(LEAF_SPINE, actor="alice")
    assert_in_sync(svc, sb)
    preferred = snapshot(sb)
    assert sb.switches["leaf3"].meters  # gweb2's rate limit
    svc.link_status("leaf1", 1, up=False)
    assert_in_sync(svc, sb)
    assert snapshot(sb) != preferred
    svc.link_status("leaf1", 1, up=True)
    assert snapshot(sb) == preferred


def test_compile_and_proofs_go_through_offload(tmp_path: Path, sb: MemorySouthbound) -> None:
    """Every compile, every proof and the encoding of every stored report are handed to
    ``offload`` (the controller's OS thread), with the service lock held."""

    class Lock:
        depth = 0

        def __enter__(self) -> None:
            self.depth += 1

        def __exit__(self, *exc: object) -> None:
            self.depth -= 1

    lock = Lock()
    calls: list[str] = []

    def offload(func: Any, *args: Any) -> Any:
        assert lock.depth > 0, f"{func} offloaded without the lock"
        calls.append(getattr(func, "__name__", repr(func)))
        return func(*args)

    db = Database(tmp_path / "o.db")

    def service(southbound: MemorySouthbound) -> ControllerService:
        return ControllerService(
            Store(db),
            southbound,
            verify_tables,
            AuditLog(db),
            compiler=compile_tables,
            lock=lock,
            offload=offload,
        )

    svc = service(sb)
    svc.apply(LEAF_SPINE, actor="alice")
    # validate+resolve+hash, compile+diff+sort, gate proof and its stored report, sort of the
    # dumped tables, live proof and its stored report
    assert calls == [
        "prepare_intent",
        "plan_change",
        "verify_tables",
        "_report_json",
        "sorted_tables",
        "verify_tables",
        "_report_json",
    ]
    assert_in_sync(svc, sb)
    calls.clear()
    assert service(MemorySouthbound()).load_current() is not None
    assert calls == ["resolve_intent", "compile_tables"]


def test_in_os_thread_keeps_the_hub_running_and_reraises() -> None:
    """The controller's offload: a CPU-bound call runs in an OS thread while green threads
    keep running; its exception comes back to the caller."""
    import threading
    import time

    from segctl.controller.framework import hub
    from segctl.controller.runner import in_os_thread

    ticks: list[float] = []

    def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            hub.sleep(0.01)

    def spin(seconds: float) -> int:
        end, n = time.monotonic() + seconds, 0
        while time.monotonic() < end:
            n += 1
        return threading.get_ident()

    def fail() -> None:
        raise ValueError("boom")

    thread = hub.spawn(ticker)
    try:
        hub.sleep(0)
        assert in_os_thread(spin, 0.5) != threading.get_ident()
        with pytest.raises(ValueError, match="boom"):
            in_os_thread(fail)
    finally:
        hub.kill(thread)
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) >= 20 and max(gaps) < 0.2, (len(ticks), max(gaps))


def test_the_audit_leaves_a_reconnecting_switch_to_its_resync(tmp_path: Path) -> None:
    """A switch reconnects (empty tables) while the periodic audit holds the turn: its resync
    waits behind the audit. The audit must not call the empty tables drift (and repair them,
    before the resync replaces them again): it leaves the switch to the resync."""
    import threading

    class Reconnecting(MemorySouthbound):
        armed = False
        hook: threading.Thread | None = None

        def connected_switches(self) -> list[str]:
            if self.armed and self.hook is None:
                self.connect("leaf2", wipe=True)  # the switch is back; the framework calls the hook
                self.hook = threading.Thread(target=service.on_switch_connected, args=("leaf2",))
                self.hook.start()
                for _ in range(200):  # until the hook is waiting for its turn (or 1 s)
                    if service.queue.waiting():
                        break
                    threading.Event().wait(0.005)
            return super().connected_switches()

    sb = Reconnecting(SWITCHES)
    service = make_service(tmp_path / "c.db", sb)
    service.apply(LEAF_SPINE, actor="alice")
    sb.disconnect("leaf2")
    service.on_switch_disconnected("leaf2")
    sb.armed = True
    reports = service.reconcile()  # the audit: leaf2 comes back during it
    assert sb.hook is not None
    sb.hook.join(timeout=30)
    assert "leaf2" not in {r.switch for r in reports}
    assert "drift.detected" not in actions(service)
    assert actions(service).count("switch.resync") == 1
    assert_in_sync(service, sb)
