"""Hostile request bodies: every one a 400 (413 for size) naming the place, never a 500, and
nothing changes. Each case was a 500, a silent acceptance or (the alias bomb) a frozen
controller before the body was parsed under a budget (segctl.controller.body)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from support.api_env import LEAF_SPINE, Env

from segctl.controller.body import BadRequest, BodyLimits, PayloadTooLarge, parse_body


def alias_bomb(levels: int = 6) -> str:
    """The 341-byte body of issue 15 (levels=6): ten aliases of the level below, per level."""
    lines = ["l0: &l0 [x,x,x,x,x,x,x,x,x,x]"]
    lines += [f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    assert e.call("PUT", "/v1/intent", body=LEAF_SPINE).status_code == 200
    return e


def _acme_with(env: Env, **changes: Any) -> dict[str, Any]:
    tenant = env.service.tenant_document("acme")
    return {**tenant, **changes}


def _cases(env: Env) -> list[tuple[str, str, str, str]]:
    """(path, body, content type, what the message must say)."""
    tenant = env.service.tenant_document("acme")
    ep0 = tenant["endpoints"][0]
    labelled = _acme_with(env, endpoints=[{**ep0, "labels": {"x": "\ud800"}}, *tenant["endpoints"][1:]])
    seg0 = tenant["segments"][0]
    renamed = _acme_with(env, segments=[{**seg0, "name": "a\udfffb"}, *tenant["segments"][1:]])
    put_intent, put_tenant, js, ym = "/v1/intent", "/v1/tenants/acme", "application/json", "application/yaml"
    return [
        (put_tenant, alias_bomb(), ym, "line 1, column 5: YAML anchors (&l0)"),
        (put_intent, "fabric: *l0\n", ym, "line 1, column 9: YAML aliases (*l0)"),
        (put_intent, "x: &a [*a]\n", ym, "line 1, column 4: YAML anchors (&a)"),
        (put_intent, "[" * 1000 + "]" * 1000, js, "nested deeper than 64 levels"),
        (put_intent, "[" * 100 + "]" * 100, js, "nested deeper than 64 levels"),
        (put_intent, "[" * 2000 + "]" * 2000, ym, "maximum nesting depth (line 1, column"),
        (put_intent, "[" * 100 + "]" * 100, ym, "line 1, column 65: request body is nested"),
        (put_intent, '{"fabric": ' + "9" * 5000 + "}", js, "fabric: a number of 5,000"),
        (put_intent, "fabric: " + "9" * 5000 + "\n", ym, "line 1, column 9: a number of 5,000"),
        (put_intent, '{"fabric": NaN}', js, "fabric: NaN is not a JSON number"),
        (put_intent, '{"fabric": 1e999}', js, "fabric: inf is not a JSON number"),
        (put_tenant, json.dumps(labelled), "application/json",
         "request body: endpoints[web1].labels.x: the text has an unpaired surrogate U+D800 at character 1"),
        (put_tenant, json.dumps(renamed), "application/json",
         "request body: segments[a\\udfffb].name: the text has an unpaired surrogate U+DFFF at character 2"),
        (put_tenant, '{"\\udc00": 1}', js, "request body: a key has an unpaired surrogate"),
        (put_intent, "1: 2\nfabric: {}\n", ym, "line 1, column 1: a key must be text, not int 1"),
        (put_intent, "fabric: !!binary aGVsbG8=\n", ym, "YAML tags (tag:yaml.org,2002:binary)"),
        (put_intent, "fabric: !!python/object:os.system {}\n", ym, "YAML tags"),
    ]  # fmt: skip


def test_hostile_bodies_are_400_naming_the_place(env: Env) -> None:
    before = env.fingerprint()
    for path, body, content_type, expected in _cases(env):
        started = time.monotonic()
        response = env.call("PUT", path, "admin", body, content_type)
        seconds = time.monotonic() - started
        assert response.status_code == 400, (path, body[:60], response.status_code, response.text[:300])
        message = response.json["error"]["message"]
        assert expected in message, (body[:60], message)
        assert seconds < 2.0, (body[:60], seconds)
    assert env.fingerprint()[0] == before[0] and env.fingerprint()[2] == before[2]


def test_a_yaml_intent_with_dates_and_plain_values_still_loads(env: Env) -> None:
    """The limits refuse nothing an intent uses: the leaf-spine example as YAML is unchanged."""
    text = (Path(__file__).resolve().parents[2] / "examples/leaf-spine.yaml").read_text()
    response = env.call("PUT", "/v1/intent", "admin", text, "application/yaml")
    assert response.status_code == 200 and response.json["status"] == "unchanged"
    assert parse_body(b"when: 2001-12-14\nn: 0x1f\n", "application/yaml") == {"when": "2001-12-14", "n": 31}


def test_limits_are_configurable() -> None:
    small = BodyLimits(max_bytes=100, max_depth=3, max_nodes=10, max_number_chars=5)
    with pytest.raises(PayloadTooLarge):
        parse_body(b"[" + b"1," * 60 + b"1]", "", small)
    with pytest.raises(BadRequest, match="more than 10 values"):
        parse_body(json.dumps(list(range(20))).encode(), "", small)
    with pytest.raises(BadRequest, match="more than 10 values"):
        parse_body(b"[" + b"1," * 20 + b"1]", "application/yaml", small)
    with pytest.raises(BadRequest, match="deeper than 3"):
        parse_body(b'{"a": {"b": {"c": {"d": 1}}}}', "", small)
    with pytest.raises(BadRequest, match="request body: a: a number of 6 characters"):
        parse_body(b'{"a": 123456}', "", small)
    assert parse_body(b'{"a": [1, 2.5, "x", true, null]}', "", small) == {"a": [1, 2.5, "x", True, None]}


def test_a_body_that_is_not_utf8_names_the_byte(env: Env) -> None:
    import webob

    request = webob.Request.blank("/v1/intent", method="PUT")
    request.headers["Authorization"] = f"Bearer {env.token['admin']}"
    request.body = b'{"fabric":\n  "\xc3\x28"}'
    request.content_type = "application/json"
    response = request.get_response(env.app)
    assert response.status_code == 400
    assert response.json["error"]["message"] == "request body line 2, column 4: byte 15 (0xc3) is not UTF-8"
