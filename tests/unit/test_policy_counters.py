"""Per-policy counters: which rules' counts are a policy's, and how /metrics shows them.

The real compiler's tables on in-memory switches (leaf-spine, and a policy between two
groups that compiles to a conjunction); counters are set on chosen rules as if packets
had matched them, then a reconciliation publishes the sums.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from segctl.controller import gate
from segctl.controller.audit import AuditLog
from segctl.controller.intake import intent_document
from segctl.controller.memory_southbound import MemorySouthbound
from segctl.controller.policy_counters import PolicyKey, policy_counts
from segctl.controller.service import ControllerService
from segctl.controller.store import Database, Store
from segctl.flows.pipeline import POLICY_DST, POLICY_SRC
from segctl.openflow.cookies import Kind, decode_cookie
from segctl.openflow.ofctl import Conjunction, Flow
from segctl.topology.network import load_network, resolve
from segctl.topology.synthetic import policy_pair

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples/leaf-spine.yaml"
SWITCHES = ["spine1", "spine2", "leaf1", "leaf2", "leaf3", "leaf4"]


def _service(
    tmp_path: Path, document: dict[str, Any] | None = None, switches: list[str] = SWITCHES
) -> tuple[ControllerService, MemorySouthbound]:
    db = Database(tmp_path / "c.db")
    sb = MemorySouthbound(switches)
    service = ControllerService(
        Store(db), sb, gate.default_verifier(), AuditLog(db), compiler=gate.default_compiler()
    )
    document = document or yaml.safe_load(EXAMPLE.read_text())
    assert service.apply(document, actor="alice").status == "applied"
    return service, sb


def _policy_rules(sb: MemorySouthbound, table: int, policy_index: int) -> tuple[list[Flow], list[Flow]]:
    """(deciding rules, clause rules) of policy ``policy_index`` in ``table``, all switches."""
    deciding: list[Flow] = []
    clauses: list[Flow] = []
    for name in sb.switches:
        for flow in sb.flows(name):
            _, kind, _, index = decode_cookie(flow.cookie)
            if flow.table != table or kind is not Kind.POLICY or index != policy_index:
                continue
            if any(isinstance(a, Conjunction) for a in flow.actions):
                clauses.append(flow)
            else:
                deciding.append(flow)
    return deciding, clauses


def _switch_of(sb: MemorySouthbound, flow: Flow) -> str:
    return next(name for name in sb.switches if flow in sb.flows(name))


def test_conjunction_counts_on_its_conj_id_rule_only(tmp_path: Path) -> None:
    intent = policy_pair(4, 4, 5)  # group A -> group B on five ports: one conjunction
    network = resolve(intent)
    service, sb = _service(tmp_path, intent_document(intent), [s.name for s in network.switches])
    deciding, clauses = _policy_rules(sb, POLICY_SRC.id, 0)
    assert len(deciding) == 1 and len(clauses) > 1, "a-to-b compiles to one conjunction"
    for flow in clauses:  # clause rules only vote; OVS counts on the conj_id rule
        sb.count(_switch_of(sb, flow), flow, 1000, 100_000)
    sb.count(_switch_of(sb, deciding[0]), deciding[0], 4, 240)
    service.reconcile()
    tenant = network.tenants[0].name
    assert service.metrics.policy_packets.value(tenant=tenant, policy="a-to-b", verdict="allow") == 4
    assert service.metrics.policy_bytes.value(tenant=tenant, policy="a-to-b", verdict="allow") == 240


def test_only_deciding_policy_src_rules_count(tmp_path: Path) -> None:
    service, sb = _service(tmp_path)
    network = load_network(EXAMPLE)
    doc = network.tenant_doc("acme")
    index = next(i for i, p in enumerate(doc.policies) if p.name == "web-to-app")
    deciding, clauses = _policy_rules(sb, POLICY_SRC.id, index)
    assert deciding and not clauses, "leaf-spine's web-to-app is small enough for direct rules"
    for flow in deciding:
        sb.count(_switch_of(sb, flow), flow, 5, 500)
    dst_deciding, _ = _policy_rules(sb, POLICY_DST.id, index)
    for flow in dst_deciding:  # the destination repeats the decision: not counted twice
        sb.count(_switch_of(sb, flow), flow, 1000, 100_000)
    miss = next(f for f in sb.flows("leaf1") if f.table == POLICY_SRC.id and f.priority == 0)
    sb.count("leaf1", miss, 7, 420)

    assert all(not r.drift for r in service.reconcile())
    m = service.metrics
    assert m.policy_packets.value(tenant="acme", policy="web-to-app", verdict="allow") == 5 * len(deciding)
    assert m.policy_bytes.value(tenant="acme", policy="web-to-app", verdict="allow") == 500 * len(deciding)
    assert m.policy_packets.value(tenant="", policy="default-deny", verdict="deny") == 7
    assert m.policy_packets.value(tenant="acme", policy="app-to-db", verdict="allow") == 0
    text = m.render()
    assert "# TYPE segctl_policy_packets_total counter" in text
    sample = 'segctl_policy_packets_total{policy="web-to-app",tenant="acme",verdict="allow"}'
    assert f"{sample} {5 * len(deciding)}" in text
    assert 'segctl_policy_bytes_total{policy="default-deny",tenant="",verdict="deny"} 420' in text


def test_every_policy_and_shared_service_has_a_series(tmp_path: Path) -> None:
    service, _ = _service(tmp_path)
    service.reconcile()
    keys = {dict(k)["policy"] for _, k, _ in service.metrics.policy_packets.samples()}
    network = load_network(EXAMPLE)
    assert {p.name for t in network.tenants for p in network.tenant_doc(t.name).policies} <= keys
    assert {f"shared:{s.name}" for s in network.shared_services} <= keys
    assert {"default-deny", "ct-invalid", "ct-established"} <= keys


def test_counts_follow_the_switch_and_forget_switches_the_intent_dropped(tmp_path: Path) -> None:
    service, sb = _service(tmp_path)
    miss = next(f for f in sb.flows("leaf2") if f.table == POLICY_SRC.id and f.priority == 0)
    sb.count("leaf2", miss, 3, 180)
    service.reconcile()
    m = service.metrics
    assert m.policy_packets.value(tenant="", policy="default-deny", verdict="deny") == 3
    sb.count("leaf2", miss, 2, 120)
    service.reconcile("leaf2")  # one switch's reconciliation keeps the others' last counts
    assert m.policy_packets.value(tenant="", policy="default-deny", verdict="deny") == 5
    sb.disconnect("leaf2")
    service.reconcile()  # an unreachable switch keeps its last counts
    assert m.policy_packets.value(tenant="", policy="default-deny", verdict="deny") == 5


def test_rules_of_another_revision_name_nothing() -> None:
    """A cookie whose index is past the current intent's policies is skipped, not an error."""
    from segctl.openflow.cookies import make_cookie
    from segctl.openflow.ofctl import GotoTable

    network = load_network(EXAMPLE)
    stale = Flow(POLICY_SRC.id, 100, make_cookie(POLICY_SRC.id, Kind.POLICY, 1, 999), (), (GotoTable(40),))
    assert policy_counts(network, {"leaf1": [(stale, 9, 900)]}) == {}
    miss = Flow(POLICY_SRC.id, 0, make_cookie(POLICY_SRC.id, Kind.PIPELINE, 0, 0), (), ())
    counts = policy_counts(network, {"leaf1": [(miss, 1, 60)]})
    assert counts == {PolicyKey("", "default-deny", "deny"): (1, 60)}
