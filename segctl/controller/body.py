"""Request bodies: read, decoded and parsed under a budget, naming the place of any problem.

A body is hostile until parsed. :func:`parse_body` (pure; the API runs it in an OS thread,
off the event loop) turns bytes into a JSON-shaped document (dicts with text keys, lists,
text, integers, finite floats, booleans, null) or raises :class:`BadRequest` naming where:

* not UTF-8 → the byte, its line and column; a lone surrogate (``"\\ud800"``) → the place
  in the document (``tenants[acme].endpoints[web1].labels.x``);
* YAML anchors and aliases are refused at their line (``&a`` / ``*a``): expanding them is
  how 341 bytes became 2.2 GB (the "billion laughs"); so are explicit tags (``!!binary``);
* more than :attr:`BodyLimits.max_depth` levels of nesting, more than
  :attr:`BodyLimits.max_nodes` values, a number longer than
  :attr:`BodyLimits.max_number_chars` characters, NaN and infinities, keys that are not text.

YAML is built event by event (libyaml's parser when PyYAML has it), so a refused body costs
at most one pass over its bytes and the GIL is never held long (the event loop keeps
answering while a body is parsed in another thread). The size limit is applied while reading
(:class:`PayloadTooLarge`, HTTP 413).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from segctl.errors import SegctlError
from segctl.topology.load import location_of

__all__ = ["MAX_BODY", "BadRequest", "BodyLimits", "PayloadTooLarge", "RequestTimeout", "parse_body"]

#: The default largest body (bytes).
MAX_BODY = 8 * 1024 * 1024


class BadRequest(SegctlError):
    """The request itself is malformed (body, query parameter) (HTTP 400)."""


class PayloadTooLarge(BadRequest):
    """The request body is over the size limit (HTTP 413)."""


class RequestTimeout(BadRequest):
    """The body did not arrive within the server's read timeout (HTTP 408)."""


@dataclass(frozen=True)
class BodyLimits:
    """What one request body may cost to parse."""

    max_bytes: int = MAX_BODY
    #: Nesting levels (an intent needs about 7).
    max_depth: int = 64
    #: Values of every kind (the synthetic fat-tree k=16 with 10,000 endpoints has 126,000;
    #: parsing 250,000 JSON values holds the GIL for about 25 ms).
    max_nodes: int = 250_000
    #: Characters of one number (a 64-bit integer has 20).
    max_number_chars: int = 40


_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NUMBER_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_body(raw: bytes, content_type: str = "", limits: BodyLimits | None = None) -> Any:
    """The document in ``raw``: YAML when ``content_type`` names yaml, else JSON."""
    limits = limits or BodyLimits()
    if len(raw) > limits.max_bytes:
        raise PayloadTooLarge(f"request body is larger than {limits.max_bytes} bytes")
    text = _decode(raw)
    if not text.strip():
        raise BadRequest("request body is empty; send a JSON document")
    yaml_body = "yaml" in content_type.lower()
    document = _load_yaml(text, limits) if yaml_body else _load_json(text, limits)
    _check_values(document, limits)
    return document


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise BadRequest(
            f"request body line {line}, column {column}: byte {exc.start + 1} (0x{raw[exc.start]:02x})"
            " is not UTF-8"
        ) from None


# -- JSON ---------------------------------------------------------------------------------


class _Refused:
    """Stands for a value the JSON parser met that is refused; :func:`_check_values` names its place."""

    def __init__(self, why: str) -> None:
        self.why = why


def _load_json(text: str, limits: BodyLimits) -> Any:
    def number(kind: type[int] | type[float]) -> Any:
        def parse(token: str) -> Any:
            if len(token) > limits.max_number_chars:
                return _Refused(f"a number of {len(token):,} characters (at most {limits.max_number_chars})")
            return kind(token)

        return parse

    def constant(name: str) -> _Refused:
        return _Refused(f"{name} is not a JSON number")

    # json.loads builds everything in one C call that holds the GIL (0.2 s for 8 MiB of
    # numbers): refuse up front what may hold more values than allowed. A JSON text of n
    # values has at least n - 1 commas and opening brackets.
    separators = text.count(",") + text.count("[") + text.count("{")
    if separators >= limits.max_nodes:
        raise BadRequest(f"request body has more than {limits.max_nodes:,} values (or commas and brackets)")
    try:
        return json.loads(text, parse_int=number(int), parse_float=number(float), parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"request body is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise BadRequest(f"request body is nested deeper than {limits.max_depth} levels") from None


# -- YAML ---------------------------------------------------------------------------------


def _at(event: Any) -> str:
    mark = event.start_mark
    return f"request body line {mark.line + 1}, column {mark.column + 1}"


class _YamlBuilder:
    """Builds the document from the YAML event stream, refusing what a JSON document cannot
    hold or what costs more than the limits, at the line where it stands.

    One event at a time (libyaml's composer would build the whole node tree in one C call,
    holding the GIL for as long as that takes: 180 ms for 3 MB, the event loop with it)."""

    def __init__(self, limits: BodyLimits) -> None:
        self.limits = limits
        self.resolver = yaml.resolver.Resolver()
        self.constructor = yaml.constructor.SafeConstructor()
        self.stack: list[Any] = []  # open collections
        self.keys: list[Any] = []  # per open collection: the pending key of a mapping, or _NO_KEY
        self.root: Any = None
        self.nodes = 0
        self.documents = 0

    def feed(self, event: Any) -> None:
        if isinstance(event, yaml.AliasEvent):
            raise BadRequest(f"{_at(event)}: YAML aliases (*{event.anchor}) are not accepted")
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise BadRequest(f"{_at(event)}: request body has more than one YAML document")
        elif isinstance(event, yaml.CollectionEndEvent):
            self.stack.pop()
            self.keys.pop()
        elif isinstance(event, yaml.NodeEvent):
            self._node(event)

    def _node(self, event: Any) -> None:
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            raise BadRequest(f"{_at(event)}: request body has more than {self.limits.max_nodes:,} values")
        if event.anchor is not None:
            raise BadRequest(f"{_at(event)}: YAML anchors (&{event.anchor}) are not accepted")
        if isinstance(event, yaml.ScalarEvent):
            self._attach(event, self._scalar(event))
            return
        if event.tag is not None and not event.implicit:
            raise BadRequest(f"{_at(event)}: YAML tags ({event.tag}) are not accepted")
        if len(self.stack) >= self.limits.max_depth:
            raise BadRequest(
                f"{_at(event)}: request body is nested deeper than {self.limits.max_depth} levels"
            )
        value: Any = {} if isinstance(event, yaml.MappingStartEvent) else []
        self._attach(event, value)
        self.stack.append(value)
        self.keys.append(_NO_KEY)

    def _scalar(self, event: Any) -> Any:
        plain, quoted = event.implicit
        if event.tag is not None and not (plain or quoted):
            raise BadRequest(f"{_at(event)}: YAML tags ({event.tag}) are not accepted")
        if not plain:
            return event.value
        tag = self.resolver.resolve(yaml.ScalarNode, event.value, (True, False))
        if tag in _NUMBER_TAGS and len(event.value) > self.limits.max_number_chars:
            most = self.limits.max_number_chars
            raise BadRequest(f"{_at(event)}: a number of {len(event.value):,} characters (at most {most})")
        construct = _SCALARS.get(tag)
        return (
            event.value
            if construct is None
            else construct(self.constructor, yaml.ScalarNode(tag, event.value))
        )

    def _attach(self, event: Any, value: Any) -> None:
        if not self.stack:
            self.root = value
            return
        parent = self.stack[-1]
        if isinstance(parent, list):
            parent.append(value)
            return
        key = self.keys[-1]
        if key is _NO_KEY:
            if not isinstance(value, str):
                raise BadRequest(
                    f"{_at(event)}: a key must be text, not {type(value).__name__} {value!r:.40}"
                )
            self.keys[-1] = value
            return
        parent[key] = value
        self.keys[-1] = _NO_KEY


_NO_KEY = object()
_SCALARS: dict[str, Any] = {
    "tag:yaml.org,2002:int": yaml.constructor.SafeConstructor.construct_yaml_int,
    "tag:yaml.org,2002:float": yaml.constructor.SafeConstructor.construct_yaml_float,
    "tag:yaml.org,2002:bool": yaml.constructor.SafeConstructor.construct_yaml_bool,
    "tag:yaml.org,2002:null": yaml.constructor.SafeConstructor.construct_yaml_null,
}  # any other plain scalar (timestamps included) is the text it is


def _load_yaml(text: str, limits: BodyLimits) -> Any:
    builder = _YamlBuilder(limits)
    loader = _Loader(text)
    try:
        while loader.check_event():
            builder.feed(loader.get_event())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise BadRequest(
            f"request body is not YAML: {exc.problem or exc.context or 'syntax error'}{where}"
        ) from None
    except yaml.YAMLError as exc:
        raise BadRequest(f"request body is not YAML: {exc}") from None
    finally:
        loader.dispose()
    return builder.root


# -- every value --------------------------------------------------------------------------


def _check_values(document: Any, limits: BodyLimits) -> None:
    """Refuse what a JSON document cannot hold. Walks every value without recursion and without
    allocating per value (a tuple per value made the garbage collector scan the whole
    process, 80 ms with the GIL held, every few requests); the path of a refused value is
    looked up afterwards."""
    values: list[Any] = [document]
    depths: list[int] = [0]
    nodes = 0
    while values:
        value, depth = values.pop(), depths.pop()
        nodes += 1
        if nodes > limits.max_nodes:
            raise BadRequest(f"request body has more than {limits.max_nodes:,} values")
        if depth > limits.max_depth:
            raise BadRequest(f"{_place_of(document, value)}: nested deeper than {limits.max_depth} levels")
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise BadRequest(f"{_place_of(document, value)}: key {key!r} is not text")
                if not key.isascii() and _SURROGATE.search(key):
                    raise BadRequest(f"{_place_of(document, value)}: a key {_surrogate(key)}")
            values.extend(value.values())
            depths.extend([depth + 1] * len(value))
        elif isinstance(value, list):
            values.extend(value)
            depths.extend([depth + 1] * len(value))
        elif isinstance(value, str):
            if not value.isascii() and _SURROGATE.search(value):
                raise BadRequest(f"{_place_of(document, value)}: the text {_surrogate(value)}")
        elif isinstance(value, _Refused):
            raise BadRequest(f"{_place_of(document, value)}: {value.why}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise BadRequest(f"{_place_of(document, value)}: {value} is not a JSON number")
        elif value is not None and not isinstance(value, int | float | bool):
            raise BadRequest(f"{_place_of(document, value)}: a {type(value).__name__} is not a JSON value")


def _place_of(document: Any, target: Any) -> str:
    """The place of ``target`` (found by identity) in ``document``, as an error message names it."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), document)]
    while stack:
        path, value = stack.pop()
        if value is target:
            return _place(document, path)
        if isinstance(value, dict):
            stack.extend(((*path, k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in enumerate(value))
    return "request body"


def _place(document: Any, path: tuple[Any, ...]) -> str:
    keys = tuple(k if isinstance(k, int) and not isinstance(k, bool) else str(k) for k in path)
    return "request body" + (f": {_escaped(location_of(document, keys))}" if keys else "")


def _escaped(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _surrogate(text: str) -> str:
    found = _SURROGATE.search(text)
    assert found is not None
    return f"has an unpaired surrogate U+{ord(found.group()):04X} at character {found.start() + 1}"
