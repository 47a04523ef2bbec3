"""IncrementalVerifier: after a change, its report equals a full ``verify`` of the new state,
and it proved again strictly fewer parts (tenants) than a full proof where the change is local.

Real compiled tables (``compile_network``), no mocks. Equality of the JSON reports (minus
``generated`` and ``engine.seconds``) catches anything reused that should not have been;
the stats assertions catch a re-run of everything.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.mutations import MUTATIONS, snat_intra_segment
from support.reports import norm

from segctl.flows.compiler import compile_network
from segctl.openflow.ofctl import Flow, parse_flows
from segctl.topology.load import load_intent_text
from segctl.topology.network import Network, resolve
from segctl.topology.schema import Intent
from segctl.topology.synthetic import synthetic_intent
from segctl.verifier.incremental import IncrementalVerifier, Stats
from segctl.verifier.report import VerificationReport
from segctl.verifier.verify import verify

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "leaf-spine.yaml"
TEXT = EXAMPLE.read_text()
Tables = dict[str, list[Flow]]

NEW_POLICY = """      - name: app-to-web
        from: {group: apps}
        to: {group: webs}
        services: [{proto: tcp, port: 9000}]
"""

DB_POLICY = "        services: [{proto: tcp, port: 5432}]\n"
DB1 = '{name: db1, segment: db, mac: "02:00:00:01:03:0a", ip: 10.1.3.10, attach: "leaf3:10", '
DB2 = '{name: db2, segment: db, mac: "02:00:00:01:03:0b", ip: 10.1.3.11, attach: "leaf4:10", '

#: One-policy changes of leaf-spine, as edits of the YAML text.
EDITS: dict[str, Callable[[str], str]] = {
    "base": lambda t: t,
    "port": lambda t: t.replace("{proto: tcp, port: 8080}", "{proto: tcp, port: 8081}"),
    "remove": lambda t: t.replace(
        "      - name: app-to-db\n        from: {group: apps}\n        to: {endpoint: db1}\n" + DB_POLICY, ""
    ),
    "add": lambda t: t.replace(DB_POLICY, DB_POLICY + NEW_POLICY),
    "stateless": lambda t: t.replace(DB_POLICY, DB_POLICY + "        stateful: false\n"),
}


def tables_of(network: Network) -> Tables:
    return {sw: parse_flows(p.flows_text()) for sw, p in compile_network(network).items()}


def flow_lines(network: Network) -> dict[str, list[str]]:
    return {sw: p.flows_text().splitlines() for sw, p in compile_network(network).items()}


def parse_lines(lines: dict[str, list[str]], header: str = "") -> Tables:
    return {sw: parse_flows((header + "\n" if header else "") + "\n".join(ls)) for sw, ls in lines.items()}


@cache
def leaf_spine(edit: str) -> tuple[Network, Tables]:
    text = EDITS[edit](TEXT)
    assert edit == "base" or text != TEXT, f"edit {edit} changed nothing"
    network = resolve(load_intent_text(text, source=edit))
    return network, tables_of(network)


@cache
def full_report(edit: str) -> dict[str, Any]:
    return norm(verify(*leaf_spine(edit)))


def check_step(v: IncrementalVerifier, network: Network, tables: Tables) -> tuple[VerificationReport, Stats]:
    """One incremental call; its report must equal a full run's on the same inputs."""
    report = v.verify(network, tables)
    assert norm(report) == norm(verify(network, tables))
    assert v.stats is not None
    return report, v.stats


def reran(stats: Stats) -> int:
    return stats.reproven


#: Edits after which fewer parts than a full proof's are proven again: all of them. The
#: compiler ranks policy priorities per context domain, so removing, adding or making a
#: policy of acme stateless moves only acme's policy rules (globex's part is reused); with
#: one global ranking they renumbered every later grant's rules, and everything was re-run.
LOCAL_EDITS = {"port", "remove", "add", "stateless"}


@pytest.mark.parametrize("edit", ["port", "remove", "add", "stateless"])
def test_one_policy_change_equals_full_run(edit: str) -> None:
    v = IncrementalVerifier()
    v.verify(*leaf_spine("base"))
    assert v.stats is not None and v.stats.mode == "full"
    full_runs = v.stats.parts
    for state in (edit, "base"):  # the change, then back again
        report, stats = check_step(v, *leaf_spine(state))
        assert report.ok
        assert norm(report) == full_report(state)
        assert stats.mode == "incremental"
        assert 0 < reran(stats) <= full_runs, stats
        if edit in LOCAL_EDITS:
            assert reran(stats) < full_runs, stats
            assert stats.changed_views > 0


def test_unchanged_intent_and_tables_reruns_nothing() -> None:
    network, tables = leaf_spine("base")
    v = IncrementalVerifier()
    first = v.verify(network, tables)
    again, stats = check_step(v, network, {sw: list(f) for sw, f in tables.items()})
    assert norm(again) == norm(first)
    assert stats.mode == "unchanged"
    assert (reran(stats), stats.changed_views, stats.reindexed) == (0, 0, 0)


def test_reordered_dump_equals_full_run() -> None:
    """Flows as ``dump-flows`` gives them: a header line, grouped by table, another order
    within a table; line numbers shift. Equal to a full run (traces carry the new lines)."""
    network = leaf_spine("base")[0]
    rng = random.Random(7)
    dumped: dict[str, list[str]] = {}
    for sw, lines in flow_lines(network).items():
        shuffled = list(lines)
        rng.shuffle(shuffled)
        dumped[sw] = sorted(shuffled, key=lambda s: int(s.split("table=")[1].split(",")[0]))
    v = IncrementalVerifier()
    v.verify(*leaf_spine("base"))
    check_step(v, network, parse_lines(dumped, "NXST_FLOW reply (xid=0x4):"))
    _, stats = check_step(v, network, parse_lines(dumped, "NXST_FLOW reply (xid=0x4):"))
    assert stats.mode == "unchanged"


@pytest.mark.parametrize(("mutate", "prop"), MUTATIONS, ids=[m.__name__ for m, _ in MUTATIONS])
def test_mutation_appears_then_disappears(mutate: Callable[[dict[str, list[str]]], None], prop: str) -> None:
    network = leaf_spine("base")[0]
    lines = flow_lines(network)
    mutated = {sw: list(ls) for sw, ls in lines.items()}
    mutate(mutated)
    v = IncrementalVerifier()
    v.verify(network, parse_lines(lines))
    assert v.stats is not None
    full_runs = v.stats.parts
    report, stats = check_step(v, network, parse_lines(mutated))
    assert not report.property(prop).holds
    if mutate is snat_intra_segment:
        # NAT writes ports the kept manager does not track: the verifier starts over (§10)
        assert stats.mode == "full" and "does not track" in stats.reason, stats
    else:
        # a mutated rule may now match every tenant's packets (drop_egress_guard drops its
        # metadata match): every part that used a view it changed is proven again, at most all
        assert 0 < reran(stats) <= full_runs and stats.changed_views > 0, stats
    # the same mutated flows with every line number shifted: traces must show the new lines
    report, stats = check_step(v, network, parse_lines(mutated, "NXST_FLOW reply (xid=0x4):"))
    assert not report.property(prop).holds
    report, stats = check_step(v, network, parse_lines(lines))
    assert report.ok
    assert norm(report) == full_report("base")


def _flip_port(intent: Intent, tenant: int) -> Intent:
    doc = intent.model_dump(mode="json", by_alias=True, exclude_none=True)
    doc["tenants"][tenant]["policies"][0]["services"][0]["ports"] = [{"lo": 9000, "hi": 9000}]
    return Intent.model_validate(doc)


def _remove_policy(intent: Intent, tenant: int) -> Intent:
    doc = intent.model_dump(mode="json", by_alias=True, exclude_none=True)
    del doc["tenants"][tenant]["policies"][-1]
    return Intent.model_validate(doc)


def _add_policy(intent: Intent, tenant: int) -> Intent:
    doc = intent.model_dump(mode="json", by_alias=True, exclude_none=True)
    policies = doc["tenants"][tenant]["policies"]
    policies.append(dict(policies[0], name="extra", services=[{"proto": "tcp", "port": 7777}]))
    return Intent.model_validate(doc)


def _make_stateless(intent: Intent, tenant: int) -> Intent:
    doc = intent.model_dump(mode="json", by_alias=True, exclude_none=True)
    doc["tenants"][tenant]["policies"][0]["stateful"] = False
    return Intent.model_validate(doc)


@pytest.mark.parametrize(
    "change",
    [_flip_port, _remove_policy, _add_policy, _make_stateless],
    ids=["port", "remove", "add", "stateless"],
)
def test_fat_tree_one_policy_change(change: Callable[[Intent, int], Intent]) -> None:
    """One policy of one tenant (of six) changed: only that tenant's part is proven again
    (and the shared provider's, whose replies use the consumer's views); the report equals
    a fresh ``verify()``. Policy priorities are ranked per tenant context, so adding,
    removing or making a policy stateless does not renumber the other tenants' rules."""
    intent = synthetic_intent(k=4, tenants=6, endpoints=30)
    old, new = resolve(intent), resolve(change(intent, 2))
    v = IncrementalVerifier()
    v.verify(old, tables_of(old))
    assert v.stats is not None
    assert v.stats.parts == 7  # six tenants and the provider
    report, stats = check_step(v, new, tables_of(new))
    assert report.ok
    assert stats.mode == "incremental"
    assert 1 <= stats.reproven <= 2 < stats.parts, stats
    assert stats.changed_views > 0


def test_endpoint_added_falls_back_to_full_run() -> None:
    text = TEXT.replace(f"      - {DB1}", f"      - {DB2}labels: {{role: db}}}}\n      - {DB1}")
    assert text != TEXT
    grown = resolve(load_intent_text(text))
    v = IncrementalVerifier()
    v.verify(*leaf_spine("base"))
    _, stats = check_step(v, grown, tables_of(grown))
    assert stats.mode == "full" and "endpoints" in stats.reason


def test_big_bdd_manager_starts_over() -> None:
    v = IncrementalVerifier(max_nodes=1, growth=0)
    v.verify(*leaf_spine("base"))
    report, stats = check_step(v, *leaf_spine("port"))
    assert stats.mode == "full" and "BDD manager" in stats.reason
    assert norm(report) == full_report("port")


STATES = [*EDITS, *(m.__name__ for m, _ in MUTATIONS)]


@cache
def _state(name: str) -> tuple[Network, Tables]:
    if name in EDITS:
        return leaf_spine(name)
    network = leaf_spine("base")[0]
    lines = flow_lines(network)
    mutate = next(m for m, _ in MUTATIONS if m.__name__ == name)
    mutate(lines)
    return network, parse_lines(lines)


@cache
def _full(name: str) -> dict[str, Any]:
    return norm(verify(*_state(name)))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(STATES), min_size=2, max_size=5))
def test_random_sequences_equal_full_runs(sequence: list[str]) -> None:
    v = IncrementalVerifier()
    for name in sequence:
        assert norm(v.verify(*_state(name))) == _full(name), f"after {sequence}"


@pytest.mark.parametrize("edit", ["port", "remove", "add", "stateless"])
def test_intent_changed_tables_not_yet(edit: str) -> None:
    """The new intent against the old tables (a live check before the change is applied):
    no table changed, only the changed tenant's grants, so only its part is proven again;
    the verdicts must be those of a full run (violations of the new intent)."""
    network, tables = leaf_spine(edit)
    old_tables = leaf_spine("base")[1]
    v = IncrementalVerifier()
    v.verify(leaf_spine("base")[0], old_tables)
    report, stats = check_step(v, network, old_tables)
    assert not report.ok
    assert (stats.reindexed, stats.changed_views) == (0, 0)
    assert 0 < reran(stats) < stats.parts
    report, stats = check_step(v, network, tables)
    assert report.ok


def test_controller_verifier_shares_one_incremental_verifier() -> None:
    """gate.default_verifier: gate then live check of the same flows (as the service sorts
    them, parsed one by one) gives a full run's report; a policy change after that too."""
    from segctl.controller.gate import default_verifier, flow_sort_key
    from segctl.openflow.ofctl import parse_flow

    run = default_verifier()

    def service_tables(network: Network) -> Tables:
        return {
            sw: sorted((parse_flow(r.to_ofctl()) for r in p.rules), key=flow_sort_key)
            for sw, p in compile_network(network).items()
        }

    def strip(doc: dict[str, Any]) -> dict[str, Any]:
        doc = dict(doc)
        doc.pop("generated")
        doc.pop("engine")
        return doc

    for edit in ("base", "base", "port"):
        network = leaf_spine(edit)[0]
        tables = service_tables(network)
        result = run(network, tables)
        assert result.passed
        assert strip(result.report) == norm(verify(network, tables))


def test_guardrail_and_address_set_changes_equal_full_runs() -> None:
    """Rows depend on more than a tenant's policies and groups: a guardrail decides before
    every tenant (and narrows shared services), and an address set changes whom a selector
    (or a guardrail peer) names. Each edit, with the tables compiled again and with the old
    tables, gives a full run's report (the kept rows were stale before)."""
    import copy

    import yaml

    from segctl.topology.load import intent_from_document

    example = Path(__file__).resolve().parents[2] / "examples" / "guardrails.yaml"
    base = yaml.safe_load(example.read_text())
    flipped = copy.deepcopy(base)
    flipped["guardrails"][1]["action"] = "allow"  # no-ssh-across-segments
    narrowed = copy.deepcopy(base)
    narrowed["tenants"][1]["address_sets"][1]["cidrs"] = ["10.20.9.0/24"]  # everyone: ops only
    v = IncrementalVerifier()
    v.verify(resolve(intent_from_document(base)), tables_of(resolve(intent_from_document(base))))
    for doc in (flipped, base, narrowed, base):
        network = resolve(intent_from_document(doc))
        check_step(v, network, tables_of(network))
        old = resolve(intent_from_document(base))
        check_step(v, network, tables_of(old))  # the intent changed, the tables not yet
