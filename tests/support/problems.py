"""What validation says of an intent document, as ``location: message`` lines."""

from __future__ import annotations

from typing import Any

from segctl.errors import IntentError
from segctl.topology.load import intent_from_document
from segctl.topology.validate import validate_intent

__all__ = ["problems"]


def problems(d: dict[str, Any]) -> list[str]:
    """``location: message`` for every problem: shape problems, or else semantic ones."""
    try:
        intent = intent_from_document(d)
    except IntentError as exc:
        return [f"{p.location}: {p.message}" for p in exc.problems]
    return sorted(f"{p.location}: {p.message}" for p in validate_intent(intent))
