"""An intent document to a resolved network, with a bounded cost for a hostile document.

:func:`resolve_intent` is what :func:`segctl.topology.load.intent_from_document` and
:func:`~segctl.topology.network.resolve` do, run by the service in its offload thread, with
one difference: a document with more than :data:`MAX_SHAPE_PROBLEMS` shape problems is
reported from a preview (every list cut to its first :data:`PREVIEW_ITEMS` items, every
mapping to its first :data:`PREVIEW_KEYS` keys) plus the total. Listing every problem of
``tenants: [1, 1, ...]`` (240,000 items within the body limits) took pydantic 0.6 s with
the interpreter lock held: the event loop, the switches' echo replies and every other
request waited.
"""

from __future__ import annotations

import itertools
from typing import Any

from pydantic import ValidationError

from segctl.controller.store import content_hash
from segctl.errors import IntentError, Problem
from segctl.topology.load import intent_from_document
from segctl.topology.network import Network, resolve
from segctl.topology.schema import Intent

__all__ = ["MAX_SHAPE_PROBLEMS", "PREVIEW_ITEMS", "intent_document", "prepare_intent", "resolve_intent"]

#: Shape problems listed one by one; more are reported from a preview of the document.
MAX_SHAPE_PROBLEMS = 1000
#: Items of each list the preview of a document with too many problems keeps.
PREVIEW_ITEMS = 20
#: Keys of each mapping the preview keeps (an intent's objects have a dozen; labels more).
PREVIEW_KEYS = 100


def intent_document(intent: Intent) -> dict[str, Any]:
    """The normalized JSON document of an intent (what is stored, hashed and returned)."""
    return intent.model_dump(mode="json", by_alias=True, exclude_none=True)


def resolve_intent(document: Any, source: str) -> Network:
    """Validate an intent document and resolve it; :class:`IntentError` naming each problem."""
    try:
        intent = Intent.model_validate(document)
    except ValidationError as exc:
        _raise_shape_problems(document, source, exc.error_count())
    return resolve(intent)


def prepare_intent(document: Any, source: str) -> tuple[Network, str]:
    """:func:`resolve_intent`, and the content hash of its normalized document."""
    network = resolve_intent(document, source)
    return network, content_hash(intent_document(network.intent))


def _raise_shape_problems(document: Any, source: str, count: int) -> None:
    if count <= MAX_SHAPE_PROBLEMS:
        intent_from_document(document, source=source)  # raises IntentError with every problem
    try:
        intent_from_document(_preview(document), source=source)
    except IntentError as preview:
        listed = list(preview.problems[:MAX_SHAPE_PROBLEMS])
    else:  # pragma: no cover - a preview of an invalid document has problems of its own
        listed = []
    summary = f"{count:,} shape problems in all; listed: those of a preview"
    raise IntentError([*listed, Problem("", summary, source)])


def _preview(value: Any) -> Any:
    """``value`` with every list cut to its first :data:`PREVIEW_ITEMS` items and every mapping
    to its first :data:`PREVIEW_KEYS` keys (depth is bounded by the body limits)."""
    if isinstance(value, dict):
        return {k: _preview(v) for k, v in itertools.islice(value.items(), PREVIEW_KEYS)}
    if isinstance(value, list):
        return [_preview(v) for v in value[:PREVIEW_ITEMS]]
    return value
