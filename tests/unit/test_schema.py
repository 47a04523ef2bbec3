"""The exported JSON Schema accepts what the loader accepts (so editors never flag valid files).

A small JSON Schema evaluator (the keywords pydantic emits) checks documents against
``segctl schema``; the loader is the reference.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from segctl.cli.intent import intent_json_schema
from segctl.errors import IntentError
from segctl.topology.load import intent_from_document

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCHEMA = intent_json_schema()


def conforms(instance: Any, schema: dict[str, Any], root: dict[str, Any] = SCHEMA) -> bool:
    """Evaluate the subset of JSON Schema that pydantic emits."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return conforms(instance, root["$defs"][name], root)
    if "anyOf" in schema and not any(conforms(instance, s, root) for s in schema["anyOf"]):
        return False
    if "enum" in schema and instance not in schema["enum"]:
        return False
    if "const" in schema and instance != schema["const"]:
        return False
    kind = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if kind is not None and not checks[kind](instance):
        return False
    if isinstance(instance, str) and "pattern" in schema and not re.search(schema["pattern"], instance):
        return False
    number = isinstance(instance, int) and not isinstance(instance, bool)
    if number and not schema.get("minimum", instance) <= instance <= schema.get("maximum", instance):
        return False
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0):
            return False
        if "items" in schema and not all(conforms(v, schema["items"], root) for v in instance):
            return False
    if isinstance(instance, dict) and kind == "object":
        props = schema.get("properties", {})
        if any(key not in instance for key in schema.get("required", [])):
            return False
        extra = schema.get("additionalProperties", True)
        for key, value in instance.items():
            sub = props.get(key, extra)
            if sub is False or (isinstance(sub, dict) and not conforms(value, sub, root)):
                return False
    return True


def loader_accepts(document: Any) -> bool:
    try:
        intent_from_document(document)
    except IntentError:
        return False
    return True


def test_schema_is_json_with_draft_and_title() -> None:
    text = json.dumps(SCHEMA)
    assert json.loads(text)["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["title"] == "segctl intent"
    assert SCHEMA["additionalProperties"] is False
    top = {"version", "fabric", "service_sets", "logging", "guardrails", "tenants", "shared_services"}
    assert set(SCHEMA["properties"]) == top


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_conform_to_the_schema(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    assert loader_accepts(document)
    assert conforms(document, SCHEMA)


SHORT_FORMS = [
    ("attach", "leaf1:10"),
    ("attach", {"switch": "leaf1", "port": 10}),
    ("link", "leaf1:1 <-> spine1:1"),
    ("link", "leaf1:1<->spine1:1"),
    ("link", {"a": "leaf1:1", "b": {"switch": "spine1", "port": 1}}),
    ("ports", 80),
    ("ports", "8000-8080"),
    ("ports", [80, "443", "8000-8080", {"lo": 1, "hi": 2}]),
    ("port", 53),
    ("dpid", 1),
    ("dpid", "0x0000000000000101"),
    ("dpid", "00:00:00:00:00:00:01:01"),
    ("dpid", "257"),
    ("icmp", {"type": 8}),
    ("icmp", {"type": 3, "code": 4}),
    ("icmp", {"type": 0, "code": 0}),
]


def _document_with(kind: str, value: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "fabric": {
            "switches": [{"name": "leaf1", "dpid": 1}, {"name": "spine1", "dpid": 2}],
            "links": ["leaf1:1 <-> spine1:1"],
        },
        "tenants": [
            {
                "name": "t",
                "segments": [{"name": "s", "cidr": "10.0.0.0/24"}],
                "endpoints": [
                    {
                        "name": "e",
                        "segment": "s",
                        "mac": "02:00:00:00:00:01",
                        "ip": "10.0.0.2",
                        "attach": "leaf1:9",
                    }
                ],
                "policies": [
                    {
                        "name": "p",
                        "from": {"endpoint": "e"},
                        "to": {"segment": "s"},
                        "services": [{"proto": "tcp"}],
                    }
                ],
            }
        ],
    }
    if kind == "attach":
        d["tenants"][0]["endpoints"][0]["attach"] = value
    elif kind == "link":
        d["fabric"]["links"] = [value]
    elif kind in ("ports", "port"):
        d["tenants"][0]["policies"][0]["services"] = [{"proto": "tcp", kind: value}]
    elif kind == "icmp":
        d["tenants"][0]["policies"][0]["services"] = [{"proto": "icmp", **value}]
    elif kind == "dpid":
        d["fabric"]["switches"][0]["dpid"] = value
    return d


@pytest.mark.parametrize(("kind", "value"), SHORT_FORMS, ids=[f"{k}={v}" for k, v in SHORT_FORMS])
def test_short_forms_are_valid_for_loader_and_schema(kind: str, value: Any) -> None:
    d = _document_with(kind, value)
    assert loader_accepts(d)
    assert conforms(d, SCHEMA)


BAD = [
    ("typo key", lambda d: d["tenants"][0]["endpoints"][0].update(adress="x")),
    ("bad link text", lambda d: d["fabric"].update(links=["leaf1:1 - spine1:1"])),
    ("bad attach text", lambda d: d["tenants"][0]["endpoints"][0].update(attach="leaf1")),
    ("bad proto", lambda d: d["tenants"][0]["policies"][0]["services"][0].update(proto="sctp")),
    ("bad mac", lambda d: d["tenants"][0]["endpoints"][0].update(mac="02:00:00:00:00")),
    ("missing fabric", lambda d: d.pop("fabric")),
    ("empty port list", lambda d: d["tenants"][0]["policies"][0]["services"][0].update(ports=[])),
    (
        "icmp type 256",
        lambda d: d["tenants"][0]["policies"][0].update(services=[{"proto": "icmp", "type": 256}]),
    ),
    (
        "icmp code -1",
        lambda d: d["tenants"][0]["policies"][0].update(services=[{"proto": "icmp", "type": 3, "code": -1}]),
    ),
]


@pytest.mark.parametrize(("name", "mutate"), BAD, ids=[b[0] for b in BAD])
def test_schema_and_loader_both_reject(name: str, mutate: Any) -> None:
    d = copy.deepcopy(_document_with("port", 80))
    mutate(d)
    assert not loader_accepts(d)
    assert not conforms(d, SCHEMA)
