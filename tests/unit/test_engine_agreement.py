"""The wavefront engine (the default) and the reference engine give byte-identical reports
(:func:`support.reports.norm`) on fixed cases: every example, every named mutation of
leaf-spine, hand-made loops, the synthetic fabrics the reference finishes in seconds;
partitioned proofs merged and an incremental sequence equal the single proof.

Random intents and random table edits: ``tests/property/test_engine_agreement_random.py``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
from support.agreement import (
    assert_same,
    assert_steps_agree,
    compiled_lines,
    doc,
    partitioned,
    reference_and_wavefront,
)
from support.mutations import MUTATIONS, Flows
from support.random_tables import parse_tables

from segctl.topology.load import load_intent_text
from segctl.topology.network import Network, load_network, resolve
from segctl.topology.schema import Intent
from segctl.topology.synthetic import policy_pair, synthetic_intent, two_rack
from segctl.verifier.incremental import IncrementalVerifier
from segctl.verifier.verify import ENGINES, verify

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_NAMES = ["two-tenants", "shared-dns", "leaf-spine", "icmp-types", "internet", "dual-stack"]

#: Hand-made edits of leaf-spine that make packets loop (the wavefront engine hands the
#: looping sources to the reference engine): (switch, rule put first).
LOOPS = {
    "spine-bounces-all": ("spine1", "table=0,priority=65535,actions=IN_PORT"),
    "leaf-bounces-uplink": ("leaf2", "table=0,priority=65535,in_port=1,actions=IN_PORT"),
}

SYNTHETIC: dict[str, Callable[[], Intent]] = {
    "two_rack-3": lambda: two_rack(3),
    "two_rack-6": lambda: two_rack(6),
    "synthetic-k4-t4-e30": lambda: synthetic_intent(k=4, tenants=4, endpoints=30),
    "policy_pair-4-4-3": lambda: policy_pair(4, 4, 3),
    "policy_pair-6-6-5x2": lambda: policy_pair(6, 6, 5, policies=2),
}


@cache
def example(name: str) -> tuple[Network, Flows]:
    network = load_network(EXAMPLES / f"{name}.yaml")
    return network, compiled_lines(network)


def mutated(name: str) -> tuple[Network, Flows]:
    """leaf-spine after the named mutation of :data:`MUTATIONS` or edit of :data:`LOOPS`."""
    network, base = example("leaf-spine")
    lines = copy.deepcopy(base)
    if name in LOOPS:
        switch, rule = LOOPS[name]
        lines[switch].insert(0, rule)
    else:
        dict((m.__name__, m) for m, _ in MUTATIONS)[name](lines)
    return network, lines


def icmp_widened(stateful: bool) -> tuple[Network, Flows]:
    """icmp-types (its policies made stateless when not ``stateful``) with every policy
    rule's ``icmp_type=8`` dropped by hand: the tables allow all ICMP, the intent echo only."""
    text = (EXAMPLES / "icmp-types.yaml").read_text()
    if not stateful:
        text = text.replace(
            "services: [{proto: icmp, type: 8}]",
            "services: [{proto: icmp, type: 8}]\n        stateful: false",
        )
    network = resolve(load_intent_text(text))
    lines = compiled_lines(network)
    widened = [line.replace(",icmp_type=8", "") for line in lines["s1"]]
    assert widened != lines["s1"], "no icmp_type=8 rule to widen"
    return network, {"s1": widened}


#: Cases of the partitioned proofs: name -> (network, lines).
CASES: dict[str, Callable[[], tuple[Network, Flows]]] = {
    **{f"example-{n}": (lambda n=n: example(n)) for n in EXAMPLE_NAMES},
    **{m.__name__: (lambda n=m.__name__: mutated(n)) for m, _ in MUTATIONS},
    **{n: (lambda n=n: mutated(n)) for n in LOOPS},
    "two_rack-3": lambda: (lambda net: (net, compiled_lines(net)))(resolve(two_rack(3))),
    "icmp-widened": lambda: icmp_widened(True),
    "icmp-widened-stateless": lambda: icmp_widened(False),
}


@cache
def single(case: str) -> str:
    """Both engines' single proof of ``case`` (they must agree)."""
    network, lines = CASES[case]()
    ref, wave = reference_and_wavefront(network, parse_tables(lines))
    assert_same(ref, wave, context=case)
    return ref


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_agrees(name: str) -> None:
    assert json.loads(single(f"example-{name}"))["ok"]


@pytest.mark.parametrize(("mutate", "prop"), MUTATIONS, ids=[m.__name__ for m, _ in MUTATIONS])
def test_mutation_agrees(mutate: Callable[[Flows], None], prop: str) -> None:
    report = json.loads(single(mutate.__name__))
    assert not next(p for p in report["properties"] if p["id"] == prop)["holds"]


@pytest.mark.parametrize("case", ["icmp-widened", "icmp-widened-stateless"])
def test_icmp_widened_agrees(case: str) -> None:
    """Both engines find the same ICMP types beyond echo request delivered."""
    report = json.loads(single(case))
    conformance = next(p for p in report["properties"] if p["id"] == "conformance")
    assert not conformance["holds"]
    assert all(
        v["packet"]["icmp_type"] != "8" and v["replay"]["confirmed_by_simulator"]
        for v in conformance["violations"]
    )


@pytest.mark.parametrize("name", list(LOOPS))
def test_loop_agrees(name: str) -> None:
    network, lines = mutated(name)
    assert verify(network, parse_tables(lines)).work["delegated"] > 0, "a loop the wavefront engine delegates"
    assert not json.loads(single(name))["ok"]


@pytest.mark.parametrize("name", list(SYNTHETIC))
def test_synthetic_agrees(name: str) -> None:
    network = resolve(SYNTHETIC[name]())
    ref, wave = reference_and_wavefront(network, parse_tables(compiled_lines(network)))
    assert_same(ref, wave, context=name)
    assert json.loads(ref)["ok"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_partitioned_equals_single(case: str, count: int, engine: str) -> None:
    network, lines = CASES[case]()
    merged = partitioned(network, parse_tables(lines), engine, count)
    assert_same(single(case), merged, names=("single", f"{engine} in {count} parts"), context=case)


LEAF_SPINE_TEXT = (EXAMPLES / "leaf-spine.yaml").read_text()
DB_POLICY = "        services: [{proto: tcp, port: 5432}]\n"
NEW_POLICY = """      - name: app-to-web
        from: {group: apps}
        to: {group: webs}
        services: [{proto: udp, port: 9000}]
        stateful: false
"""
APP_TO_DB = "      - name: app-to-db\n        from: {group: apps}\n        to: {endpoint: db1}\n" + DB_POLICY
#: (what, intent text edit or None, table mutation or None), applied in turn.
STEPS: list[tuple[str, Callable[[str], str] | None, Callable[[Flows], None] | None]] = [
    ("base", None, None),
    ("port flip", lambda t: t.replace("{proto: tcp, port: 8080}", "{proto: tcp, port: 8081}"), None),
    ("table: foreign output", None, MUTATIONS[4][0]),
    ("policy added", lambda t: t.replace(DB_POLICY, DB_POLICY + NEW_POLICY), None),
    ("table: commit without policy", None, MUTATIONS[5][0]),
    ("endpoint moved", lambda t: t.replace('attach: "leaf3:13"', 'attach: "leaf4:13"'), None),
    ("policy removed", lambda t: t.replace(APP_TO_DB, ""), None),
    ("table: drop spoof guard", None, MUTATIONS[1][0]),
]


def test_incremental_sequence_equals_fresh_proofs() -> None:
    """An intent edit compiles the tables again; a table edit changes the current ones."""
    text = LEAF_SPINE_TEXT
    network = resolve(load_intent_text(text))
    lines = compiled_lines(network)
    inc = IncrementalVerifier()
    modes = []
    for what, edit_intent, edit_tables in STEPS:
        if edit_intent is not None:
            new = edit_intent(text)
            assert new != text, f"{what} changed nothing"
            text, network = new, resolve(load_intent_text(new))
            lines = compiled_lines(network)
        if edit_tables is not None:
            edit_tables(lines)
        tables = parse_tables(lines)
        assert_steps_agree(inc, network, tables, what)
        assert inc.stats is not None
        modes.append(inc.stats.mode)
    assert modes.count("incremental") >= 4, modes  # most steps reuse parts


NO_ENDPOINTS = """
version: 1
fabric: {switches: [{name: s1, dpid: 1}]}
tenants: [{name: t1, segments: [{name: g1, cidr: 10.1.1.0/24}]}]
"""


def test_no_endpoints_partitioned() -> None:
    network = resolve(load_intent_text(NO_ENDPOINTS))
    tables = parse_tables(compiled_lines(network))
    full = doc(verify(network, tables))
    assert_same(full, partitioned(network, tables, "wavefront", 2), names=("single", "2 parts"))


def test_no_endpoints_incremental() -> None:
    network = resolve(load_intent_text(NO_ENDPOINTS))
    tables = parse_tables(compiled_lines(network))
    full = doc(verify(network, tables))
    assert_same(full, doc(IncrementalVerifier().verify(network, tables)), names=("single", "incremental"))


def test_disagreement_message_names_the_difference() -> None:
    """A failure says which property differs and shows both sides of the diff."""
    ref = single("foreign_output")
    other = json.loads(ref)
    isolation = next(p for p in other["properties"] if p["id"] == "isolation")
    isolation["violation_count"] += 1
    isolation["violations"][0]["src"] = "acme/nobody"
    with pytest.raises(AssertionError) as failure:
        assert_same(ref, json.dumps(other, indent=1))
    message = str(failure.value)
    assert "isolation: violations" in message and "differs: properties" in message
    assert '+     "src": "acme/nobody"' in message and '-     "src": ' in message


MUTUAL_SHARED = """
version: 1
fabric: {switches: [{name: s1, dpid: 1}]}
tenants:
  - name: t2
    segments: [{name: g1, cidr: 10.2.1.0/24, gateway: 10.2.1.1}]
    endpoints: [{name: e1, segment: g1, mac: "02:00:00:82:01:01", ip: 10.2.1.11, attach: "s1:10"}]
  - name: t3
    segments: [{name: g1, cidr: 10.3.1.0/24, gateway: 10.3.1.1}]
    endpoints: [{name: e1, segment: g1, mac: "02:00:00:83:01:01", ip: 10.3.1.11, attach: "s1:12"}]
shared_services:
  - {name: x0, provider: {tenant: t2, endpoints: [e1]}, consumers: [{tenant: t3}],
     services: [{proto: tcp, port: 53}]}
  - {name: x1, provider: {tenant: t3, endpoints: [e1]}, consumers: [{tenant: t2}],
     services: [{proto: tcp, port: 9100}]}
"""


def test_mutual_shared_services_verify_clean() -> None:
    """Two tenants each provide a service to the other: both engines agree, and the
    compiled tables must deliver both services."""
    network = resolve(load_intent_text(MUTUAL_SHARED))
    ref, wave = reference_and_wavefront(network, parse_tables(compiled_lines(network)))
    assert_same(ref, wave)
    report = json.loads(ref)
    assert report["ok"], [p["id"] for p in report["properties"] if not p["holds"]]
