"""The REST API in-process: every route x every role, error mapping, nothing changes on errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from support.api_env import LEAF_SPINE, LEAF_SPINE_TEXT, SWITCHES, Env

from segctl.controller.api import ROUTES
from segctl.controller.audit import verify_chain


def with_rate(doc: dict[str, Any], pps: int) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    globex = next(t for t in doc["tenants"] if t["name"] == "globex")
    next(e for e in globex["endpoints"] if e["name"] == "gweb2")["rate_limit"]["pps"] = pps
    return doc


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    assert e.call("PUT", "/v1/intent", body=LEAF_SPINE).status_code == 200
    assert e.call("POST", "/v1/verify").status_code == 200
    return e


def _tenant_body(env: Env, name: str) -> dict[str, Any]:
    tenant = copy.deepcopy(env.service.tenant_document(name))
    tenant["endpoints"][0].setdefault("labels", {})["touched"] = "yes"
    return tenant


# (method, path, body factory, kind): kind "read"/"write" (global) or "tenant:<name>:read|write"
CASES: list[tuple[str, str, Any, str]] = [
    ("GET", "/v1/intent", None, "read"),
    ("PUT", "/v1/intent", lambda env: with_rate(LEAF_SPINE, 1234), "write"),
    ("PUT", "/v1/intent?dry_run=true", lambda env: with_rate(LEAF_SPINE, 999), "write"),
    ("GET", "/v1/tenants/acme", None, "tenant:acme:read"),
    ("GET", "/v1/tenants/globex", None, "tenant:globex:read"),
    ("PUT", "/v1/tenants/acme", lambda env: _tenant_body(env, "acme"), "tenant:acme:write"),
    ("PUT", "/v1/tenants/globex", lambda env: _tenant_body(env, "globex"), "tenant:globex:write"),
    ("POST", "/v1/verify", None, "read"),
    ("GET", "/v1/report", None, "read"),
    ("GET", "/v1/reports", None, "read"),
    ("GET", "/v1/reports/1", None, "read"),
    ("GET", "/v1/switches", None, "read"),
    ("GET", "/v1/switches/leaf1/flows", None, "read"),
    ("POST", "/v1/reconcile", None, "write"),
    ("GET", "/v1/revisions", None, "read"),
    ("POST", "/v1/revisions/1/rollback", None, "write"),
    ("GET", "/v1/audit", None, "read"),
    ("GET", "/metrics", None, "read"),
]
ROLES = [None, "bad", "admin", "auditor", "acme-admin"]


def expected_status(kind: str, role: str | None) -> int:
    if role in (None, "bad"):
        return 401
    if role == "admin":
        return 200
    access = kind.rsplit(":", 1)[-1]
    if role == "auditor":
        return 200 if access == "read" else 403
    return 200 if kind.startswith("tenant:acme:") else 403


def test_cases_cover_every_route() -> None:
    templates = {(r.method, r.path) for r in ROUTES}
    covered = set()
    for method, path, _, _ in CASES:
        bare = path.split("?")[0]
        for r in ROUTES:
            parts, tparts = bare.split("/"), r.path.split("/")
            same_shape = r.method == method and len(parts) == len(tparts)
            if same_shape and all(t.startswith("{") or t == p for p, t in zip(parts, tparts, strict=True)):
                covered.add((r.method, r.path))
    assert covered == templates


@pytest.mark.parametrize("role", ROLES, ids=lambda r: str(r))
@pytest.mark.parametrize(("method", "path", "body", "kind"), CASES, ids=[f"{c[0]} {c[1]}" for c in CASES])
def test_rbac_matrix(env: Env, method: str, path: str, body: Any, kind: str, role: str | None) -> None:
    if path.startswith("/v1/revisions/1/rollback"):
        env.call("PUT", "/v1/intent", body=with_rate(LEAF_SPINE, 4321))  # something to roll back from
    before = env.fingerprint()
    want = expected_status(kind, role)
    response = env.call(method, path, role, body(env) if body else None)
    assert response.status_code == want, response.text
    assert "Traceback" not in response.text
    if want in (401, 403):
        assert env.fingerprint() == before, "a refused request changed something"
        assert "error" in response.json
        if want == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    changes = kind.endswith("write") and "dry_run" not in path and path != "/v1/reconcile"
    if want == 200 and changes:
        assert env.fingerprint() != before
    assert verify_chain(env.service.store.db) == []


def test_invalid_bodies_are_400_and_change_nothing(env: Env) -> None:
    before = env.fingerprint()
    bad = copy.deepcopy(LEAF_SPINE)
    bad["tenants"][0]["endpoints"][0]["ip"] = "10.9.9.9"
    for body, content_type in [
        ("{not json", "application/json"),
        ("", "application/json"),
        ("[1, 2]", "application/json"),
        (json.dumps(bad), "application/json"),
        ("fabric: [unclosed", "application/yaml"),
    ]:
        response = env.call("PUT", "/v1/intent", "admin", body or None, content_type)
        assert response.status_code == 400, (body, response.text)
    response = env.call("PUT", "/v1/intent", "admin", bad)
    problems = response.json["error"]["problems"]
    assert any(p["location"] == "tenants[acme].endpoints[web1].ip" for p in problems)
    assert env.call("PUT", "/v1/intent?dry_run=maybe", "admin", LEAF_SPINE).status_code == 400
    assert env.call("GET", "/v1/revisions?limit=abc").status_code == 400
    assert env.call("POST", "/v1/revisions/x/rollback").status_code in (400, 404)
    # a tenant-admin cannot smuggle shared services or another tenant in through its tenant
    tenant = env.service.tenant_document("acme")
    assert (
        env.call("PUT", "/v1/tenants/acme", "acme-admin", {**tenant, "shared_services": []}).status_code
        == 400
    )
    assert env.call("PUT", "/v1/tenants/acme", "acme-admin", {**tenant, "name": "globex"}).status_code == 400
    # nor guardrails: they are the admin's tier, above every tenant's policies
    rails = [{"name": "open", "priority": 0, "action": "allow", "services": [{"proto": "any"}]}]
    smuggled = {**tenant, "guardrails": rails}
    assert env.call("PUT", "/v1/tenants/acme", "acme-admin", smuggled).status_code == 400
    assert env.call("PUT", "/v1/tenants/newco", "acme-admin", {"name": "newco"}).status_code == 403
    assert env.fingerprint()[0] == before[0] and env.fingerprint()[2] == before[2]


def test_verification_failure_is_422_with_violations(env: Env) -> None:
    before = env.fingerprint()
    bad = copy.deepcopy(LEAF_SPINE)
    bad["tenants"][1]["endpoints"][0]["labels"] = {"bug": "misdeliver"}
    response = env.call("PUT", "/v1/intent", "admin", bad)
    assert response.status_code == 422
    error = response.json["error"]
    assert error["verification"]["verdict"] == "fail"
    assert {v["property"] for v in error["verification"]["violations"]} == {"isolation"}
    assert error["diff"]
    after = env.fingerprint()
    assert after[0] == before[0] and after[2] == before[2]


def test_dry_run_shows_diff_without_pushing(env: Env) -> None:
    before = env.fingerprint()
    response = env.call("PUT", "/v1/intent?dry_run=true", "admin", with_rate(LEAF_SPINE, 77))
    assert response.status_code == 200
    body = response.json
    assert body["status"] == "dry_run" and [d["switch"] for d in body["diff"]] == ["leaf3"]
    assert body["verification"]["verdict"] == "pass"
    assert env.fingerprint() == before


def test_yaml_body_and_round_trip(env: Env) -> None:
    response = env.call("PUT", "/v1/intent", "admin", LEAF_SPINE_TEXT, "application/yaml")
    assert response.status_code == 200 and response.json["status"] == "unchanged"
    got = env.call("GET", "/v1/intent", "auditor").json
    assert got["revision"]["id"] == 1
    again = env.call("PUT", "/v1/intent", "admin", got["intent"])
    assert again.json["status"] == "unchanged"


def test_rollback_and_revisions(env: Env) -> None:
    env.call("PUT", "/v1/intent", body=with_rate(LEAF_SPINE, 10))
    revisions = env.call("GET", "/v1/revisions", "auditor").json
    assert revisions["current"] == 2 and [r["id"] for r in revisions["revisions"]] == [2, 1]
    response = env.call("POST", "/v1/revisions/1/rollback")
    assert response.status_code == 200 and response.json["revision"]["parent"] == 1
    assert env.call("POST", "/v1/revisions/99/rollback").status_code == 404
    for bad in ("9" * 30, "%C2%B2", "-1"):  # a 30-digit id reached SQLite and was a 500; "²"
        response = env.call("POST", f"/v1/revisions/{bad}/rollback")
        assert response.status_code == 400 and "revision id" in response.json["error"]["message"], bad
    assert env.call("GET", "/v1/revisions", "auditor").json["current"] == 3  # nothing changed


def test_stored_reports_list_filter_and_page(env: Env) -> None:
    """Every gate and live report is listed (metadata only), newest first, and read by id."""
    env.call("PUT", "/v1/intent", body=with_rate(LEAF_SPINE, 10))  # revision 2: gate + live
    assert env.call("POST", "/v1/verify").status_code == 200  # another live of revision 2
    listed = env.call("GET", "/v1/reports", "auditor").json["reports"]
    # the fixture's apply (gate, live) and verify (live), then the same for revision 2
    assert [(r["kind"], r["revision"], r["verdict"]) for r in listed] == [
        ("live", 2, "pass"),
        ("live", 2, "pass"),
        ("gate", 2, "pass"),
        ("live", 1, "pass"),
        ("live", 1, "pass"),
        ("gate", 1, "pass"),
    ]
    ids = [r["id"] for r in listed]
    assert ids == sorted(ids, reverse=True)
    assert all(set(r) == {"id", "created_at", "revision", "kind", "verdict"} for r in listed)

    def ids_of(query: str) -> list[int]:
        response = env.call("GET", f"/v1/reports?{query}", "auditor")
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json["reports"]]

    assert ids_of("kind=gate") == [ids[2], ids[5]]
    assert ids_of("kind=live&revision=1") == [ids[3], ids[4]]
    assert ids_of("revision=2") == ids[:3]
    assert ids_of("revision=7") == [] and ids_of("kind=audit") == []
    assert ids_of("limit=2") == ids[:2]
    assert ids_of(f"limit=2&before={ids[1]}") == ids[2:4]
    assert ids_of(f"limit=2&before={ids[3]}") == ids[4:]
    assert ids_of(f"before={ids[-1]}") == []
    assert ids_of(f"kind=live&before={ids[1]}&limit=1000") == [ids[3], ids[4]]
    # by id: the same document /v1/report serves for the newest of each kind
    for kind, newest in (("live", ids[0]), ("gate", ids[2])):
        one = env.call("GET", f"/v1/reports/{newest}", "auditor")
        assert one.status_code == 200
        assert one.json == env.call("GET", f"/v1/report?kind={kind}", "auditor").json
    first_gate = env.call("GET", f"/v1/reports/{ids[5]}", "auditor").json
    assert (first_gate["kind"], first_gate["revision"], first_gate["id"]) == ("gate", 1, ids[5])
    assert first_gate["report"]["verdict"] == "pass"


def test_stored_reports_bad_parameters_and_unknown_id(env: Env) -> None:
    for query, parameter in [
        ("kind=nope", "kind"),
        ("kind=", "kind"),
        ("kind=LIVE", "kind"),
        ("revision=x", "revision"),
        ("revision=0", "revision"),
        ("revision=-1", "revision"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=abc", "limit"),
        ("limit=%C2%B2", "limit"),  # '²' is a digit to str.isdigit, not to int
        ("before=-3", "before"),
        ("before=1.5", "before"),
        ("before=" + "9" * 5000, "before"),  # more digits than int() takes
    ]:
        response = env.call("GET", f"/v1/reports?{query}", "auditor")
        assert response.status_code == 400, (query, response.text)
        message = response.json["error"]["message"]
        assert message.startswith(f"query parameter {parameter}="), (query, message)
    assert "expected gate, live, audit" in env.call("GET", "/v1/reports?kind=x").json["error"]["message"]
    assert "expected an integer 1..1000" in env.call("GET", "/v1/reports?limit=0").json["error"]["message"]
    for bad in ("abc", "-1", "1.0", "%C2%B2", "9" * 30):
        response = env.call("GET", f"/v1/reports/{bad}", "auditor")
        assert response.status_code == 400, (bad, response.text)
        assert response.json["error"]["message"].startswith("report id ")
    response = env.call("GET", "/v1/reports/999", "auditor")
    assert response.status_code == 404
    assert response.json["error"]["message"] == "report 999 does not exist"
    assert env.call("GET", "/v1/reports/1/extra").status_code == 404
    assert env.call("DELETE", "/v1/reports/1").status_code == 405


def test_not_found_and_method_not_allowed(env: Env) -> None:
    assert env.call("GET", "/v1/nothing").status_code == 404
    assert env.call("GET", "/v1/nothing", None).status_code == 401  # auth first: no leak
    assert env.call("GET", "/v1/tenants/nobody").status_code == 404
    assert env.call("GET", "/v1/switches/nosuch/flows").status_code == 404
    response = env.call("DELETE", "/v1/intent")
    assert response.status_code == 405 and set(response.headers["Allow"].split(", ")) == {
        "GET",
        "HEAD",
        "PUT",
    }


def test_switch_flows_and_audit(env: Env) -> None:
    flows = env.call("GET", "/v1/switches/leaf1/flows", "auditor").json
    assert flows["in_sync"] and flows["desired"] == flows["live"]
    switches = env.call("GET", "/v1/switches", "auditor").json["switches"]
    assert [s["name"] for s in switches] == SWITCHES and all(s["connected"] for s in switches)
    audit = env.call("GET", "/v1/audit?verify=true&action=intent.apply", "auditor").json
    assert audit["chain_problems"] == [] and [e["action"] for e in audit["entries"]] == ["intent.apply"]
    assert audit["entries"][0]["actor"].endswith("(admin)")


def test_metrics_exposition(env: Env) -> None:
    env.call("GET", "/v1/intent", None)
    text = env.call("GET", "/metrics", "auditor").text
    assert "# TYPE segctl_api_requests_total counter" in text
    assert 'segctl_api_requests_total{method="GET",route="/v1/intent",status="401"} 1' in text
    assert 'segctl_api_requests_total{method="PUT",route="/v1/intent",status="200"} 1' in text
    assert f'segctl_rules{{switch="leaf1"}} {len(env.service.desired("leaf1").flows)}' in text
    assert 'segctl_verification_pass{stage="gate"} 1' in text
    assert "segctl_verification_seconds_count" in text


def test_internal_error_has_no_traceback(tmp_path: Path) -> None:
    def broken(network: Any) -> Any:
        raise RuntimeError("compiler bug with secret detail")

    env = Env(tmp_path, compiler=broken)
    response = env.call("PUT", "/v1/intent", "admin", LEAF_SPINE)
    assert response.status_code == 500
    assert "Traceback" not in response.text and "secret detail" not in response.text
    assert env.service.store.current() is None


def test_metrics_method_label_is_bounded(env: Env) -> None:
    """Any method a client invents is counted as ``other``: 300 random methods, unauthenticated,
    must not make 300 label values (it did: one series per method)."""
    import random
    import re

    rng = random.Random(7)
    for _ in range(300):
        method = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(rng.randint(3, 12)))
        assert env.call(method, "/v1/intent", None).status_code == 401
    assert env.call("BREW", "/v1/intent").status_code == 405
    text = env.call("GET", "/metrics", "auditor").text
    methods = set(re.findall(r'segctl_api_requests_total\{method="([^"]*)"', text))
    assert methods <= {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"}, methods
    assert 'segctl_api_requests_total{method="other",route="unmatched",status="401"} 300' in text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/audit?x=%ff"),
        ("GET", "/v1/audit?actor=%ff%fe"),
        ("GET", "/v1/reports?kind=%ff"),
        ("GET", "/v1/revisions?limit=%ff"),
        ("GET", "/v1/revisions?%ff=1"),
        ("POST", "/v1/reconcile?switch=%C3"),
        ("PUT", "/v1/intent?dry_run=%ff"),
        ("POST", "/v1/revisions/1/rollback?dry_run=%ff"),
        ("GET", "/v1/tenants/%ff"),
        ("PUT", "/v1/tenants/%ff%fe"),
    ],
)
def test_query_and_path_that_are_not_utf8_are_400(env: Env, method: str, path: str) -> None:
    """Percent-encoded bytes that are not UTF-8, in a query parameter or a path parameter: a 400
    naming the parameter (they were 500s), and nothing changes."""
    before = env.fingerprint()
    response = env.call(method, path, body=LEAF_SPINE if method == "PUT" else None)
    assert response.status_code == 400, response.text
    message = response.json["error"]["message"]
    assert "not UTF-8" in message and ("query parameter" in message or "path parameter name" in message)
    assert env.fingerprint() == before


def test_a_405_on_a_path_that_is_not_utf8_answers(env: Env) -> None:
    response = env.call("POST", "/v1/tenants/%ff")
    assert response.status_code == 405 and "\\xff" in response.json["error"]["message"]


def test_a_utf8_tenant_name_in_the_path_is_decoded(env: Env) -> None:
    response = env.call("GET", "/v1/tenants/caf%C3%A9")
    assert response.status_code == 404 and response.json["error"]["message"] == "tenant café does not exist"


def test_head_is_a_get_without_a_body(env: Env) -> None:
    for path in ("/v1/intent", "/v1/revisions", "/metrics", "/v1/tenants/acme"):
        get, head = env.call("GET", path, "admin"), env.call("HEAD", path, "admin")
        assert head.status_code == 200 and head.body == b"", path
        assert head.headers["Content-Type"] == get.headers["Content-Type"]
        if path != "/metrics":  # the metrics count the GET itself
            assert int(head.headers["Content-Length"]) == len(get.body)
    assert env.call("HEAD", "/v1/intent", None).status_code == 401
    assert env.call("HEAD", "/v1/tenants/globex", "acme-admin").status_code == 403
    response = env.call("HEAD", "/v1/verify")
    assert response.status_code == 405 and response.headers["Allow"] == "POST"


def test_too_large_names_a_public_type(env: Env) -> None:
    from segctl.controller.api import MAX_BODY

    response = env.call("PUT", "/v1/intent", body="x" * (MAX_BODY + 1))
    assert response.status_code == 413
    assert response.json["error"]["type"] == "PayloadTooLarge"


@pytest.mark.parametrize(("method", "path", "body", "kind"), CASES, ids=[f"{c[0]} {c[1]}" for c in CASES])
def test_every_json_body_is_encoded_by_the_offload(
    env: Env, method: str, path: str, body: Any, kind: str
) -> None:
    """The controller encodes responses in an OS thread (a change's result over a dense fabric
    is tens of MB: seconds of CPU that would stop the event loop); the body sent is the one
    the offloaded call made, errors included."""
    from segctl.controller.api import encode_json

    made: list[bytes] = []

    def offload(func: Any, *args: Any) -> Any:
        result = func(*args)
        if func is encode_json:
            made.append(result)
        return result

    env.app.offload = offload
    response = env.call(method, path, body=body and body(env))
    if path == "/metrics":
        assert made == [] and response.content_type == "text/plain"
        return
    assert response.status_code == 200 and made == [response.body]
    made.clear()
    refused = env.call(method, path, role="bad", body=body and body(env))
    assert refused.status_code == 401 and made == [refused.body]
    if method == "PUT":
        made.clear()
        invalid = env.call(method, path, body={"tenants": 3})
        assert invalid.status_code == 400 and made == [invalid.body] and b"tenants" in invalid.body
