"""A change's answer is a summary whose size does not grow with the fabric.

``PUT /v1/intent`` (and ``PUT /v1/tenants/{name}``, a rollback, ``POST /v1/verify``, the
422 of a failing proof) answers with verdicts, counts, the first violations and the ids of
the stored reports, never the reports themselves: a dense fabric of 641 endpoints was
answered with 76 MB (two copies of the reachability matrix and every flow pushed).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import webob
from support.api_env import LEAF_SPINE, Env

from segctl.controller.api import ApiApp
from segctl.controller.audit import AuditLog
from segctl.controller.auth import TokenStore
from segctl.controller.gate import (
    MAX_LISTED_DIFF,
    MAX_LISTED_VIOLATIONS,
    ChangeResult,
    SwitchDiff,
    Verification,
    Violation,
    default_compiler,
    default_verifier,
)
from segctl.controller.intake import intent_document
from segctl.controller.memory_southbound import MemorySouthbound
from segctl.controller.service import ControllerService
from segctl.controller.store import Database, Store
from segctl.openflow.ofctl import parse_flow
from segctl.topology.network import resolve
from segctl.topology.synthetic import two_rack

SUMMARY_KEYS = {
    "verdict",
    "safe",
    "seconds",
    "reused",
    "violation_count",
    "violations",
    "properties",
    "report_id",
}


def with_rate(pps: int) -> dict[str, Any]:
    doc = copy.deepcopy(LEAF_SPINE)
    globex = next(t for t in doc["tenants"] if t["name"] == "globex")
    next(e for e in globex["endpoints"] if e["name"] == "gweb2")["rate_limit"]["pps"] = pps
    return doc


def reports(env: Env, query: str = "") -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = env.call("GET", f"/v1/reports?{query}", "auditor").json["reports"]
    return listed


def test_an_applied_change_points_to_its_gate_and_live_reports(tmp_path: Path) -> None:
    env = Env(tmp_path)
    body = env.call("PUT", "/v1/intent", "admin", LEAF_SPINE).json
    assert body["status"] == "applied"
    gate, live = body["verification"], body["live_verification"]
    assert set(gate) == SUMMARY_KEYS and set(live) == SUMMARY_KEYS
    revision = body["revision"]["id"]
    assert gate["report_id"] == reports(env, f"kind=gate&revision={revision}")[0]["id"]
    assert live["report_id"] == reports(env, f"kind=live&revision={revision}")[0]["id"]
    full = env.call("GET", f"/v1/reports/{gate['report_id']}", "auditor").json
    assert full["kind"] == "gate" and full["report"]["verdict"] == gate["verdict"] == "pass"
    # POST /v1/verify points to the live report it wrote
    verified = env.call("POST", "/v1/verify").json["live_verification"]
    assert verified["report_id"] == reports(env, "kind=live")[0]["id"] != live["report_id"]
    # a dry run keeps no report
    dry = env.call("PUT", "/v1/intent?dry_run=true", "admin", with_rate(77)).json
    assert dry["status"] == "dry_run" and dry["verification"]["report_id"] is None
    assert dry["diff"] == [
        {
            "switch": "leaf3",
            "add_count": 0,
            "remove_count": 0,
            "set_meters_count": 1,
            "remove_meters_count": 0,
            "add": [],
            "remove": [],
            "set_meters": [{"burst": 200, "meter_id": 7, "rate": 77, "unit": "pktps"}],
            "remove_meters": [],
        }
    ]


def test_a_refused_change_points_to_the_gate_report_of_its_failed_proof(tmp_path: Path) -> None:
    env = Env(tmp_path)
    assert env.call("PUT", "/v1/intent", "admin", LEAF_SPINE).status_code == 200
    bad = copy.deepcopy(LEAF_SPINE)
    bad["tenants"][1]["endpoints"][0]["labels"] = {"bug": "misdeliver"}
    response = env.call("PUT", "/v1/intent", "admin", bad)
    assert response.status_code == 422
    error = response.json["error"]
    assert set(error["verification"]) == SUMMARY_KEYS
    newest_gate = reports(env, "kind=gate")[0]
    assert newest_gate["revision"] is None and newest_gate["verdict"] == "fail"
    assert error["verification"]["report_id"] == newest_gate["id"]
    assert error["verification"]["violation_count"] == len(error["verification"]["violations"]) > 0


def _flows(n: int) -> tuple[Any, ...]:
    return tuple(parse_flow(f"table=0,priority=10,in_port={i},actions=drop") for i in range(1, n + 1))


def test_violations_and_diffs_are_listed_up_to_a_cap_and_counted_in_full() -> None:
    violations = tuple(Violation("isolation", f"v{i}") for i in range(MAX_LISTED_VIOLATIONS + 15))
    report = {
        "properties": [
            {"id": "isolation", "holds": False, "violation_count": 40, "violations": ["..."] * 20},
            {"id": "spoof-guard", "holds": True, "violation_count": 0, "violations": []},
        ],
        "matrix": {"pairs": ["..."] * 1000},
    }
    failed = Verification(False, violations, report)
    small = SwitchDiff("s1", add=_flows(3))
    result = ChangeResult("dry_run", (small,), failed)
    doc = result.to_json()
    summary = doc["verification"]
    assert summary["violation_count"] == MAX_LISTED_VIOLATIONS + 15
    assert [v["message"] for v in summary["violations"]] == [f"v{i}" for i in range(MAX_LISTED_VIOLATIONS)]
    assert summary["properties"] == [
        {"id": "isolation", "holds": False, "violation_count": 40},
        {"id": "spoof-guard", "holds": True, "violation_count": 0},
    ]
    assert summary["report_id"] is None and "matrix" not in json.dumps(doc)
    assert doc["diff"][0]["add"] == [f"table=0,priority=10,in_port={i},actions=drop" for i in (1, 2, 3)]
    # over the cap (over all switches): counts only, the lists null
    big = (
        SwitchDiff("s1", add=_flows(MAX_LISTED_DIFF // 2)),
        SwitchDiff("s2", remove=_flows(MAX_LISTED_DIFF)),
    )
    doc = ChangeResult("dry_run", big, failed).to_json()
    assert [(d["switch"], d["add_count"], d["remove_count"], d["add"], d["remove"]) for d in doc["diff"]] == [
        ("s1", MAX_LISTED_DIFF // 2, 0, None, None),
        ("s2", 0, MAX_LISTED_DIFF, None, None),
    ]
    exactly = ChangeResult("dry_run", (SwitchDiff("s1", add=_flows(MAX_LISTED_DIFF)),), failed).to_json()
    assert len(exactly["diff"][0]["add"]) == MAX_LISTED_DIFF


def test_the_answer_to_a_dense_fabric_is_small(tmp_path: Path) -> None:
    """two_rack(20), 81 endpoints: the answer was 1.55 MB (two reachability matrices and 1,723
    flows), growing with the square of the endpoints (76 MB at 641); now 2.8 KB."""
    intent = two_rack(20)
    network = resolve(intent)
    db = Database(tmp_path / "dense.db")
    southbound = MemorySouthbound([s.name for s in network.switches])
    service = ControllerService(
        Store(db), southbound, default_verifier(), AuditLog(db), compiler=default_compiler()
    )
    tokens = TokenStore(db)
    app = ApiApp(service, tokens)
    request = webob.Request.blank("/v1/intent", method="PUT")
    request.headers["Authorization"] = f"Bearer {tokens.create('admin')[1]}"
    request.body = json.dumps(intent_document(intent)).encode()
    request.content_type = "application/json"
    response = request.get_response(app)
    assert response.status_code == 200, response.text
    assert len(response.body) < 16_000, len(response.body)
    body = response.json
    assert body["status"] == "applied" and body["live_verdict"] == "pass"
    assert {d["switch"]: d["add"] for d in body["diff"]} == {s.name: None for s in network.switches}
    assert sum(d["add_count"] for d in body["diff"]) > MAX_LISTED_DIFF
    stored = service.store.report(body["verification"]["report_id"])
    assert stored["kind"] == "gate" and len(stored["report"]["report"]["matrix"]["pairs"]) > 1000
