"""The wavefront engine (the default) and the reference engine give byte-identical reports
(:func:`support.reports.norm`: minus the time and the engine section) on random intents and
random hand-edited tables; partitioned proofs and the incremental verifier give the full
proof's report.

* random small intents (:func:`support.random_intents.small_intents`: tenants sharing
  addresses, IPv6, strict segments, stateful and stateless policies, shared services;
  and with guardrails, deny policies and priorities),
  compiled, and the same with random table edits (:func:`support.random_tables.mutated_flows`);
* the examples with random table edits (leaf-spine also with the named mutations);
* partitioned proofs (2 or 3 parts, either engine) merged against the single proof;
* an :class:`~segctl.verifier.incremental.IncrementalVerifier` over a random sequence of
  intent edits (port flip, policy added or removed, endpoint moved, ...) and table edits:
  every step's report equals a fresh full proof of both engines.

CI runs a fixed, derandomized set of examples (profile ``agree-ci``, about a minute on
two cores). A longer, random search, e.g. before changing an engine::

    SEGCTL_AGREE_PROFILE=agree-long pytest tests/property/test_engine_agreement_random.py

runs 25 times as many examples with a fresh seed (and hypothesis' example database, so a
failure found once is replayed first). A failure shows the intent, the edits and the
unified diff of the two normalized reports.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from support.agreement import (
    assert_same,
    assert_steps_agree,
    compiled_lines,
    partitioned,
    reference_and_wavefront,
)
from support.random_intents import intent_edits, small_intents
from support.random_tables import mutated_flows, parse_tables

from segctl.errors import IntentError
from segctl.topology.network import Network, load_network, resolve
from segctl.topology.schema import Intent
from segctl.verifier.incremental import IncrementalVerifier

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "agree-ci", derandomize=True, database=None, deadline=None, suppress_health_check=_QUIET
)
settings.register_profile("agree-long", derandomize=False, deadline=None, suppress_health_check=_QUIET)
PROFILE = os.environ.get("SEGCTL_AGREE_PROFILE", "agree-ci")
SCALE = 1 if PROFILE == "agree-ci" else 25


def agree(examples: int) -> settings:
    """The active profile with ``examples`` examples in CI (``SCALE`` times that otherwise)."""
    return settings(settings.get_profile(PROFILE), max_examples=examples * SCALE)


def network_of(document: dict[str, Any]) -> Network:
    note(yaml.safe_dump(document, sort_keys=False))
    return resolve(Intent.model_validate(document))


def check_both(network: Network, lines: dict[str, list[str]], context: str = "") -> str:
    """Both engines agree on ``lines``; their normalized report."""
    ref, wave = reference_and_wavefront(network, parse_tables(lines))
    assert_same(ref, wave, context=context)
    return ref


@agree(40)
@given(small_intents(), st.data())
def test_generated_intents_agree(document: dict[str, Any], data: st.DataObject) -> None:
    network = network_of(document)
    lines = compiled_lines(network)
    single = check_both(network, lines)
    assert json_ok(single), "compiled tables of a valid intent verify clean"
    engine, count = data.draw(st.sampled_from(["wavefront", "reference"])), data.draw(st.integers(2, 3))
    merged = partitioned(network, parse_tables(lines), engine, count)
    assert_same(single, merged, names=("single", f"{engine} in {count} parts"))


@agree(40)
@given(small_intents(ordered=True), st.data())
def test_ordered_intents_verify_clean_and_agree(document: dict[str, Any], data: st.DataObject) -> None:
    """Guardrails (allow, deny, pass; ties; cross-segment scope; cross-tenant narrowing) and
    deny policies: the compiled band verifies clean against the ordered semantics of the
    intent analysis, both engines give one report, and with random table edits too."""
    try:
        network = network_of(document)
    except IntentError:
        assume(False)  # e.g. a guardrail allow between segments without gateways
        return
    lines = compiled_lines(network)
    assert json_ok(check_both(network, lines)), "compiled tables of a valid ordered intent verify clean"
    mutated, edits = data.draw(mutated_flows(network, lines))
    check_both(network, mutated, "edits:\n  " + "\n  ".join(edits))


def json_ok(text: str) -> bool:
    return '"ok": true' in text


@agree(60)
@given(small_intents(), st.data())
def test_mutated_tables_agree(document: dict[str, Any], data: st.DataObject) -> None:
    network = network_of(document)
    lines, edits = data.draw(mutated_flows(network, compiled_lines(network)))
    context = "edits:\n  " + "\n  ".join(edits)
    note(context)
    single = check_both(network, lines, context)
    engine, count = data.draw(st.sampled_from(["wavefront", "reference"])), data.draw(st.integers(2, 3))
    merged = partitioned(network, parse_tables(lines), engine, count)
    assert_same(single, merged, names=("single", f"{engine} in {count} parts"), context=context)


@cache
def example(name: str) -> tuple[Network, dict[str, list[str]]]:
    network = load_network(EXAMPLES / f"{name}.yaml")
    return network, compiled_lines(network)


@agree(30)
@given(st.sampled_from(["leaf-spine", "shared-dns", "two-tenants"]), st.data())
def test_mutated_examples_agree(name: str, data: st.DataObject) -> None:
    network, base = example(name)
    lines, edits = data.draw(mutated_flows(network, base, max_edits=4, named=name == "leaf-spine"))
    context = "edits:\n  " + "\n  ".join(edits)
    note(context)
    check_both(network, lines, context)


@agree(12)
@given(
    st.booleans().flatmap(lambda o: st.tuples(st.just(o), small_intents(max_endpoints=6, ordered=o))),
    st.data(),
)
def test_incremental_steps_equal_fresh_proofs(
    drawn: tuple[bool, dict[str, Any]], data: st.DataObject
) -> None:
    """Each step: an intent edit (tables compiled again; with ordered rules also a guardrail's
    action or priority, a policy's action) or a table edit of the current tables."""
    ordered, document = drawn
    try:
        network = network_of(document)
    except IntentError:
        assume(False)
        return
    lines = compiled_lines(network)
    inc = IncrementalVerifier()
    history: list[str] = []
    for step in range(data.draw(st.integers(2, 5))):
        if data.draw(st.booleans()):
            edited, what = data.draw(intent_edits(document, ordered))
            try:
                candidate = resolve(Intent.model_validate(edited))
            except IntentError:
                what = None  # an endpoint moved onto a taken port: not a step
            if what is not None:
                document, network, lines = edited, candidate, compiled_lines(candidate)
                history.append(f"{step}: intent: {what}")
        else:
            lines, edits = data.draw(mutated_flows(network, lines, max_edits=1))
            history += [f"{step}: table: {e}" for e in edits]
        context = "steps:\n  " + "\n  ".join(history)
        note(context)
        tables = parse_tables(lines)
        assert_steps_agree(inc, network, tables, context)
