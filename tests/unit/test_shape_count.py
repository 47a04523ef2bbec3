"""Counting a big document's shape problems piece by piece (segctl.controller.shape)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from segctl.controller import shape
from segctl.controller.intake import MAX_SHAPE_PROBLEMS, intent_document, resolve_intent
from segctl.controller.shape import count_shape_problems, count_values
from segctl.errors import IntentError
from segctl.topology.schema import Intent
from segctl.topology.synthetic import synthetic_intent

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))


def _leaf_spine() -> dict[str, Any]:
    return yaml.safe_load((Path(__file__).parents[2] / "examples" / "leaf-spine.yaml").read_text())


def _full_count(document: Any) -> int:
    try:
        Intent.model_validate(document)
    except ValidationError as exc:
        return exc.error_count()
    return 0


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> int:
    """Pieces of 10 values, so that the examples themselves are cut into many."""
    monkeypatch.setattr(shape, "PIECE_VALUES", 10)
    return 10


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_a_valid_document_has_no_problem_in_any_piece(path: Path, small_pieces: int) -> None:
    document = yaml.safe_load(path.read_text())
    assert count_values(document) > 3 * small_pieces
    assert count_shape_problems(Intent, document, 0) == 0


def test_a_big_valid_document_has_no_problem_in_any_piece() -> None:
    document = intent_document(synthetic_intent(k=8, tenants=4, endpoints=2000))
    assert count_values(document) > 10 * shape.PIECE_VALUES
    assert count_shape_problems(Intent, document, 0) == 0


def test_problems_scattered_over_a_document_are_each_counted(small_pieces: int) -> None:
    """Problems in items of long lists, deep in an item, and an unknown key: the same count
    as pydantic's over the whole document."""
    document = _leaf_spine()
    tenant = document["tenants"][0]
    tenant["endpoints"][0]["ip"] = "not an address"
    tenant["endpoints"][-1]["mac"] = 7
    tenant["segments"].append({})  # two missing fields
    tenant["colour"] = "blue"  # unknown key
    document["fabric"]["switches"][0]["dpid"] = "x"
    assert count_values(document) > 5 * small_pieces
    full = _full_count(document)
    assert full >= 5
    assert count_shape_problems(Intent, document, 1000) == full


def test_the_count_stops_soon_after_the_most() -> None:
    document = _leaf_spine()
    document["tenants"][0]["segments"] = [{}] * 100_000
    counted = count_shape_problems(Intent, document, MAX_SHAPE_PROBLEMS)
    assert MAX_SHAPE_PROBLEMS < counted <= MAX_SHAPE_PROBLEMS + 2 * shape.PIECE_VALUES


def test_pydantic_never_sees_more_than_a_piece_of_a_hostile_document(monkeypatch: pytest.MonkeyPatch) -> None:
    """The largest value handed to one pydantic call, for a tenant of 100,000 empty segments:
    what bounds the time the interpreter lock is held."""
    seen: list[int] = []
    validate = shape._problems

    def spy(annotation: Any, value: Any) -> int:
        seen.append(count_values(value))
        return validate(annotation, value)

    monkeypatch.setattr(shape, "_problems", spy)
    document = _leaf_spine()
    document["tenants"][0]["segments"] = [{}] * 100_000
    count_shape_problems(Intent, document, MAX_SHAPE_PROBLEMS)
    assert seen and max(seen) <= shape.PIECE_VALUES + 1


def test_a_document_with_too_many_problems_is_refused_from_a_preview() -> None:
    document = _leaf_spine()
    document["tenants"][0]["segments"] = [{"name": f"s{i}"} for i in range(30_000)]
    with pytest.raises(IntentError) as caught:
        resolve_intent(copy.deepcopy(document), "body")
    problems = caught.value.problems
    (summary,) = [p for p in problems if p.location == ""]
    assert f"more than {MAX_SHAPE_PROBLEMS:,} shape problems" in summary.message
    assert "tenants[acme].segments[s0].cidr" in [p.location for p in problems]
    assert len(problems) <= MAX_SHAPE_PROBLEMS + 1
