"""The compiled policy rules' conjunction check: OVS keeps conjunctions apart only if the
compiler does (ids unique per table; no two conjunctions that may meet one packet at one
(table, priority)). :func:`check_conjunctions` runs on every switch's rules before they
leave the compiler."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from segctl.errors import CompileError
from segctl.flows.rules import Rule
from segctl.openflow.ofctl import Conjunction, FieldMatch

__all__ = ["check_conjunctions"]


def _disjoint(a: tuple[FieldMatch, ...], b: tuple[FieldMatch, ...]) -> bool:
    bm = {m.field: m for m in b}
    for m in a:
        other = bm.get(m.field)
        if other is not None and (m.value ^ other.value) & m.mask & other.mask:
            return True
    return False


def _fixed_bits(matches: Sequence[tuple[FieldMatch, ...]]) -> dict[str, tuple[int, int]]:
    """Per field, the bits every one of ``matches`` fixes to the same value: ``{field: (value, mask)}``."""
    common = {m.field: (m.value & m.mask, m.mask) for m in matches[0]}
    for match in matches[1:]:
        by_field = {m.field: m for m in match}
        for name in list(common):
            value, mask = common[name]
            other = by_field.get(name)
            mask = 0 if other is None else mask & other.mask & ~(value ^ other.value)
            if mask:
                common[name] = (value & mask, mask)
            else:
                del common[name]
    return common


def check_conjunctions(rules: Iterable[Rule], *, switch: str = "") -> None:
    """Refuse conjunctions OVS would not keep apart.

    * One conjunction id at two priorities of one table: OVS asks for ids unique per table
      (``ovs-fields(7)``); today it treats them as two conjunctions, later releases may not.
    * Two conjunctions that may match one packet at one (table, priority) (antrea#367).
      Conjunctions A and B are disjoint when some clause of A and some clause of B have
      pairwise disjoint flows; otherwise they may overlap and CompileError is raised.
      Policy conjunctions of different context domains share priorities and are told
      apart by their metadata (every clause matches the domain's TENANT/ORIGIN bits):
      the bits a whole clause fixes are compared first, flow pairs only when that is
      not enough.
    """
    levels: dict[tuple[int, int], dict[int, list[tuple[Rule, int]]]] = defaultdict(lambda: defaultdict(list))
    priorities: dict[tuple[int, int], set[int]] = defaultdict(set)  # (table, id) -> priorities
    for rule in rules:
        if type(rule.actions[0]) is not Conjunction:
            continue  # a Rule with a conjunction action carries only conjunction actions
        for action in rule.actions:
            if isinstance(action, Conjunction):
                levels[(rule.table, rule.priority)][action.id].append((rule, action.clause))
                priorities[(rule.table, action.id)].add(rule.priority)
    for (table, cid), prios in sorted(priorities.items()):
        if len(prios) > 1:
            raise CompileError(
                f"switch {switch or '?'} table {table}: conjunction {cid} at priorities "
                f"{sorted(prios, reverse=True)}; refusing to emit it (ids must be unique per table)"
            )
    parsed: dict[int, tuple[FieldMatch, ...]] = {}

    def matches(rules: list[Rule]) -> list[tuple[FieldMatch, ...]]:
        out = []
        for rule in rules:
            match = parsed.get(id(rule))
            if match is None:
                match = parsed[id(rule)] = rule.to_flow().match
            out.append(match)
        return out

    for (table, priority), members_by_id in sorted(levels.items()):
        if len(members_by_id) < 2:
            continue
        by_id: dict[int, dict[int, list[Rule]]] = {}
        for cid, members in sorted(members_by_id.items()):
            for rule, clause in members:
                by_id.setdefault(cid, {}).setdefault(clause, []).append(rule)
        # cheap first: the metadata bits each clause fixes, read from the rule text (the
        # first clause of every conjunction, the others only for pairs that need them)
        first = {cid: _metadata_bits(clauses[min(clauses)]) for cid, clauses in by_id.items()}
        meta: dict[int, list[tuple[int, int]]] = {}
        full: dict[int, dict[int, list[tuple[FieldMatch, ...]]]] = {}
        for a, b in _candidate_pairs(first):
            for cid in (a, b):
                if cid not in meta:
                    meta[cid] = [_metadata_bits(rs) for _, rs in sorted(by_id[cid].items())]
            if any((va ^ vb) & ma & mb for va, ma in meta[a] for vb, mb in meta[b]):
                continue
            for cid in (a, b):
                if cid not in full:
                    full[cid] = {k: matches(rs) for k, rs in by_id[cid].items()}
            fa_bits = {k: _fixed_bits(ms) for k, ms in full[a].items()}
            fb_bits = {k: _fixed_bits(ms) for k, ms in full[b].items()}
            if _separated(fa_bits, fb_bits):
                continue
            separated = any(
                all(_disjoint(fa, fb) for fa in full[a][ca] for fb in full[b][cb])
                for ca in full[a]
                for cb in full[b]
            )
            if not separated:
                raise CompileError(
                    f"switch {switch or '?'} table {table} priority {priority}: conjunctions "
                    f"{a} and {b} may match the same packet; refusing to emit them"
                )


def _candidate_pairs(first: dict[int, tuple[int, int]]) -> list[tuple[int, int]]:
    """The pairs of conjunction ids (a < b) that the metadata of their first clauses does not
    already tell apart: ids whose first clause fixes the same mask to different values are
    disjoint, so only equal values within one mask, and pairs across masks, are returned."""
    by_mask: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for cid in sorted(first):
        value, mask = first[cid]
        by_mask[mask][value].append(cid)
    pairs: list[tuple[int, int]] = []
    for by_value in by_mask.values():
        for same in by_value.values():
            pairs += [(a, b) for i, a in enumerate(same) for b in same[i + 1 :]]
    masks = sorted(by_mask)
    for i, m1 in enumerate(masks):
        left = [cid for ids in by_mask[m1].values() for cid in ids]
        for m2 in masks[i + 1 :]:
            right = [cid for ids in by_mask[m2].values() for cid in ids]
            pairs += [(min(a, b), max(a, b)) for a in left for b in right]
    return sorted(pairs)


def _metadata_bits(rules: Sequence[Rule]) -> tuple[int, int]:
    """(value, mask) of the metadata bits that every one of ``rules`` fixes to one value."""
    common: tuple[int, int] | None = None
    for rule in rules:
        text = next((v for k, v in rule.match if k == "metadata"), None)
        if text is None:
            return (0, 0)
        value_text, _, mask_text = text.partition("/")
        value, mask = int(value_text, 0), int(mask_text, 0) if mask_text else (1 << 64) - 1
        if common is not None:
            mask &= common[1] & ~(value ^ common[0])
        common = (value & mask, mask)
    return common or (0, 0)


def _separated(a: dict[int, dict[str, tuple[int, int]]], b: dict[int, dict[str, tuple[int, int]]]) -> bool:
    """Some clause of A and some clause of B fix a common bit to different values (so every
    flow pair of the two clauses is disjoint)."""
    for fa in a.values():
        for fb in b.values():
            for name, (va, ma) in fa.items():
                other = fb.get(name)
                if other is not None and (va ^ other[0]) & ma & other[1]:
                    return True
    return False
