"""Count a big document's shape problems in pieces small enough not to stall the event loop.

pydantic validates a document in one call that holds the interpreter lock, and a document
with many problems costs the most: ``segments: [{}, {}, ...]`` (100,000 items, within the
body limits) took 0.27 s with the lock held, so the event loop, the switches' echo replies and
every other request waited that long. :func:`count_shape_problems` walks a big document
along its model and hands pydantic only pieces of about :data:`PIECE_VALUES` values (each
item of a long list on its own or in a run with its neighbours; a mapping's unknown keys
counted here), stopping as soon as it has counted more than ``most``; between pieces other
threads run. Items of a list are validated as they would be inside the whole document, so a
valid document has no problem in any piece.
"""

from __future__ import annotations

import contextlib
import functools
import types
import typing
from collections.abc import Iterator
from typing import Any

from pydantic import AliasChoices, BaseModel, TypeAdapter, ValidationError

__all__ = ["PIECE_VALUES", "count_shape_problems", "count_values"]

#: About how many values pydantic validates in one call (a few milliseconds with the lock held).
PIECE_VALUES = 2_000


def count_values(value: Any) -> int:
    """The values in a JSON-shaped document (every mapping, list and scalar counts one)."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def count_shape_problems(model: type[BaseModel], document: Any, most: int) -> int:
    """The shape problems pydantic finds in ``document`` as a ``model``, counted piece by piece;
    the count stops after the piece that takes it over ``most``. Checks made across a whole
    list or mapping (its length, a model's own validators) are left to the full validation."""
    counter = _Counter(most)
    counter.walk(model, document, count_values(document))
    return counter.count


class _Enough(Exception):
    """More than ``most`` problems counted: stop walking."""


class _Counter:
    def __init__(self, most: int) -> None:
        self.most = most
        self.count = 0

    def add(self, problems: int) -> None:
        self.count += problems
        if self.count > self.most:
            raise _Enough

    def walk(self, annotation: Any, value: Any, size: int) -> None:
        with contextlib.suppress(_Enough):
            self._walk(annotation, value, size)

    def _walk(self, annotation: Any, value: Any, size: int) -> None:
        if annotation is _Unchecked:
            return
        if size <= PIECE_VALUES:
            self.add(_problems(annotation, value))
            return
        model = _model_of(annotation)
        if model is not None and isinstance(value, dict) and not _rewrites_input(model):
            fields = _field_keys(model)
            self.add(sum(1 for key in value if key not in fields))
            for key, item in value.items():
                if key in fields:
                    self._walk(fields[key], item, count_values(item))
            return
        item_type = _item_type(annotation)
        if item_type is not None and isinstance(value, list):
            for run, run_size in _runs(value):
                if len(run) == 1 and run_size > PIECE_VALUES:
                    self._walk(item_type, run[0], run_size)
                else:
                    self.add(_problems(list[item_type], run))  # type: ignore[valid-type]
            return
        self.add(_problems(annotation, value))  # one piece however big: nothing to split it by


def _runs(items: list[Any]) -> Iterator[tuple[list[Any], int]]:
    """Consecutive items in runs of at most :data:`PIECE_VALUES` values (a bigger item alone)."""
    run: list[Any] = []
    run_size = 0
    for item in items:
        size = count_values(item)
        if run and run_size + size > PIECE_VALUES:
            yield run, run_size
            run, run_size = [], 0
        run.append(item)
        run_size += size
    if run:
        yield run, run_size


def _problems(annotation: Any, value: Any) -> int:
    try:
        _adapter(annotation).validate_python(value)
    except ValidationError as exc:
        return exc.error_count()
    return 0


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def _unwrapped(annotation: Any) -> Any:
    """``annotation`` without ``Annotated[...]`` and ``X | None``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(kinds) != 1:
                return annotation
            annotation = kinds[0]
        else:
            return annotation


def _model_of(annotation: Any) -> type[BaseModel] | None:
    bare = _unwrapped(annotation)
    return bare if isinstance(bare, type) and issubclass(bare, BaseModel) else None


def _item_type(annotation: Any) -> Any:
    """``X`` of a plain ``list[X]`` (or ``list[X] | None``); None for anything a validator
    of the whole list may rewrite first (``Annotated[list[X], BeforeValidator(...)]``)."""
    bare = annotation
    if typing.get_origin(bare) in (typing.Union, types.UnionType):
        bare = _unwrapped(bare)
    if typing.get_origin(bare) is list:
        return typing.get_args(bare)[0]
    return None


def _rewrites_input(model: type[BaseModel]) -> bool:
    """Whether a validator of ``model`` sees its input before the fields do (its fields cannot
    be validated apart from it)."""
    validators = model.__pydantic_decorators__.model_validators.values()
    return any(v.info.mode in ("before", "wrap") for v in validators)


class _Unchecked:
    """Stands for a field validated with a validator of its model: left to the full validation."""


@functools.cache
def _field_keys(model: type[BaseModel]) -> dict[str, Any]:
    """Every key a document may use for a field of ``model`` (its name, alias, alias choices),
    with its annotation, or :class:`_Unchecked` for a field its model validates itself."""
    own = {f for v in model.__pydantic_decorators__.field_validators.values() for f in v.info.fields}
    keys: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation = _Unchecked if name in own else field.rebuild_annotation()
        keys[name] = annotation
        if field.alias:
            keys[field.alias] = annotation
        if isinstance(field.validation_alias, str):
            keys[field.validation_alias] = annotation
        elif isinstance(field.validation_alias, AliasChoices):
            keys.update({c: annotation for c in field.validation_alias.choices if isinstance(c, str)})
    return keys
