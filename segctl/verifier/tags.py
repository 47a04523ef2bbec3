"""The ``tag`` label of combined relations: which ingress (or reply request) a packet of a
tagged relation belongs to. A mixin of :class:`~segctl.verifier.headerspace.HeaderSpace`
(the tag is a field no rule reads and no action writes; ``TAG_BITS`` wide, at the bottom
of the reference order)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from segctl.verifier.fields import FIELDS, _assignment

__all__ = ["TagOps"]

BDD = Any  # a dd Function


class TagOps:
    """Tag operations over a manager's ``bdd`` (the attributes below are set by its ``__init__``)."""

    bdd: Any
    true: BDD
    false: BDD
    _tag_cube: BDD
    _untagged_cube: BDD
    _tag_names: list[str]
    _tag_vars: list[BDD]
    _tag_cache: dict[int, BDD]

    def _exist(self, cube: BDD, space: BDD) -> BDD:
        raise NotImplementedError

    def tag_part(self, space: BDD) -> BDD:
        """The tags of ``space`` as a space over the tag alone (every other field dropped)."""
        return self._exist(self._untagged_cube, space)

    def tag(self, value: int) -> BDD:
        """Packets carrying ``tag == value`` (a label that no rule reads and no action writes:
        which ingress, or which request, a packet of a combined relation belongs to)."""
        cached = self._tag_cache.get(value)
        if cached is None:
            if value >> FIELDS["tag"] or value < 0:
                raise ValueError(f"tag {value} does not fit {FIELDS['tag']} bits")
            cached = self._tag_cache[value] = self._tag_tree([value], 0)
        return cached

    def tag_set(self, values: Iterable[int]) -> BDD:
        """Packets whose tag is one of ``values``."""
        vals = sorted(set(values))
        if vals and (vals[0] < 0 or vals[-1] >> FIELDS["tag"]):
            raise ValueError(f"a tag does not fit {FIELDS['tag']} bits")
        return self._tag_tree(vals, 0) if vals else self.false

    def _tag_tree(self, vals: Sequence[int], bit: int) -> BDD:
        """The set of sorted ``vals`` (equal above ``bit``), bit by bit from the top."""
        width = FIELDS["tag"]
        if bit == width or len(vals) == 1 << (width - bit):
            return self.true
        shift = width - 1 - bit
        split = next((i for i, v in enumerate(vals) if v >> shift & 1), len(vals))
        low = self._tag_tree(vals[:split], bit + 1) if split else self.false
        high = self._tag_tree(vals[split:], bit + 1) if split < len(vals) else self.false
        return self.bdd.ite(self._tag_vars[bit], high, low)

    def tags(self, space: BDD) -> list[int]:
        """The tags some packet of ``space`` carries, ascending."""
        projected = self.tag_part(space)
        out: list[int] = []
        if projected != self.false:
            self._walk_tags(projected, False, 0, 0, out)
        return out

    def _walk_tags(self, node: BDD, negated: bool, bit: int, value: int, out: list[int]) -> None:
        """Every tag of a tag-only BDD (``node`` xor ``negated``), depth first, 0 before 1."""
        f = ~node if negated else node
        if f == self.false:
            return
        width = FIELDS["tag"]
        if f == self.true or bit == width:
            rest = width - bit
            out.extend(value << rest | x for x in range(1 << rest))
            return
        if node.var != self._tag_names[bit]:  # this bit is free here
            self._walk_tags(node, negated, bit + 1, value << 1, out)
            self._walk_tags(node, negated, bit + 1, value << 1 | 1, out)
            return
        flip = negated ^ node.negated
        self._walk_tags(node.low, flip, bit + 1, value << 1, out)
        self._walk_tags(node.high, flip, bit + 1, value << 1 | 1, out)

    def untag(self, space: BDD, value: int) -> BDD:
        """The packets of ``space`` tagged ``value``, with the tag dropped."""
        return self.bdd.let(_assignment("tag", value), space)

    def untagged(self, space: BDD) -> BDD:
        """``space`` with the tag dropped (every tag's packets together)."""
        return self._exist(self._tag_cube, space)
