"""Conntrack NAT (``ct(...,nat...)``) as header-space relations, shared by both engines.

OVS semantics (ovs-actions(7)): a ``ct()`` with ``nat(src=...)`` or ``nat(dst=...)`` that
commits a **new** connection sets up that translation and applies it; any ``ct()`` with
``nat`` (plain or with a range) applies the translation an **existing** connection already
has: forward packets as at setup, replies reversed. A ``ct()`` without ``nat`` translates
nothing. The translated packet is what the recirculated table sees.

The model, after a lookup has set ``ct_state`` on the space (:func:`translate`):

* ``+new`` and the action commits with a range: the address field becomes any address of
  the range; for TCP and UDP the port on that side becomes any port of the range, or any
  port when none is given for a source translation (conntrack may pick another source
  port), and stays as it is for a destination translation without ports.
* ``+est``/``+rel`` without ``+rpl`` (a forward packet of an existing connection): each
  translation committed into that zone anywhere in the tables (:class:`Binding`) applies to
  the packets whose replaced side is still what the committing rule matched (a source
  translation committed by ``nw_src=10.0.1.10,...`` applies to packets from 10.0.1.10);
  a commit into the zone without a range leaves its connections untranslated.
* ``+rpl`` (a reply): reversed, per binding: a reply addressed to the translated range
  (its destination after a source translation, its source after a destination one) gets
  the original address back — what the committing rule matched, any address where the
  rule did not pin it — and any port on that side where the translation may have moved
  it. Over-approximated, never missed: a translated-back address the rule left open is
  every address.
* ``+inv``: untouched.

Refused as unsupported (an :class:`~segctl.errors.UnsupportedFlowError` naming the flow):
``nat`` in a ``ct()`` without ``table`` (whether the actions after it see the translated
packet is not modelled), and a match on ``ct_state`` ``snat``/``dnat`` in tables that
translate (the header space keeps those bits 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from segctl.errors import UnsupportedFlowError
from segctl.openflow.ofctl import Ct, Flow, Nat, SetField, format_action, format_flow
from segctl.verifier.fields import canonical
from segctl.verifier.headerspace import BDD, CT_EST, CT_NEW, CT_REL, CT_RPL, HeaderSpace

__all__ = ["Binding", "NatModel", "translate"]

_TCP_UDP = (6, 17)
_ADDRESS = {(4, "src"): "ip_src", (4, "dst"): "ip_dst", (6, "src"): "ipv6_src", (6, "dst"): "ipv6_dst"}
_ETH_TYPE = {4: 0x0800, 6: 0x86DD}
_WIDTH = {4: 32, 6: 128}
_ANY_PORT = (0, 0xFFFF)


@dataclass(frozen=True)
class Binding:
    """A translation a commit sets up (``nat``; None: none) and what the side it replaces was
    in the committed packets: the committing rule's match on that address (``ip_src`` for a
    source translation, ``ip_dst`` for a destination one) as ``(value, mask)``, mask 0 when
    it does not pin it. A forward packet of such a connection still has that original side;
    a reply of it is addressed to the translated range, and gets the original back."""

    nat: Nat | None
    original: tuple[int, int] = (0, 0)


def _binding(flow: Flow, action: Ct) -> Binding:
    nat = action.nat
    if nat is None or nat.kind is None:
        return Binding(None)
    field = _ADDRESS[(nat.family, nat.kind)]
    before = flow.actions[: flow.actions.index(action)]
    if any(isinstance(a, SetField) and canonical(a.field) == field for a in before):
        return Binding(nat)  # rewritten before the commit: the rule's match no longer says
    term = next((t for t in flow.match if canonical(t.field) == field), None)
    return Binding(nat, (term.value, term.mask) if term is not None else (0, 0))


@dataclass(frozen=True)
class NatModel:
    """What an existing connection of each zone may have been translated with.

    ``bindings[zone]``: the :class:`Binding` of every ``ct(commit,nat(src|dst=...))`` into
    that zone, and ``Binding(None)`` where some commit into it sets up no translation. ``uses_nat``: some
    ``ct()`` has ``nat`` (else :func:`translate` is never asked). ``state_match``: the first
    flow matching ``ct_state`` ``snat``/``dnat`` (refused once anything translates).
    Built per switch (:meth:`of_switch`) and merged (:meth:`merge`), so that an engine that
    re-indexes one switch rebuilds one part.
    """

    bindings: Mapping[int, frozenset[Binding]]
    uses_nat: bool = False
    state_match: str | None = None

    @classmethod
    def of_switch(cls, switch: str, flows: Sequence[Flow]) -> NatModel:
        """One switch's part; raises :class:`UnsupportedFlowError` on ``nat`` without ``table``."""
        commits: dict[int, set[Binding]] = {}
        uses_nat, state_match = False, None
        for flow in flows:
            if state_match is None and any(t.field == "ct_state" and t.mask & 0xC0 for t in flow.match):
                state_match = f"{switch}: {flow.text or format_flow(flow)}"
            for action in flow.actions:
                if not isinstance(action, Ct):
                    continue
                if action.nat is not None:
                    uses_nat = True
                    if action.table is None:
                        raise UnsupportedFlowError(
                            f"{switch}: {format_action(action)} without table= is not modelled "
                            f"(whether the actions after it see the translated packet): "
                            f"{flow.text or format_flow(flow)}"
                        )
                if action.commit:
                    commits.setdefault(action.zone, set()).add(_binding(flow, action))
        return cls({z: frozenset(b) for z, b in commits.items()}, uses_nat, state_match)

    @classmethod
    def merge(cls, parts: Iterable[NatModel]) -> NatModel:
        """The model of several switches; raises :class:`UnsupportedFlowError` when they
        translate and some rule matches ``ct_state`` ``snat``/``dnat``."""
        bindings: dict[int, frozenset[Binding]] = {}
        uses_nat, state_match = False, None
        for part in parts:
            uses_nat |= part.uses_nat
            state_match = state_match or part.state_match
            for zone, found in part.bindings.items():
                bindings[zone] = bindings.get(zone, frozenset()) | found
        if uses_nat and state_match is not None:
            raise UnsupportedFlowError(
                "a match on ct_state snat/dnat is not modelled in tables that translate "
                f"addresses: {state_match}"
            )
        return cls(bindings if uses_nat else {}, uses_nat, state_match)

    @classmethod
    def for_tables(cls, tables: Mapping[str, Sequence[Flow]]) -> NatModel:
        """The model of every switch of ``tables``."""
        return cls.merge(cls.of_switch(sw, flows) for sw, flows in sorted(tables.items()))


def translate(hs: HeaderSpace, tracked: BDD, action: Ct, model: NatModel) -> BDD:
    """``tracked`` (its ``ct_state`` set by the lookup of ``action``) as the table
    ``action.table`` sees it: translated as the module docstring says."""
    if action.nat is None or not model.uses_nat or hs.is_empty(tracked):
        return tracked
    state = "ct_state"
    new = tracked & hs.eq(state, CT_NEW, CT_NEW)
    existing = tracked & ~hs.eq(state, 0, CT_EST | CT_REL)
    forward = existing & hs.eq(state, 0, CT_RPL)
    reply = existing & hs.eq(state, CT_RPL, CT_RPL)
    out = tracked & ~new & ~existing
    if action.commit and action.nat.kind is not None:
        out |= _apply(hs, new, action.nat)
    else:
        out |= new
    # One step per translation of the zone, for all its bindings at once: translating (and
    # reversing) is distributive over a union, so a union of originals gives what one step
    # per binding (one per endpoint behind an SNAT address) would, at a fraction of the cost.
    by_nat: dict[Nat | None, list[tuple[int, int]]] = {}
    for binding in sorted(model.bindings.get(action.zone, frozenset()), key=_binding_key):
        by_nat.setdefault(binding.nat, []).append(binding.original)
    if not by_nat:
        return out | forward | reply
    for nat, originals in by_nat.items():
        if nat is None:
            out |= forward | reply
            continue
        assert nat.kind is not None
        out |= _apply(hs, forward & _originals(hs, nat, nat.kind, originals), nat)
        out |= _reverse(hs, reply, nat, originals)
    return out


def _binding_key(binding: Binding) -> tuple[int, str, int, int, int, int, tuple[int, int]]:
    nat = binding.nat
    if nat is None:
        return (0, "", 0, 0, 0, 0, (0, 0))
    return (1, nat.kind or "", nat.family, nat.low, nat.high, nat.port_low or 0, binding.original)


def _originals(hs: HeaderSpace, nat: Nat, side: str, originals: Iterable[tuple[int, int]]) -> BDD:
    """The packets whose ``side`` (``src``/``dst``) address is one of ``originals``, what the
    rules that committed ``nat`` matched on the side it replaces (``mask`` 0: any address)."""
    field = _ADDRESS[(nat.family, side)]
    return hs.union(hs.eq(field, value, mask) if mask else hs.true for value, mask in originals)


def _apply(hs: HeaderSpace, space: BDD, nat: Nat) -> BDD:
    """``space``'s packets of ``nat``'s family translated by ``nat``; the others untouched."""
    assert nat.kind is not None
    family = hs.eq("eth_type", _ETH_TYPE[nat.family])
    hit, untouched = space & family, space & ~family
    if hs.is_empty(hit):
        return untouched
    address = _ADDRESS[(nat.family, nat.kind)]
    out = hs.forget(hit, [address]) & _range(hs, address, nat.low, nat.high, _WIDTH[nat.family])
    ports = _ANY_PORT if nat.port_low is None else (nat.port_low, nat.port_high or nat.port_low)
    return _ports(hs, out, nat, nat.kind, ports) | untouched


def _reverse(hs: HeaderSpace, space: BDD, nat: Nat, originals: Iterable[tuple[int, int]]) -> BDD:
    """Replies of connections ``nat`` translated (its bindings' ``originals``): those
    addressed to its range (the translated side, seen from the other end) get an original
    address back — a committing rule's match on it, any address where one did not pin it —
    and, for TCP and UDP, any port on that side where the translation may have changed it.
    Replies of the zone's other connections are the other translations' business."""
    assert nat.kind is not None
    family = hs.eq("eth_type", _ETH_TYPE[nat.family])
    side = "dst" if nat.kind == "src" else "src"  # where the translated address is in a reply
    address = _ADDRESS[(nat.family, side)]
    hit = space & family & _range(hs, address, nat.low, nat.high, _WIDTH[nat.family])
    if hs.is_empty(hit):
        return hs.false
    out = hs.forget(hit, [address]) & _originals(hs, nat, side, originals)
    return _ports(hs, out, nat, side, _ANY_PORT)


def _ports(hs: HeaderSpace, space: BDD, nat: Nat, side: str, ports: tuple[int, int]) -> BDD:
    """``space`` whose TCP and UDP packets get any port of ``ports`` (inclusive) on ``side``
    (``src``/``dst``), where ``nat`` may move that port: it gives a port range, or it
    translates the source (conntrack may pick another source port); other packets, and all
    of them when ``nat`` keeps the ports, untouched."""
    if nat.port_low is None and nat.kind != "src":
        return space
    port = "tp_" + side
    moved = hs.forget(space & _tcp_udp(hs), [port]) & _range(hs, port, *ports, 16)
    return (space & ~_tcp_udp(hs)) | moved


def _tcp_udp(hs: HeaderSpace) -> BDD:
    return hs.eq("ip_proto", _TCP_UDP[0]) | hs.eq("ip_proto", _TCP_UDP[1])


def _range(hs: HeaderSpace, name: str, low: int, high: int, width: int) -> BDD:
    """``low <= name <= high`` as a union of prefixes (at most 2·width of them)."""
    out = hs.false
    while low <= high:
        size = (low & -low).bit_length() - 1 if low else width
        while size > 0 and low + (1 << size) - 1 > high:
            size -= 1
        mask = ((1 << width) - 1) ^ ((1 << size) - 1)
        out |= hs.eq(name, low, mask)
        low += 1 << size
    return out
