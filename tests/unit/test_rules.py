"""The Rule model: construction checks, ofctl text, and the round trip through real OVS."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segctl.errors import CompileError
from segctl.flows.compiler import compile_network
from segctl.flows.pipeline import CLASSIFY, EGRESS, POLICY_SRC, TABLES, table_by_id
from segctl.flows.rules import Rule
from segctl.flows.services import port_range_masks
from segctl.openflow.ofctl import (
    Conjunction,
    Controller,
    Ct,
    Drop,
    GotoTable,
    Meter,
    Output,
    parse_flow,
)
from segctl.topology.network import load_network

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.yaml"))


def test_rule_text_is_canonical() -> None:
    match = [("dl_src", "02:00:00:00:00:01"), ("in_port", "3"), ("proto", "ip")]
    rule = Rule.make(CLASSIFY.id, 10, 0x5, match, [GotoTable(20)])
    assert (
        rule.to_ofctl()
        == "table=0,priority=10,cookie=0x5,in_port=3,ip,dl_src=02:00:00:00:00:01,actions=goto_table:20"
    )
    assert (
        Rule.make(CLASSIFY.id, 0, 0, [], [Drop()]).to_ofctl() == "table=0,priority=0,cookie=0x0,actions=drop"
    )


@pytest.mark.parametrize(
    ("table", "match", "actions", "message"),
    [
        (CLASSIFY.id, [("tcp_dst", "80")], [Drop()], "may not match"),
        (EGRESS.id, [("in_port", "1")], [GotoTable(10)], "may not use actions"),
        (
            POLICY_SRC.id,
            [("nw_src", "10.0.0.1")],
            [Conjunction(1, 1, 2), Ct(commit=True)],
            "only conjunction",
        ),
        (EGRESS.id, [("in_port", "1")], [Drop(), Output(2)], "drop cannot"),
        (EGRESS.id, [("in_port", "1")], [Output(2), Controller()], "meter"),
        (EGRESS.id, [("in_port", "1")], [], "no actions"),
        (EGRESS.id, [("no_such_field", "1")], [Drop()], "unknown match"),
        (CLASSIFY.id, [("in_port", "1")], [GotoTable(10), Meter(1)], "instruction order"),
        (7, [], [Drop()], "not a segctl pipeline table"),
    ],
)
def test_rule_rejects_what_its_table_does_not_declare(
    table: int, match: list[tuple[str, str]], actions: list[object], message: str
) -> None:
    with pytest.raises(CompileError, match=message):
        Rule.make(table, 10, 1, match, actions)  # type: ignore[arg-type]


def test_rule_refuses_unordered_or_repeated_fields() -> None:
    with pytest.raises(CompileError, match="canonical order"):
        Rule(EGRESS.id, 1, 1, (("dl_dst", "02:00:00:00:00:01"), ("in_port", "1")), (Drop(),))
    with pytest.raises(CompileError, match="twice"):
        Rule(EGRESS.id, 1, 1, (("in_port", "1"), ("in_port", "2")), (Drop(),))


def test_table_numbers_are_fixed_and_spaced() -> None:
    # 46, 47 (from an uplink, before forward) and 52, 53 (toward one, after it): goto_table
    # only goes forward
    assert [t.id for t in TABLES] == [0, 10, 20, 30, 40, 45, 46, 47, 50, 52, 53, 60, 70, 80]
    assert table_by_id(80) is EGRESS


@given(st.integers(1, 65535), st.integers(0, 65535))
def test_port_range_masks_cover_exactly(lo: int, span: int) -> None:
    hi = min(65535, lo + span)
    pairs = port_range_masks(lo, hi)
    covered = {p for value, mask in pairs for p in range(value, value + ((~mask) & 0xFFFF) + 1)}
    assert covered == set(range(lo, hi + 1))
    assert all(value & ~mask & 0xFFFF == 0 for value, mask in pairs)


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_compiled_rule_parses_back_to_itself(example: str) -> None:
    for prog in compile_network(load_network(ROOT / "examples" / f"{example}.yaml")).values():
        for rule in prog.rules:
            flow = parse_flow(rule.to_ofctl())
            assert (flow.table, flow.priority, flow.cookie) == (rule.table, rule.priority, rule.cookie)
            assert [a for a in flow.actions] == list(rule.actions), rule.to_ofctl()
