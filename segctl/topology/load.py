"""Load an intent from YAML or JSON text, with every problem named by its place.

Syntax errors carry ``file:line``; schema errors carry a path such as
``tenants[acme].endpoints[web1].ip`` (list items are named by their ``name`` key when
they have one) and, for YAML and JSON files, the line where that value stands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from segctl.errors import IntentError, Problem
from segctl.topology.schema import Intent
from segctl.topology.validate import validate_intent

__all__ = [
    "check_file",
    "load_checked",
    "load_intent",
    "load_intent_text",
    "locate_problems",
    "location_of",
    "parse_document",
]

PathKey = tuple[str | int, ...]


def load_intent(path: str | Path) -> Intent:
    """Read and check the shape of an intent file (``.yaml``, ``.yml`` or ``.json``).

    Raises :class:`IntentError` naming every problem; semantic checks are done by
    :func:`segctl.topology.validate.validate_intent`.
    """
    path = Path(path)
    return load_intent_text(_read(path), source=str(path))


def check_file(path: str | Path) -> tuple[Intent | None, list[Problem]]:
    """Every problem of an intent file (syntax, shape, then semantics), each with ``file:line``.

    Returns the intent (``None`` when its shape is invalid) and the problems; never
    raises for a bad intent, so a caller can report many files at once.
    """
    path = Path(path)
    try:
        text = _read(path)
        document, lines = parse_document(text, source=str(path))
        intent = intent_from_document(document, source=str(path), lines=lines)
    except IntentError as exc:
        return None, list(exc.problems)
    problems = locate_problems(validate_intent(intent), document, lines, source=str(path))
    return intent, IntentError(problems).problems


def load_checked(path: str | Path) -> Intent:
    """Load an intent file and run every check; raise :class:`IntentError` with ``file:line``."""
    intent, problems = check_file(path)
    if problems or intent is None:
        raise IntentError(problems)
    return intent


def locate_problems(
    problems: list[Problem], document: Any, lines: dict[PathKey, int], *, source: str
) -> list[Problem]:
    """Give semantic problems (which carry only a location) the ``file:line`` of that location.

    A location without its own line takes the line of its nearest enclosing node.
    """
    by_location: dict[str, int] = {}
    for key, lineno in sorted(lines.items(), key=lambda item: item[1]):
        by_location[location_of(document, key)] = lineno
    out = []
    for problem in problems:
        if problem.source:
            out.append(problem)
            continue
        found = _line_of(by_location, problem.location)
        out.append(Problem(problem.location, problem.message, f"{source}:{found}" if found else source))
    return out


def _line_of(by_location: dict[str, int], location: str) -> int | None:
    while True:
        if location in by_location:
            return by_location[location]
        if not location:
            return None
        cut = max(location.rfind("."), location.rfind("["))
        location = location[: max(cut, 0)]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise IntentError([Problem("", f"cannot read intent: {exc.strerror}", str(path))]) from None
    except UnicodeDecodeError:
        raise IntentError([Problem("", "intent is not UTF-8 text", str(path))]) from None


def load_intent_text(text: str, *, source: str = "<intent>") -> Intent:
    """Parse YAML (a superset of JSON) text and validate its shape into an :class:`Intent`."""
    document, lines = parse_document(text, source=source)
    return intent_from_document(document, source=source, lines=lines)


def intent_from_document(
    document: Any, *, source: str = "<intent>", lines: dict[PathKey, int] | None = None
) -> Intent:
    """Validate an already parsed document (for example an API body)."""
    if not isinstance(document, dict):
        raise IntentError([Problem("", "an intent is a mapping with fabric and tenants", source)])
    try:
        return Intent.model_validate(document)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            message = _message(error)
            line = _nearest_line(lines or {}, loc)
            where = f"{source}:{line}" if line else source
            problems.append(Problem(location_of(document, loc), message, where))
        raise IntentError(problems) from None


def parse_document(text: str, *, source: str = "<intent>") -> tuple[Any, dict[PathKey, int]]:
    """Parse YAML or JSON text; return the document and a map from paths to line numbers."""
    if source.endswith(".json"):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IntentError(
                [Problem("", f"JSON syntax error: {exc.msg} (column {exc.colno})", f"{source}:{exc.lineno}")]
            ) from None
        return document, _json_lines(text)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        reason = exc.problem or exc.context or "syntax error"
        raise IntentError([Problem("", f"YAML syntax error: {reason}", f"{source}{line}")]) from None
    except yaml.YAMLError as exc:
        raise IntentError([Problem("", f"YAML syntax error: {exc}", source)]) from None
    lines: dict[PathKey, int] = {}
    if node is not None:
        _collect_lines(node, (), lines)
    return document, lines


def location_of(document: Any, loc: PathKey) -> str:
    """Turn a pydantic path such as ``('tenants', 0, 'endpoints', 3, 'ip')`` into
    ``tenants[acme].endpoints[web1].ip``, naming list items by their ``name``."""
    out = ""
    node: Any = document
    for key in loc:
        if isinstance(key, int):
            label: str = str(key)
            if isinstance(node, list) and 0 <= key < len(node):
                node = node[key]
                if isinstance(node, dict) and isinstance(node.get("name"), str):
                    label = node["name"]
            else:
                node = None
            out += f"[{label}]"
        else:
            node = node.get(key) if isinstance(node, dict) else None
            out += f".{key}" if out else str(key)
    return out


def _message(error: Any) -> str:
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid"))
    if kind == "extra_forbidden":
        return "unknown key (not part of the intent format; check the spelling)"
    if kind == "missing":
        return "required key is missing"
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if kind not in ("value_error",) and "input" in error and not isinstance(error["input"], dict | list):
        message += f" (got {error['input']!r})"
    return message


def _json_lines(text: str) -> dict[PathKey, int]:
    # JSON is (nearly) YAML: reuse the YAML composer for line numbers; lines are best effort.
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[PathKey, int] = {}
    if node is not None:
        _collect_lines(node, (), lines)
    return lines


def _collect_lines(node: yaml.Node, path: PathKey, lines: dict[PathKey, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _collect_lines(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_lines(item, (*path, index), lines)


def _nearest_line(lines: dict[PathKey, int], loc: PathKey) -> int | None:
    # pydantic may add model/union names to the path; walk up until a known node.
    for cut in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:cut]))
        if line:
            return line
    return None
