"""canonical_json_in_pieces gives canonical_json's text for any JSON document."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segctl.controller import store
from segctl.controller.store import canonical_json, canonical_json_in_pieces

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=7) | st.dictionaries(st.text(max_size=4), inner, max_size=5),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(_DOCUMENTS)
def test_pieces_make_the_canonical_text(document: Any) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "PIECE_ITEMS", 2)  # lists of 3 or more items go in pieces
        assert canonical_json_in_pieces(document) == canonical_json(document)


def test_non_string_keys_and_tuples_are_encoded_as_canonical_json() -> None:
    document = {"a": (1, 2, 3), "b": {2: "x", 1: "y"}, "c": [{"z": 1, "a": [None] * 5}]}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "PIECE_ITEMS", 2)
        assert canonical_json_in_pieces(document) == canonical_json(document)
