"""Header spaces as BDDs: the packet model of the verifier.

One :class:`HeaderSpace` owns one BDD manager (``dd.cudd`` when importable, else
``dd.autoref``) with a fixed variable order and dynamic reordering off. A header space
is a BDD over the bits of the fields below; every packet field is a bit vector, most
significant bit first.

Variable order (:data:`FIELDS`, top to bottom): the per-switch pipeline fields first
(``in_port`` 16, ``metadata`` 64, ``reg0``–``reg7`` 32 each, ``ct_state`` 6, ``ct_zone``
16), then the packet headers (``eth_src``, ``eth_dst``, ``eth_type``, ``vlan_present``,
``vlan_vid``, ``ip_proto``, ``ip_src``, ``ip_dst``, ``nw_ttl``, ``tp_src``, ``tp_dst``,
``icmp_type``, ``icmp_code``, ``arp_op``, ``arp_sha``, ``arp_tha``, ``ipv6_src``,
``ipv6_dst``, ``nd_target``, ``nd_sll``, ``nd_tll``, ``nd_reserved``, ``nd_options_type``);
the table, the aliases and the order helpers live in :mod:`segctl.verifier.fields`.

Unifications (sound because a packet is only one of ARP, IPv4, IPv6, and every OVS match
on these fields carries its protocol prerequisite): ``arp_spa``/``arp_tpa`` share the bits
of ``ip_src``/``ip_dst`` (as in OVS, which maps them to ``nw_src``/``nw_dst``);
``tcp_*``/``udp_*`` share ``tp_src``/``tp_dst``; ``icmpv6_*`` share ``icmp_*``. The VLAN
TCI is ``vlan_present`` (the CFI/present bit) and ``vlan_vid``; PCP is not modelled.
``ct_state`` holds ``new est rel rpl inv trk`` at the OVS bit positions 0x01..0x20
(``snat``/``dnat`` are always 0: :mod:`segctl.verifier.nat` refuses matches on them where
tables translate). ``conj_id`` is not a packet field:
the engine resolves conjunctions itself.

Origin tracking: the packet fields that actions may rewrite (``HeaderSpace.rewritable``,
chosen per manager: :data:`BASE_REWRITABLE` plus what the proof's tables ``set_field``,
:func:`~segctl.verifier.fields.rewritable_for`) have a ghost copy (``o.<field>``)
interleaved bit by bit with the live bits. An injected space
starts with ghost == live, so the BDD at any point of a path is a relation between the
packet as it was injected (ghost) and as it is now (live): :meth:`HeaderSpace.origin`
and :meth:`HeaderSpace.final` project it.

Examples
--------
>>> hs = HeaderSpace()
>>> s = hs.eq("eth_type", 0x0800) & hs.eq("ip_src", 0x0A000001)
>>> hs.pick(s)["ip_src"] == 0x0A000001
True
>>> t = hs.set_field(s & hs.eq("eth_dst", 1), "eth_dst", 2)
>>> t == s & hs.eq("eth_dst", 2)
True
>>> hs.describe(t)
'eth_dst=00:00:00:00:00:02,eth_type=0x800,ip_src=10.0.0.1'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from segctl.openflow.ofctl import FieldMatch, Flow
from segctl.verifier.fields import (
    _ALIASES,
    ALL_NEW,
    BASE_REWRITABLE,
    CONCRETE_FIELDS,
    FIELDS,
    HEADER_FIELDS,
    OPTIONAL_FIELDS,
    PACKET_FIELDS,
    PIPELINE_FIELDS,
    REFERENCE_ORDER,
    TAG_BITS,
    _bits,
    _ghost,
    _port16,
    _show,
    _variables,
    canonical,
    optional_for,
    rewritable_for,
    written_fields,
)
from segctl.verifier.tags import TagOps

try:  # pragma: no cover - which backend depends on the wheel
    from dd import cudd as _backend

    BACKEND = "cudd"
except ImportError:  # pragma: no cover
    from dd import autoref as _backend

    BACKEND = "autoref"

__all__ = [
    "ALL_NEW",
    "BACKEND",
    "BASE_REWRITABLE",
    "CONCRETE_FIELDS",
    "CT_EST",
    "CT_INV",
    "CT_NEW",
    "CT_REL",
    "CT_RPL",
    "CT_TRK",
    "FIELDS",
    "HEADER_FIELDS",
    "OPTIONAL_FIELDS",
    "PACKET_FIELDS",
    "PIPELINE_FIELDS",
    "REFERENCE_ORDER",
    "TAG_BITS",
    "HeaderSpace",
    "canonical",
    "optional_for",
    "rewritable_for",
    "written_fields",
]

CT_NEW, CT_EST, CT_REL, CT_RPL, CT_INV, CT_TRK = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

BDD = Any  # a dd Function; dd ships no type stubs
#: Entries kept by :meth:`HeaderSpace.origin`'s cache before it starts over (bounds memory).
_ORIGIN_CACHE_MAX = 200_000


class HeaderSpace(TagOps):
    """The BDD manager and the operations on header spaces (see the module docstring)."""

    def __init__(
        self,
        order: Sequence[str] = REFERENCE_ORDER,
        rewritable: Iterable[str] = BASE_REWRITABLE,
        optional: Iterable[str] = (),
    ) -> None:
        """A manager whose variables follow ``order`` (field names of :data:`FIELDS` and
        ``"tag"``, top of the BDD first; every name once). Every operation means the same
        whatever the order; :meth:`pick` too (the least packet in :data:`REFERENCE_ORDER`).
        ``rewritable``: the header fields whose origin is tracked (a ghost copy each); a field
        not among them must never be written. ``optional``: the :data:`OPTIONAL_FIELDS`
        declared (besides the rewritable ones); the others are absent (pick reads 0, no
        space may constrain them). :meth:`for_tables` chooses both for a proof's tables."""
        if sorted(order) != sorted(REFERENCE_ORDER):
            raise ValueError("a variable order names every field of FIELDS and 'tag' exactly once")
        chosen = {canonical(n) for n in rewritable}
        if not chosen <= set(HEADER_FIELDS):
            raise ValueError(
                f"not header fields, cannot be rewritable: {sorted(chosen - set(HEADER_FIELDS))}"
            )
        #: The fields whose origin this manager tracks, in :data:`FIELDS` order.
        self.rewritable: tuple[str, ...] = tuple(f for f in FIELDS if f in chosen)
        self._rewritable = frozenset(self.rewritable)
        self._untracked = frozenset(HEADER_FIELDS) - self._rewritable
        self._absent = frozenset(OPTIONAL_FIELDS) - chosen - set(optional)
        #: The fields of the manager, top first (``order`` without the absent optional ones).
        self.order = tuple(f for f in order if f not in self._absent)
        self.bdd = _backend.BDD()
        self.bdd.declare(*_variables(self.order, self._rewritable))
        self.bdd.configure(reordering=False)
        self.true: BDD = self.bdd.true
        self.false: BDD = self.bdd.false
        reference = tuple(f for f in REFERENCE_ORDER if f not in self._absent)
        self._reference = self.order == reference
        self._pick_order = _variables(reference, self._rewritable)
        self._match_cache: dict[tuple[FieldMatch, ...], BDD] = {}
        self._eq_cache: dict[tuple[str, int, int | None, bool], BDD] = {}
        # Quantification cubes, built once: dd's exist() builds a cube from names per call.
        self._cube_cache: dict[tuple[str, ...], BDD] = {}  # by variable names
        self._forget_cache: dict[tuple[str, ...], BDD] = {}  # by field names
        self._mask_cache: dict[tuple[str, int], BDD] = {}  # by (field, mask)
        self._ttl_subst: dict[str, BDD] | None = None
        self._injected_cache: dict[int, BDD] = {}
        self._origin_cache: dict[BDD, BDD] = {}
        live_rewritable = [v for n in self.rewritable for v in _bits(n)]
        pipeline = [v for n in PIPELINE_FIELDS for v in _bits(n)]
        self._origin_cube = self._cube(live_rewritable + pipeline + _bits(ALL_NEW))
        self._ghost_cube = self._cube(_ghost(v) for v in live_rewritable)
        self._ghost_to_live = {
            _ghost(v): v for v in live_rewritable
        }  # names: a rename (permute), not a compose
        self._tag_cube = self._cube(_bits("tag"))
        self._tag_names = list(_bits("tag"))
        self._tag_vars = [self.bdd.var(v) for v in self._tag_names]
        self._tag_cache: dict[int, BDD] = {}
        self._identity_cache: dict[str, BDD] = {}
        self._all_vars = _variables(self.order, self._rewritable)
        self._others_cache: dict[str, BDD] = {}
        self._only_cache: dict[frozenset[str], BDD] = {}
        self._untagged_cube = self._cube(v for v in self._all_vars if not v.startswith("tag_"))
        self._pipeline_zero = self.true
        for name in PIPELINE_FIELDS[1:]:
            self._pipeline_zero &= self.eq(name, 0)
        self._identity = self._build_identity()
        self._concrete_cube = self._cube(v for n in CONCRETE_FIELDS for v in _bits(n))
        self._values_cache: dict[tuple[int, ...], BDD] = {}
        self._tci_cache: dict[int, BDD] = {}

    @classmethod
    def for_tables(
        cls, tables: Mapping[str, Sequence[Flow]], order: Sequence[str] = REFERENCE_ORDER
    ) -> HeaderSpace:
        """A manager for a proof over ``tables``: it tracks the origin of what they write
        (:func:`~segctl.verifier.fields.rewritable_for`) and declares the optional fields
        they use, nothing more (tables without IPv6 rewrites get the manager they always had)."""
        return cls(order, rewritable_for(tables), optional_for(tables))

    # ------------------------------------------------------------------ building

    def eq(self, name: str, value: int, mask: int | None = None, *, ghost: bool = False) -> BDD:
        """``field & mask == value & mask`` (bit 0 of a variable list is the MSB)."""
        key = (name, value, mask, ghost)
        cached = self._eq_cache.get(key)
        if cached is None:
            cached = self._eq_cache[key] = self._eq(name, value, mask, ghost)
        return cached

    def _eq(self, name: str, value: int, mask: int | None, ghost: bool) -> BDD:
        if name in self._absent:
            raise ValueError(f"{name} is not in this manager (build it with HeaderSpace.for_tables)")
        width = FIELDS[name]
        full = (1 << width) - 1
        mask = full if mask is None else mask
        if value >> width or mask >> width:
            return self.false
        assignment = {}
        for i, var in enumerate(_bits(name)):
            bit = 1 << (width - 1 - i)
            if mask & bit:
                assignment[_ghost(var) if ghost else var] = bool(value & bit)
        return self.bdd.cube(assignment) if assignment else self.true

    def match(self, terms: Iterable[FieldMatch]) -> BDD:
        """The BDD of an ofctl match (``conj_id`` must have been removed by the caller)."""
        key = tuple(terms)
        cached = self._match_cache.get(key)
        if cached is not None:
            return cached
        result = self.true
        for term in key:
            result &= self._term(term)
        self._match_cache[key] = result
        return result

    def _term(self, term: FieldMatch) -> BDD:
        name, value, mask = term.field, term.value, term.mask
        if name == "conj_id":
            raise ValueError("conj_id is resolved by the engine, not a header field")
        if name == "vlan_tci":
            out = self.eq("vlan_present", value >> 12 & 1, mask >> 12 & 1)
            return out & self.eq("vlan_vid", value & 0xFFF, mask & 0xFFF)
        if name == "ct_state":
            if value & mask & 0xC0:
                return self.false  # snat/dnat never set (nat.py refuses such matches beside NAT)
            return self.eq("ct_state", value & 0x3F, mask & 0x3F)
        if name == "in_port":
            port = _port16(value)
            if port is None:
                return self.false
            value, mask = port, 0xFFFF  # in_port is always matched exactly
        return self.eq(_ALIASES.get(name, name), value, mask)

    def injected(self, in_port: int) -> BDD:
        """Every packet entering a switch on ``in_port``: pipeline fields zero, ghosts = live.

        An untagged packet has VID 0 (OVS's TCI is 0 without a tag).
        """
        cached = self._injected_cache.get(in_port)
        if cached is None:
            out = self.eq("in_port", in_port) & (self.eq("vlan_present", 1) | self.eq("vlan_vid", 0))
            cached = self._injected_cache[in_port] = out & self._pipeline_zero & self._identity
        return cached

    def tracks(self, tables: Mapping[str, Sequence[Flow]]) -> bool:
        """Whether this manager tracks the origin of every header field ``tables`` write and
        declares every optional field they use."""
        return written_fields(tables) <= self._rewritable and self._absent.isdisjoint(optional_for(tables))

    def identity(self) -> BDD:
        """ghost == live for every rewritable field."""
        return self._identity

    def _build_identity(self) -> BDD:
        out = self.true
        # Bottom of the order first: each AND then only adds nodes on top (linear, not quadratic).
        for name in reversed([n for n in self.order if n in self._rewritable]):
            for var in reversed(_bits(name)):
                out &= self.bdd.apply("equiv", self.bdd.var(var), self.bdd.var(_ghost(var)))
        return out

    # ------------------------------------------------------------------ rewriting

    def _cube(self, variables: Iterable[str]) -> BDD:
        """The positive cube of ``variables`` (cached): the argument of an ``exist``."""
        key = tuple(variables)
        cube = self._cube_cache.get(key)
        if cube is None:
            cube = self._cube_cache[key] = self.bdd.cube(dict.fromkeys(key, True))
        return cube

    def _exist(self, cube: BDD, space: BDD) -> BDD:
        """``exist`` over the variables of a prebuilt cube (both backends take ``\\E``)."""
        return self.bdd.apply("\\E", cube, space)

    def forget(self, space: BDD, names: Iterable[str]) -> BDD:
        """Existentially quantify the live bits of ``names``."""
        key = tuple(names)
        cube = self._forget_cache.get(key)
        if cube is None:
            cube = self._cube(v for n in key if n not in self._absent for v in _bits(n))
            self._forget_cache[key] = cube
        return self._exist(cube, space)

    def set_field(self, space: BDD, name: str, value: int) -> BDD:
        """Write ``value`` into field ``name`` (a :data:`FIELDS` name or an ofctl alias)."""
        name = _ALIASES.get(name, name)
        if name in self._untracked:
            raise ValueError(
                f"{name} is written but its origin is not tracked: build the manager with it rewritable"
            )
        return self.forget(space, [name]) & self.eq(name, value)

    def set_fields(self, space: BDD, writes: Sequence[tuple[str, int]]) -> BDD:
        """``set_field`` of every ``(name, value)`` in order, with one quantification and one AND.

        The same as chaining :meth:`set_field` (the last write of a field wins; a value that
        does not fit its field empties the space).
        """
        last = {_ALIASES.get(name, name): value for name, value in writes}
        if not self._untracked.isdisjoint(last):
            untracked = sorted(self._untracked & last.keys())
            raise ValueError(f"{untracked} written but not tracked: build the manager with them rewritable")
        value_space = self.true
        for name, value in writes:
            if self.is_empty(self.eq(_ALIASES.get(name, name), value)):
                return self.false
        for name, value in last.items():
            value_space &= self.eq(name, value)
        return self.forget(space, tuple(last)) & value_space

    def write_masked(self, space: BDD, name: str, value: int, mask: int) -> BDD:
        """``field = (field & ~mask) | (value & mask)`` (``write_metadata``)."""
        cube = self._mask_cache.get((name, mask))
        if cube is None:
            width = FIELDS[name]
            bits = [v for i, v in enumerate(_bits(name)) if mask >> (width - 1 - i) & 1]
            cube = self._mask_cache[(name, mask)] = self._cube(bits)
        return self._exist(cube, space) & self.eq(name, value & mask, mask)

    def dec_ttl(self, space: BDD) -> tuple[BDD, BDD]:
        """(packets after ``dec_ttl``, packets dropped because their TTL was 0 or 1)."""
        expired = space & (self.eq("nw_ttl", 0) | self.eq("nw_ttl", 1))
        alive = space & ~expired
        # new(x) = alive(x + 1): substitute every TTL bit by the bit of x + 1.
        if self._ttl_subst is None:
            subst: dict[str, BDD] = {}
            carry = self.true  # x + 1: carry into the LSB
            for var in reversed(_bits("nw_ttl")):  # LSB first
                x = self.bdd.var(var)
                subst[var] = self.bdd.apply("xor", x, carry)
                carry = carry & x
            self._ttl_subst = subst
        return self.bdd.let(self._ttl_subst, alive), expired

    def reset_pipeline(self, space: BDD, in_port: int) -> BDD:
        """The packet as it enters the next switch on ``in_port`` (pipeline fields zeroed)."""
        return self.forget(space, PIPELINE_FIELDS) & self.eq("in_port", in_port) & self._pipeline_zero

    # ------------------------------------------------------------------ concrete pipeline fields

    def pipeline_values(self, values: tuple[int, ...]) -> BDD:
        """The space where the :data:`CONCRETE_FIELDS` hold ``values`` (in that order; cached).

        Empty when a value does not fit its field.
        """
        cached = self._values_cache.get(values)
        if cached is None:
            cached = self.true
            for name, value in zip(CONCRETE_FIELDS, values, strict=True):
                cached &= self.eq(name, value)
            self._values_cache[values] = cached
        return cached

    def cofactor(self, space: BDD, values: tuple[int, ...]) -> BDD:
        """``space`` with the :data:`CONCRETE_FIELDS` fixed to ``values`` and then dropped.

        ``cofactor(s, v) & pipeline_values(v) == s & pipeline_values(v)``: the engine keeps
        the cofactor on a path and conjoins the values back only on what it reports.
        """
        return self._exist(self._concrete_cube, space & self.pipeline_values(values))

    # ------------------------------------------------------------------ projections

    def origin(self, space: BDD) -> BDD:
        """The injected packet headers of a relation, in live variable names.

        The live rewritable bits and the pipeline fields are dropped (the ingress port is
        known to the caller); the ghost bits become the live ones. Cached per space: the
        properties ask for the origin of one outcome many times.
        """
        cached = self._origin_cache.get(space)
        if cached is None:
            projected = self._exist(self._origin_cube, space)
            cached = self.bdd.let(self._ghost_to_live, projected)
            if len(self._origin_cache) >= _ORIGIN_CACHE_MAX:
                self._origin_cache.clear()
            self._origin_cache[space] = cached
        return cached

    def ghost_copy(self, space: BDD, names: Iterable[str]) -> BDD:
        """``space`` with ghost == live for the rewritable fields ``names`` (whose ghost bits
        ``space`` leaves free): the origin of those fields starts being tracked."""
        out = space
        for n in names:
            out &= self._field_identity(n)
        return out

    def _field_identity(self, name: str) -> BDD:
        cached = self._identity_cache.get(name)
        if cached is None:
            cached = self.true
            for var in reversed(_bits(name)):
                cached &= self.bdd.apply("equiv", self.bdd.var(var), self.bdd.var(_ghost(var)))
            self._identity_cache[name] = cached
        return cached

    def sent(self, relation: BDD) -> BDD:
        """The packets of a relation as they were sent (injected), in *origin naming*: the
        rewritable fields on their ghost bits, the others on their (never rewritten) live bits.

        :meth:`origin` without the rename: the same packets, and no pass over the whole BDD
        to move the ghost bits onto the live ones. Build what it is compared with with
        :meth:`oeq`; read a packet of it with ``pick(space, ghost=True)``."""
        return self._exist(self._origin_cube, relation)

    def oeq(self, name: str, value: int, mask: int | None = None) -> BDD:
        """:meth:`eq` in origin naming (see :meth:`sent`)."""
        name = _ALIASES.get(name, name)
        return self.eq(name, value, mask, ghost=name in self._rewritable)

    def sent_keeping(self, relation: BDD, names: Iterable[str]) -> BDD:
        """:meth:`sent`, but the live bits of ``names`` (rewritable fields) stay: the packets as
        sent, each with those fields as they are now (``ip_src`` after NAT, say)."""
        keep = {v for n in names for v in _bits(n)}
        live = [v for n in self.rewritable for v in _bits(n) if v not in keep]
        pipeline = [v for n in PIPELINE_FIELDS for v in _bits(n)]
        return self._exist(self._cube(live + pipeline + _bits(ALL_NEW)), relation)

    def final(self, space: BDD) -> BDD:
        """The packets as they are now (ghost bits dropped)."""
        return self._exist(self._ghost_cube, space)

    def restrict(self, space: BDD, packet: Mapping[str, int], *, ghost: bool = False) -> BDD:
        """``space`` restricted to one concrete packet (values per :data:`FIELDS` name).

        With ``ghost=True`` the packet is the injected one: rewritable fields are matched
        on their ghost copy and pipeline fields are ignored.
        """
        out = space
        for name, value in packet.items():
            if name not in FIELDS or name in self._absent or (ghost and name in PIPELINE_FIELDS):
                continue
            out &= self.eq(name, value, ghost=ghost and name in self._rewritable)
        return out

    # ------------------------------------------------------------------ reading

    def pick(self, space: BDD, *, ghost: bool = False) -> dict[str, int]:
        """The least packet of ``space`` (every field): bit by bit in :data:`REFERENCE_ORDER`
        (fields, most significant bit first, each live bit before its ghost), 0 before 1.
        The same packet whatever this manager's own variable order.

        With ``ghost=True`` the rewritable fields are read from the ghost (injected) copy.
        Raises ValueError on the empty space.
        """
        if space == self.false:
            raise ValueError("cannot pick a packet from the empty header space")
        assignment = self._least(space)
        out: dict[str, int] = {}
        for name in PACKET_FIELDS:
            value = 0
            for var in _bits(name):
                key = _ghost(var) if ghost and name in self._rewritable else var
                value = value << 1 | int(bool(assignment.get(key, False)))
            out[name] = value
        return out

    def pick_pair(self, space: BDD) -> tuple[dict[str, int], dict[str, int]]:
        """(injected packet, current packet) of one member of a relation."""
        if space == self.false:
            raise ValueError("cannot pick a packet from the empty header space")
        cube = self.bdd.cube(self._least(space))
        return self.pick(cube, ghost=True), self.pick(cube)

    def _least(self, space: BDD) -> dict[str, bool]:
        """The least satisfying assignment in :data:`REFERENCE_ORDER` (absent variables: 0).

        In the reference order that is CUDD's first cube with its don't-cares at 0 (it takes
        the else branch first); in another order it is found bit by bit, only over the
        variables ``space`` depends on."""
        if self._reference:
            return dict(self.bdd.pick(space))
        support = self.bdd.support(space)
        out: dict[str, bool] = {}
        for var in self._pick_order:
            if var not in support:
                continue
            low = self.bdd.let({var: False}, space)
            if low != self.false:
                space = low
            else:
                out[var] = True
                space = self.bdd.let({var: True}, space)
        return out

    # ------------------------------------------------------------------ fields, sets, tests (tags: TagOps)

    def canonical(self, name: str) -> str:
        """A field's name in this model (``arp_spa`` is ``ip_src``, ``tcp_dst`` is ``tp_dst``...)."""
        return _ALIASES.get(name, name)

    def only(self, space: BDD, names: Iterable[str]) -> BDD:
        """``space`` projected on the live bits of fields ``names`` (every other bit dropped)."""
        key = frozenset(self.canonical(n) for n in names)
        cube = self._only_cache.get(key)
        if cube is None:
            own = {v for n in key for v in _bits(n)}
            cube = self._only_cache[key] = self._cube(v for v in self._all_vars if v not in own)
        return self._exist(cube, space)

    def field_vars(self, name: str) -> list[str]:
        """The BDD variables of a field (live bits), most significant first."""
        return list(_bits(name))

    def union(self, spaces: Iterable[BDD]) -> BDD:
        """The union of ``spaces``, ORed pairwise (balanced: n log n, not n²)."""
        items = list(spaces)
        if not items:
            return self.false
        while len(items) > 1:
            pairs = range(0, len(items) - 1, 2)
            items = [items[i] | items[i + 1] for i in pairs] + ([items[-1]] if len(items) % 2 else [])
        return items[0]

    def values(self, space: BDD, name: str, limit: int) -> list[int] | None:
        """The values field ``name`` (live bits) takes in ``space``, ascending; None when more
        than ``limit``."""
        cube = self._others_cache.get(name)
        if cube is None:
            own = set(_bits(name))
            cube = self._others_cache[name] = self._cube(v for v in self._all_vars if v not in own)
        projected = self._exist(cube, space)
        if projected == self.false:
            return []
        width = FIELDS[name]
        if self.bdd.count(projected, nvars=width) > limit:
            return None
        names = _bits(name)
        out = []
        for assignment in self.bdd.pick_iter(projected, care_vars=set(names)):
            value = 0
            for var in names:
                value = value << 1 | int(bool(assignment[var]))
            out.append(value)
        return sorted(out)

    def is_empty(self, space: BDD) -> bool:
        return bool(space == self.false)

    def implies(self, a: BDD, b: BDD) -> bool:
        """``a`` is a subset of ``b``. Costs one BDD operation (dd builds ``b | ~a``: it has no
        bddLeq); when the intersection is needed anyway, build it and test :meth:`is_empty`."""
        return bool(a <= b)

    def tci(self, tci: int) -> BDD:
        """Packets whose VLAN TCI (present bit ``0x1000`` | 12-bit VID) is ``tci``."""
        cached = self._tci_cache.get(tci)
        if cached is None:
            cached = self.eq("vlan_present", tci >> 12 & 1) & self.eq("vlan_vid", tci & 0xFFF)
            self._tci_cache[tci] = cached
        return cached

    def disjoint(self, a: BDD, b: BDD) -> bool:
        """``a & b`` is empty (``a`` implies ``~b``; as costly as building ``a & b``, see
        :meth:`implies`)."""
        return bool(a <= ~b)

    def fields_of(self, space: BDD) -> list[str]:
        """The live fields the space constrains (its support), in variable order."""
        support = self.bdd.support(space)
        return [n for n in FIELDS if any(v in support for v in _bits(n))]

    def describe(self, space: BDD) -> str:
        """A short summary: the constrained fields, each with its value when fixed."""
        if space == self.false:
            return "(empty)"
        space = self.final(space)
        if space == self.true:
            return "(all packets)"
        parts = []
        for name in self.fields_of(space):
            others = [f for f in FIELDS if f != name]
            only = self.forget(space, others)
            count = self.bdd.count(only, nvars=FIELDS[name]) if only != self.true else 2 ** FIELDS[name]
            if count == 1:
                parts.append(f"{name}={_show(name, self.pick(only)[name])}")
            else:
                parts.append(f"{name}∈{{{int(count)} values}}")
        return ",".join(parts)
