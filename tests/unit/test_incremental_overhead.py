"""IncrementalVerifier's fixed cost per call: what it skips must not change any report.

An unchanged call (same intent, same flows) runs nothing and returns the last report with a
fresh time; a one-policy change computes the expectations of the changed tenant's sources
only and proves its part again. Every report is compared with a fresh ``verify`` of the
same inputs (JSON minus ``generated`` and ``engine``), on intents with shared services and
on tables with violations. No mocks: the real engine's work counter says what it ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path

import pytest
from support.mutations import MUTATIONS
from support.reports import norm

from segctl.flows.compiler import compile_network
from segctl.openflow.ofctl import Flow, parse_flows
from segctl.topology.analysis import expected_reachability
from segctl.topology.load import load_intent_text
from segctl.topology.network import Network, resolve
from segctl.topology.synthetic import synthetic_intent
from segctl.verifier.expectations import Expectations
from segctl.verifier.incremental import IncrementalVerifier, Stats
from segctl.verifier.report import VerificationReport
from segctl.verifier.verify import verify

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
Tables = dict[str, list[Flow]]

#: Intent edits per example: (name, old text, new text). Each changes one tenant's policy or
#: the shared service, nothing else.
EDITS: dict[str, tuple[str, str, str]] = {
    "leaf-spine-port": ("leaf-spine", "{proto: tcp, port: 8080}", "{proto: tcp, port: 8081}"),
    "shared-dns-port": ("shared-dns", "{proto: udp, port: 53}", "{proto: udp, port: 5353}"),
}


def drop_dns_commit(lines: dict[str, list[str]]) -> None:
    """s1 no longer commits (and passes) one consumer's UDP DNS queries: black-holed."""
    i = next(i for i, line in enumerate(lines["s1"]) if line.startswith("table=30,") and "udp_dst=53" in line)
    del lines["s1"][i]


#: Table mutations with violations, per example (test_mutations.py's are leaf-spine's).
VIOLATIONS = {
    "leaf-spine": [MUTATIONS[0][0], MUTATIONS[5][0]],
    "shared-dns": [drop_dns_commit, drop_dns_commit],
}


def _visits(v: IncrementalVerifier) -> int:
    """Table visits its engine made so far (the real engine's own work counter)."""
    engine = v._engine
    return 0 if engine is None else engine.work()["table visits"]


@cache
def text_of(name: str) -> str:
    return (EXAMPLES / f"{name}.yaml").read_text()


def lines_of(network: Network) -> dict[str, list[str]]:
    return {sw: p.flows_text().splitlines() for sw, p in compile_network(network).items()}


def parse(lines: Mapping[str, list[str]]) -> Tables:
    return {sw: parse_flows("\n".join(ls)) for sw, ls in lines.items()}


@cache
def state(example: str, old: str = "", new: str = "", mutation: str = "") -> tuple[Network, Tables]:
    text = text_of(example).replace(old, new) if old else text_of(example)
    network = resolve(load_intent_text(text, source=example))
    lines = lines_of(network)
    if mutation:
        mutations = [m for ms in VIOLATIONS.values() for m in ms] + [m for m, _ in MUTATIONS]
        next(m for m in mutations if m.__name__ == mutation)(lines)
    return network, parse(lines)


def step(v: IncrementalVerifier, network: Network, tables: Tables) -> tuple[VerificationReport, Stats]:
    report = v.verify(network, tables)
    assert norm(report) == norm(verify(network, tables))
    assert v.stats is not None
    return report, v.stats


@pytest.mark.parametrize("example", ["leaf-spine", "shared-dns", "two-tenants"])
def test_unchanged_call_runs_nothing_and_equals_full(example: str) -> None:
    network, tables = state(example)
    v = IncrementalVerifier()
    first = v.verify(network, tables)
    visits = _visits(v)
    # An equal network (resolved again) and equal flows (parsed again): other objects.
    again_network = resolve(load_intent_text(text_of(example), source=example))
    again_tables = parse(lines_of(again_network))
    report, stats = step(v, again_network, again_tables)
    assert stats.mode == "unchanged"
    assert _visits(v) == visits  # no table visited: nothing re-indexed, run or checked
    assert (stats.reproven, stats.reindexed, stats.changed_views) == (0, 0, 0)
    assert report.network is again_network
    assert norm(report) == norm(first)


def test_unchanged_report_is_a_fresh_copy() -> None:
    network, tables = state("two-tenants")
    v = IncrementalVerifier()
    first = v.verify(network, tables)
    expected = norm(first)
    first.matrix[0].clear()
    first.properties.clear()
    first.findings.append(first.findings[0] if first.findings else None)  # type: ignore[arg-type]
    second = v.verify(network, tables)
    assert v.stats is not None and v.stats.mode == "unchanged"
    assert norm(second) == expected
    assert second.generated >= first.generated and second.seconds < 1.0
    second.matrix.clear()
    assert norm(v.verify(network, tables)) == expected


def test_changed_flow_line_is_not_unchanged() -> None:
    """The same flows with another line number: the traces would show it, so no fast path."""
    network, tables = state("leaf-spine", mutation="drop_egress_guard")
    v = IncrementalVerifier()
    v.verify(network, tables)
    shifted = {sw: parse_flows("\n" + "\n".join(f.text for f in flows)) for sw, flows in tables.items()}
    report, stats = step(v, network, shifted)
    assert not report.ok
    assert stats.mode != "unchanged" and stats.reindexed == len(tables)


@pytest.mark.parametrize("edit", list(EDITS))
def test_expectations_update_equals_expected_reachability(edit: str) -> None:
    example, old, new = EDITS[edit]
    before = state(example)[0]
    after = state(example, old, new)[0] if old else before
    exp = Expectations.of(after, Expectations.of(before))
    full = Expectations.of(after)
    assert list(exp.reach.items()) == list(expected_reachability(after).items())
    assert exp.rows == full.rows and exp.shared == full.shared and exp.owners_key == full.owners_key
    assert exp.shared_keys == full.shared_keys
    assert len(exp.reach) == len(expected_reachability(after))


def test_policy_change_recomputes_only_its_tenants_sources() -> None:
    intent = synthetic_intent(k=4, tenants=4, endpoints=16)
    doc = intent.model_dump(mode="json", by_alias=True, exclude_none=True)
    doc["tenants"][1]["policies"][0]["services"][0]["ports"] = [{"lo": 9000, "hi": 9000}]
    old, new = resolve(intent), resolve(type(intent).model_validate(doc))
    changed_tenant = new.intent.tenants[1].name
    old_tables, new_tables = parse(lines_of(old)), parse(lines_of(new))
    v = IncrementalVerifier()
    v.verify(old, old_tables)
    kept = v._expectations
    assert kept is not None and v.stats is not None and v.stats.reproven == v.stats.parts
    parts = dict(v._kept)
    _, stats = step(v, new, new_tables)
    assert stats.mode == "incremental"
    mine = [ep.key for ep in new.endpoints if ep.tenant == changed_tenant]
    exp = v._expectations
    assert exp is not None and exp.changed == frozenset(mine)
    others = [ep.key for ep in new.endpoints if ep.tenant != changed_tenant]
    assert all(exp.rows.get(k) is kept.rows.get(k) for k in others)  # reused, not rebuilt
    # the parts of the other tenants that use none of its views are kept, the same objects
    assert 1 <= stats.reproven < stats.parts
    assert changed_tenant not in [name for name, k in v._kept.items() if k is parts.get(name)]
    assert sum(1 for name, k in v._kept.items() if k is parts.get(name)) == stats.parts - stats.reproven
    # The same state again: the fast path.
    _, stats = step(v, new, new_tables)
    assert stats.mode == "unchanged" and stats.reproven == 0


@pytest.mark.parametrize("example", ["leaf-spine", "shared-dns"])
def test_sequences_with_violations_and_shared_services_equal_full(example: str) -> None:
    edit = next(e for e, (ex, _, _) in EDITS.items() if ex == example)
    _, old, new = EDITS[edit]
    first, last = (m.__name__ for m in VIOLATIONS[example])
    states = [
        state(example),
        state(example, mutation=first),
        state(example, mutation=first),  # unchanged, with violations
        (state(example, old, new)[0], state(example)[1]),  # new intent, old tables: violations
        state(example, old, new),
        state(example, old, new),  # unchanged
        state(example, mutation=last),
        state(example),
    ]
    v = IncrementalVerifier()
    modes, oks = [], []
    for network, tables in states:
        report, stats = step(v, network, tables)
        modes.append(stats.mode)
        oks.append(report.ok)
    assert modes[2] == "unchanged" and modes[5] == "unchanged"
    assert modes[3] == "incremental"
    assert oks == [True, False, False, False, True, True, False, True]
