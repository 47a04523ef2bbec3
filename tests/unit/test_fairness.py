"""Fairness: who waits for whom, and what a change may cost.

The service with the memory switches and a verifier double that takes its time (sleeping in
small steps and calling ``progress`` between them, as the real one does every few
seconds). Real threads play the concurrent callers. Before the change queue, one lock
served everyone in no particular order: a tenant's dry run held an admin's change for the
whole of its proof (15 s in issue 15) and a link failure's reroute waited behind it."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.api_env import Env
from support.service_doubles import compile_tables, verify_tables

from segctl.controller.audit import AuditLog
from segctl.controller.gate import Progress, Verification
from segctl.controller.intake import CostLimitExceeded, CostLimits
from segctl.controller.memory_southbound import MemorySouthbound
from segctl.controller.queue import Busy, ChangeQueue, Preempted, Priority, TooManyWaiting
from segctl.controller.service import ControllerService
from segctl.controller.store import Database, Store
from segctl.openflow.ofctl import Flow
from segctl.topology.network import Network

ROOT = Path(__file__).resolve().parents[2]
LEAF_SPINE = yaml.safe_load((ROOT / "examples/leaf-spine.yaml").read_text())
SWITCHES = ["spine1", "spine2", "leaf1", "leaf2", "leaf3", "leaf4"]


class SlowVerifier:
    """``verify_tables``, taking ``seconds`` the first time it proves a network with an
    endpoint labelled ``slow: <word>`` (per word); calls ``progress`` every 20 ms meanwhile."""

    def __init__(self, seconds: float = 3.0) -> None:
        self.seconds = seconds
        self.stopped = 0
        self._done: set[str] = set()

    def __call__(
        self, network: Network, tables: Mapping[str, Sequence[Flow]], *, progress: Progress | None = None
    ) -> Verification:
        words = {ep.label_dict()["slow"] for ep in network.endpoints if "slow" in ep.label_dict()}
        slow = bool(words - self._done)
        end = time.monotonic() + (self.seconds if slow else 0.0)
        while time.monotonic() < end:
            time.sleep(0.02)
            if progress is not None:
                try:
                    progress("proving")
                except BaseException:
                    self.stopped += 1
                    raise
        self._done |= words
        return verify_tables(network, tables)


def labelled(**labels: str) -> dict[str, Any]:
    doc = copy.deepcopy(LEAF_SPINE)
    doc["tenants"][0]["endpoints"][0]["labels"] = dict(labels)
    return doc


@pytest.fixture
def svc(tmp_path: Path) -> ControllerService:
    db = Database(tmp_path / "f.db")
    service = ControllerService(
        Store(db),
        MemorySouthbound(SWITCHES),
        SlowVerifier(),
        AuditLog(db),
        compiler=compile_tables,
        queue=ChangeQueue(max_wait=30.0),
    )
    service.apply(LEAF_SPINE, actor="admin")
    return service


def in_thread(func: Any, *args: Any, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        try:
            out["result"] = func(*args, **kwargs)
        except BaseException as exc:  # handed to the test
            out["error"] = exc
        out["seconds"] = time.monotonic() - started
        out["ended"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def wait_until_running(svc: ControllerService, priority: Priority) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        holder = svc.queue.holder
        if holder is not None and holder.priority == priority:
            return
        time.sleep(0.005)
    raise AssertionError(f"nothing of priority {priority.name} is running")


def test_a_dry_run_gives_way_to_a_change(svc: ControllerService) -> None:
    """A tenant's slow dry run (5 s of proof) is running; an admin's change arrives and is
    done within a fraction of a second; the dry run is answered Preempted (503, retry)."""
    dry, dry_out = in_thread(
        svc.update_tenant, "acme", _acme(svc, slow="yes"), actor="acme-admin", dry_run=True
    )
    wait_until_running(svc, Priority.TRIAL)
    time.sleep(0.1)
    change, change_out = in_thread(svc.apply, labelled(note="admin"), actor="admin")
    change.join(10)
    dry.join(10)
    assert "error" not in change_out, change_out
    assert change_out["result"].status == "applied"
    assert change_out["seconds"] < 1.0, change_out["seconds"]
    assert isinstance(dry_out.get("error"), Preempted), dry_out
    assert svc.verifier.stopped == 1  # type: ignore[attr-defined]


def test_link_events_jump_the_queue(svc: ControllerService) -> None:
    """A slow change runs; a tenant's change waits; then a link goes down: when the running
    change ends, the reroute goes first."""
    slow, _ = in_thread(svc.apply, labelled(slow="yes"), actor="admin")
    wait_until_running(svc, Priority.CHANGE)
    tenant, tenant_out = in_thread(
        svc.update_tenant, "globex", svc.tenant_document("globex") | {"groups": []}, actor="g"
    )
    time.sleep(0.1)
    link, link_out = in_thread(svc.link_status, "leaf1", 1, False)
    for thread in (slow, tenant, link):
        thread.join(20)
    assert link_out["result"] is not None and tenant_out["result"] is not None
    assert link_out["ended"] < tenant_out["ended"], (link_out, tenant_out)


def test_a_wait_is_bounded(tmp_path: Path) -> None:
    db = Database(tmp_path / "b.db")
    svc = ControllerService(
        Store(db), MemorySouthbound(SWITCHES), SlowVerifier(2.0), AuditLog(db),
        compiler=compile_tables, queue=ChangeQueue(max_wait=0.3),
    )  # fmt: skip
    svc.apply(LEAF_SPINE, actor="admin")
    slow, _ = in_thread(svc.apply, labelled(slow="yes"), actor="admin")
    wait_until_running(svc, Priority.CHANGE)
    started = time.monotonic()
    with pytest.raises(Busy, match=r"no turn within 0\.3 s"):
        svc.apply(labelled(other="x"), actor="bob")
    assert time.monotonic() - started < 1.0
    slow.join(10)
    # the fabric's own events never give up waiting
    slow, _ = in_thread(svc.apply, labelled(slow="again"), actor="admin")
    wait_until_running(svc, Priority.CHANGE)
    assert svc.link_status("leaf1", 1, up=False) is not None
    slow.join(10)


def test_one_caller_cannot_fill_the_queue(svc: ControllerService) -> None:
    svc.queue.max_waiting = 2
    slow, _ = in_thread(svc.apply, labelled(slow="yes"), actor="admin")
    wait_until_running(svc, Priority.CHANGE)
    waiting = [in_thread(svc.apply, labelled(n=str(i)), actor="mallory") for i in range(2)]
    time.sleep(0.1)
    with pytest.raises(TooManyWaiting, match="mallory already has 2 requests waiting"):
        svc.apply(labelled(n="3"), actor="mallory")
    other, other_out = in_thread(svc.apply, labelled(n="4"), actor="alice")  # someone else may wait
    for thread, _ in [(slow, None), *waiting, (other, None)]:
        thread.join(20)
    assert other_out["result"].status == "applied"


def test_reads_do_not_wait_for_a_proof(svc: ControllerService) -> None:
    slow, _ = in_thread(svc.apply, labelled(slow="yes"), actor="admin")
    wait_until_running(svc, Priority.CHANGE)
    started = time.monotonic()
    assert svc.switch_flows("leaf1")["in_sync"] in (True, False)
    assert svc.switches() and svc.document()
    assert time.monotonic() - started < 0.5
    slow.join(10)


def _acme(svc: ControllerService, **labels: str) -> dict[str, Any]:
    tenant = copy.deepcopy(svc.tenant_document("acme"))
    tenant["endpoints"][0]["labels"] = dict(labels)
    return tenant


def _with_ports(doc: dict[str, Any], ports: list[Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["tenants"][0]["policies"][0]["services"] = [{"proto": "tcp", "ports": ports}]
    return doc


def test_cost_limits(tmp_path: Path) -> None:
    limits = CostLimits(
        endpoints=8, policies=5, ports=40, tenant_endpoints=5, tenant_policies=5, tenant_ports=20
    )
    db = Database(tmp_path / "c.db")
    svc = ControllerService(
        Store(db),
        MemorySouthbound(SWITCHES),
        verify_tables,
        AuditLog(db),
        compiler=compile_tables,
        limits=limits,
    )
    svc.apply(LEAF_SPINE, actor="admin")  # 8 endpoints, 2 policies, 5 ports
    with pytest.raises(
        CostLimitExceeded, match=r"the intent would have 44 ports .* at most 40 \(.*--max-ports\)"
    ):
        svc.apply(_with_ports(LEAF_SPINE, list(range(1000, 1041))), actor="admin")
    svc.apply(_with_ports(LEAF_SPINE, ["1-65535"]), actor="admin")  # 16 aligned blocks, 19 in all
    tenant = copy.deepcopy(svc.tenant_document("acme"))
    tenant["policies"][0]["services"] = [{"proto": "tcp", "ports": list(range(2000, 2021))}]
    before = len(svc.audit_log.entries(action="intent.rejected"))
    with pytest.raises(CostLimitExceeded, match=r"tenant acme would have 22 ports .*--max-tenant-ports"):
        svc.update_tenant("acme", tenant, actor="acme-admin", dry_run=True)
    assert len(svc.audit_log.entries(action="intent.rejected")) == before  # a dry run writes nothing
    with pytest.raises(CostLimitExceeded, match="--max-tenant-ports"):
        svc.update_tenant("acme", tenant, actor="acme-admin")
    rejected = svc.audit_log.entries(action="intent.rejected")
    assert rejected[-1].detail["reason"] == "cost" and rejected[-1].detail["kind"] == "tenant:acme"


def test_the_api_answers_413_429_and_503(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.service.limits = CostLimits(ports=6)
    assert env.call("PUT", "/v1/intent", body=LEAF_SPINE).status_code == 200
    response = env.call("PUT", "/v1/intent", body=_with_ports(LEAF_SPINE, list(range(1, 11))))
    assert response.status_code == 413 and response.json["error"]["type"] == "CostLimitExceeded"
    assert "--max-ports" in response.json["error"]["message"]
    busy = env.service.queue
    with busy.turn(Priority.CHANGE, "someone"):  # this thread holds the turn: others wait
        busy.max_wait = 0.1
        _, out = in_thread(env.call, "PUT", "/v1/intent?dry_run=true", "admin", labelled(a="b"))
        _.join(5)
        assert out["result"].status_code == 503 and out["result"].headers["Retry-After"] == "5"
        busy.max_waiting = 0
        _, out = in_thread(env.call, "PUT", "/v1/intent", "admin", labelled(a="c"))
        _.join(5)
        assert out["result"].status_code == 429 and out["result"].headers["Retry-After"] == "1"


def test_owners_take_turns(svc: ControllerService) -> None:
    """mallory queues three changes, then alice one: alice's goes right after mallory's first
    (first come first served would put it last)."""
    slow, _ = in_thread(svc.apply, labelled(slow="turns"), actor="admin")
    wait_until_running(svc, Priority.CHANGE)
    mallory = []
    for n in range(3):
        mallory.append(in_thread(svc.apply, labelled(m=str(n)), actor="mallory"))
        time.sleep(0.05)
    alice = in_thread(svc.apply, labelled(a="1"), actor="alice")
    for thread, _ in [(slow, None), *mallory, alice]:
        thread.join(20)
    ended = sorted(
        [(out["ended"], who) for who, (_, out) in [*(("mallory", m) for m in mallory), ("alice", alice)]]
    )
    assert [who for _, who in ended] == ["mallory", "alice", "mallory", "mallory"], ended
