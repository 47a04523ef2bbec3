"""Walking a parsed intent document: every place in it, the value at a place."""

from __future__ import annotations

from typing import Any


def places(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += places(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += places(value, (*path, index))
    return out


def at(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc
