"""What the audit log records of a request, and what it never records (the body).

The policy (docs/api.md, "Which requests write audit entries"): a change whose body was
read and parsed but is refused (an invalid intent 400, a failing proof 422) writes one
``intent.rejected`` entry with a bounded summary (the body's size and sha256, the first
problems, clipped); a request refused before that (401, 403, 404, 405, a malformed query
or body 400, a body too large 413) and a dry run write none; an applied change writes its
revision's entry and one per switch pushed."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from support.api_env import LEAF_SPINE, Env

from segctl.controller.audit import MAX_DETAIL_BYTES, AuditLog, cap_detail, verify_chain
from segctl.controller.store import canonical_json


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    assert e.call("PUT", "/v1/intent", body=LEAF_SPINE).status_code == 200
    return e


def _entries(env: Env) -> list[Any]:
    return env.service.audit_log.entries(limit=100_000)


def _megabyte_tenant(env: Env) -> dict[str, Any]:
    """Issue 15's body: a segment name of 1 MiB and a bad cidr, gateway and vlan."""
    tenant = copy.deepcopy(env.service.tenant_document("acme"))
    segment = tenant["segments"][0]
    segment.update(name="s" * (1 << 20), cidr="10.1.1.0/33", gateway="nope", vlan=99999)
    return tenant


def test_a_rejected_request_is_summarized_never_copied(env: Env) -> None:
    body = json.dumps(_megabyte_tenant(env))
    before = len(_entries(env))
    response = env.call("PUT", "/v1/tenants/acme", "acme-admin", body)
    assert response.status_code == 400
    assert len(response.body) < 64 * 1024, f"the answer is {len(response.body):,} bytes"
    assert response.json["error"]["problem_count"] >= 3
    entries = _entries(env)[before:]
    assert [e.action for e in entries] == ["intent.rejected"]
    detail = entries[0].detail
    stored = canonical_json(detail).encode()
    assert len(stored) <= MAX_DETAIL_BYTES, f"the entry is {len(stored):,} bytes"
    assert "s" * 1000 not in stored.decode()
    assert detail["body"] == {
        "bytes": len(body.encode()),
        "sha256": hashlib.sha256(body.encode()).hexdigest(),
    }
    assert detail["kind"] == "tenant:acme" and detail["reason"] == "invalid"
    assert 1 <= len(detail["problems"]) <= 5 and detail["problems_count"] >= len(detail["problems"])
    assert all(len(p["location"]) < 400 and len(p["message"]) < 400 for p in detail["problems"])
    assert verify_chain(env.service.store.db) == []


def test_reading_the_log_after_many_rejections_stays_small(env: Env) -> None:
    body = json.dumps(_megabyte_tenant(env))
    for _ in range(5):
        assert env.call("PUT", "/v1/tenants/acme", "acme-admin", body).status_code == 400
    response = env.call("GET", "/v1/audit?limit=1000", "auditor")
    assert response.status_code == 200 and len(response.body) < 100 * 1024
    assert env.call("GET", "/v1/audit?limit=1001", "auditor").status_code == 400


def test_an_oversized_detail_keeps_its_size_hash_and_small_fields(tmp_path: Path) -> None:
    from segctl.controller.store import Database

    log = AuditLog(Database(tmp_path / "a.db"))
    big = {"error": "x" * 100_000, "switch": "leaf1", "count": 3}
    entry = log.append(actor="system", action="switch.push_failed", object="switch/leaf1", detail=big)
    text = canonical_json(big).encode()
    assert entry.detail == {
        "switch": "leaf1",
        "count": 3,
        "truncated": {"bytes": len(text), "sha256": hashlib.sha256(text).hexdigest()},
    }
    assert cap_detail({"a": 1}) == {"a": 1}
    assert verify_chain(log.db) == []


def _tenant_label(env: Env, value: str) -> dict[str, Any]:
    tenant = copy.deepcopy(env.service.tenant_document("acme"))
    tenant["endpoints"][0].setdefault("labels", {})["touched"] = value
    return tenant


def _bad_ip(_env: Env) -> dict[str, Any]:
    bad = copy.deepcopy(LEAF_SPINE)
    bad["tenants"][0]["endpoints"][0]["ip"] = "10.9.9.9"
    return bad


def _misdeliver(_env: Env) -> dict[str, Any]:
    bad = copy.deepcopy(LEAF_SPINE)
    bad["tenants"][1]["endpoints"][0]["labels"] = {"bug": "misdeliver"}
    return bad


def _moved() -> dict[str, Any]:
    moved = copy.deepcopy(LEAF_SPINE)
    moved["tenants"][0]["endpoints"][0]["attach"] = "leaf2:20"
    return moved


# (what, method, path, role, body, status, the audit actions it writes)
POLICY: list[tuple[str, str, str, str | None, Any, int, list[str]]] = [
    ("no token", "PUT", "/v1/intent", None, _bad_ip, 401, []),
    ("auditor writes", "PUT", "/v1/intent", "auditor", _bad_ip, 403, []),
    ("other tenant", "PUT", "/v1/tenants/globex", "acme-admin", _bad_ip, 403, []),
    ("unknown path", "PUT", "/v1/nothing", "admin", _bad_ip, 404, []),
    ("wrong method", "DELETE", "/v1/intent", "admin", None, 405, []),
    ("bad query", "PUT", "/v1/intent?dry_run=maybe", "admin", _bad_ip, 400, []),
    ("not JSON", "PUT", "/v1/intent", "admin", lambda env: "{nope", 400, []),
    ("alias", "PUT", "/v1/intent", "admin", lambda env: "x: *a", 400, []),
    ("invalid intent", "PUT", "/v1/intent", "admin", _bad_ip, 400, ["intent.rejected"]),
    ("invalid, dry run", "PUT", "/v1/intent?dry_run=true", "admin", _bad_ip, 400, []),
    ("tenant not an object", "PUT", "/v1/tenants/acme", "acme-admin", lambda env: [1], 400,
     ["intent.rejected"]),
    ("failing proof", "PUT", "/v1/intent", "admin", _misdeliver, 422, ["intent.rejected"]),
    ("failing proof, dry run", "PUT", "/v1/intent?dry_run=true", "admin", _misdeliver, 200, []),
    ("same intent", "PUT", "/v1/intent", "admin", lambda env: LEAF_SPINE, 200, []),
    ("tenant update", "PUT", "/v1/tenants/acme", "acme-admin", lambda env: _tenant_label(env, "a"), 200,
     ["tenant.update", "intent.live"]),  # a label: no flow changes, no push
    ("intent update", "PUT", "/v1/intent", "admin", lambda env: _moved(), 200,
     ["intent.apply", "switch.push", "intent.live"]),
    ("live proof", "POST", "/v1/verify", "auditor", None, 200, ["verify.live"]),
    ("read", "GET", "/v1/audit", "auditor", None, 200, []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "method", "path", "role", "body", "status", "actions"), POLICY, ids=[p[0] for p in POLICY]
)
def test_which_requests_write_audit_entries(
    env: Env, what: str, method: str, path: str, role: str | None, body: Any, status: int, actions: list[str]
) -> None:
    before = len(_entries(env))
    response = env.call(method, path, role, body(env) if body else None)
    assert response.status_code == status, (what, response.text[:300])
    written = [e.action for e in _entries(env)[before:]]
    assert sorted(set(written)) == sorted(set(actions)), what
    assert verify_chain(env.service.store.db) == []


def test_a_document_with_very_many_problems_lists_some_and_counts_all(env: Env) -> None:
    body = '{"fabric": {"switches": []}, "tenants": [' + "1," * 5000 + "1]}"
    response = env.call("PUT", "/v1/intent", "admin", body)
    assert response.status_code == 400
    error = response.json["error"]
    assert "tenants[0]" in [p["location"] for p in error["problems"]]
    assert "5,002 shape problems in all" in error["message"]  # and the empty switch list
    assert len(response.body) < 64 * 1024
