"""Property 10, ``standby-uplink``: a standby uplink is silent (checked with the properties of
external networks, :mod:`segctl.verifier.outside`).

An external network may declare several uplink ports; the first that is up is *active*, the
others are *standby* (:attr:`~segctl.topology.network.ExternalInfo.standby`) and get no rules
at all. The engines inject at each standby port whatever an outside router could send
(every packet, like at the active uplink; tags after the active uplinks',
:meth:`~segctl.verifier.symbolic.Topology.ingress_ports`), and deliver to its name
(:func:`~segctl.verifier.symbolic.standby_name`) whatever leaves through it. The property
fails, in runs new and any, when

(a) a packet injected at a standby port is delivered anywhere (an endpoint, an uplink, a
    standby port), ends in a black hole (a table miss, an unconnected port, the controller,
    a loop...: it got past table 0) or is committed to conntrack: one violation per
    receiver, and one for the first other effect of each port;
(b) a packet from any other ingress (an endpoint, an active uplink) is output to a standby
    port: one violation per (sender, standby port).

Only an explicit drop (or an action list without output, a TTL expiry) may end what a
standby port brings in. The six properties and 7–9 read neither the standby ports' tags
nor their deliveries (:attr:`~segctl.verifier.checks.Inputs.outside_tags`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from segctl.topology.network import ExternalInfo
from segctl.verifier.checks import Inputs, Target, Violation
from segctl.verifier.headerspace import BDD
from segctl.verifier.observe import CommitPoint
from segctl.verifier.symbolic import standby_name

__all__ = ["standby_uplink"]

SwitchPort = tuple[str, int]
#: The runs read, in order of preference (what run new shows is not reported again for any).
_RUNS = ("new", "any")


@dataclass(frozen=True)
class _Standby:
    """A standby uplink: its network, its place in ``attach`` (1-based), its port and name,
    and its tag (None when no engine injects there)."""

    external: ExternalInfo
    position: int
    port: SwitchPort
    tag: int | None

    @property
    def name(self) -> str:
        return standby_name(self.external.name, self.port)

    @property
    def where(self) -> str:
        return f"standby uplink {self.port[0]}:{self.port[1]} of external {self.external.name}"


def _standby_ports(inp: Inputs) -> list[_Standby]:
    """Every standby uplink, in declaration order."""
    tag_of = {p: i for i, p in enumerate(inp.ingresses)}
    return [
        _Standby(x, pos, p, tag_of.get(p))
        for x in inp.network.externals
        for pos, p in enumerate(x.attach, start=1)
        if p in x.standby
    ]


def _places(inp: Inputs, ports: Iterable[_Standby]) -> dict[str, tuple[int, ...]]:
    """Every name a delivery or a sender has, and its place in a violation's order:
    endpoints in intent order, then per external network its active uplink and its standby
    ports in declared order."""
    out: dict[str, tuple[int, ...]] = {
        ep.qualified: (0, inp.position[ep.key]) for ep in inp.network.endpoints
    }
    out.update({x.qualified: (1, x.index, 0) for x in inp.network.externals})
    out.update({s.name: (1, s.external.index, s.position) for s in ports})
    return out


def standby_uplink(inp: Inputs) -> tuple[list[Violation], Mapping[str, int]]:
    """Property 10: (a) nothing the outside sends to a standby uplink gets in, (b) nothing is
    sent out of one."""
    ports = _standby_ports(inp)
    injected = set(inp.injected)
    mine = [s for s in ports if s.tag is not None and s.port in injected]
    places = _places(inp, ports)
    found = _admitted(inp, mine, places) + _sent_out(inp, ports, places)
    return found, {"standby uplinks": len(mine)}


def _admitted(inp: Inputs, ports: list[_Standby], places: Mapping[str, tuple[int, ...]]) -> list[Violation]:
    """(a), per standby port: every receiver of its packets, and the first other effect (a
    black hole, then a commit, canonical order) of a packet that got past table 0."""
    hs = inp.hs
    by_tag = {s.tag: s for s in ports if s.tag is not None}
    if not by_tag:
        return []
    standby = hs.tag_set(by_tag)
    found: list[Violation] = []
    seen: set[tuple[int, str]] = set()
    for mode in _RUNS:
        view = inp.new if mode == "new" else inp.any
        for name, got in sorted(view.delivered.items()):
            for t, space in _by_tag(inp, got & standby, seen, name):
                s = by_tag[t]
                message = f"the outside ({s.external.name}) gets through {s.where} to {name}"
                order = (0, *places[s.name], 0, *places.get(name, (2,)))
                found.append(
                    Violation(
                        "standby-uplink", message, s.port, s.name, name, mode, space,
                        Target("delivered", name), order=order,
                    )
                )  # fmt: skip
        effects: list[tuple[str, BDD, Target, CommitPoint | None]] = [
            (str(d), ended, Target("hole", disposition=d), None) for d, ended in view.sorted_holes()
        ]
        effects += [
            (f"committed by ct(commit,zone={z}) at {sw} table {tb}", committed, Target("commit"), (sw, tb, z))
            for (sw, tb, z), committed in view.sorted_commits()
        ]
        for text, ended, target, point in effects:
            for t, space in _by_tag(inp, ended & standby, seen, ""):
                s = by_tag[t]
                message = f"the outside ({s.external.name}) gets in at {s.where}: {text}"
                found.append(
                    Violation(
                        "standby-uplink", message, s.port, s.name, None, mode, space, target,
                        commit=point, order=(0, *places[s.name], 1),
                    )
                )  # fmt: skip
    return found


def _sent_out(inp: Inputs, ports: list[_Standby], places: Mapping[str, tuple[int, ...]]) -> list[Violation]:
    """(b), per standby port: every other ingress (endpoint, active uplink) whose packets
    leave through it (a standby port's own packets there are (a)'s)."""
    hs = inp.hs
    others = ~hs.tag_set(s.tag for s in ports if s.tag is not None)
    found: list[Violation] = []
    seen: set[tuple[int, str]] = set()
    for mode in _RUNS:
        view = inp.new if mode == "new" else inp.any
        for s in ports:
            got = view.delivered.get(s.name)
            if got is None:
                continue
            for t, space in _by_tag(inp, got & others, seen, s.name):
                sender = inp.ingress_names[t]
                message = f"{sender} sends out through {s.where}"
                found.append(
                    Violation(
                        "standby-uplink", message, inp.ingresses[t], sender, s.name, mode, space,
                        Target("delivered", s.name), order=(1, *places.get(sender, (2, t)), *places[s.name]),
                    )
                )  # fmt: skip
    return found


def _by_tag(inp: Inputs, tagged: BDD, seen: set[tuple[int, str]], what: str) -> list[tuple[int, BDD]]:
    """The tags of ``tagged`` not yet ``seen`` with ``what`` (now seen), each with its
    packets, untagged."""
    hs = inp.hs
    if hs.is_empty(tagged):
        return []
    fresh = [t for t in hs.tags(tagged) if (t, what) not in seen]
    seen.update((t, what) for t in fresh)
    return [(t, hs.untag(tagged, t)) for t in fresh]
