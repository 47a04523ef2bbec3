"""What an engine saw: the one interface between the engines and the properties.

An engine pushes every packet of every ingress through the flow tables and reports, per
run, *tagged relations* (:class:`RunView`): for each destination endpoint, the injected
packets (origin headers, live variable names, see
:meth:`~segctl.verifier.headerspace.HeaderSpace.origin`) that are delivered to it, each
packet tagged with the number of its ingress (:meth:`~segctl.verifier.headerspace.HeaderSpace.tag`);
likewise for every black-hole disposition and every ``ct(commit)`` point. Nothing in a view
depends on how the engine walked the tables (which paths it split or merged): it is a
function of the tables, the topology and the injected spaces, so two exact engines give
the same Boolean functions, and the properties (:mod:`segctl.verifier.checks`) read nothing
else.

Runs (what every ``ct()`` lookup returns):

* ``any``: ``+trk`` and exactly one of new/est/rel/inv, ``rpl`` free;
* ``new``: ``+trk+new`` (a connection's first packet);
* ``replies``: one injection per :class:`ReplyRequest` (a granted stateful pair's replies,
  injected at the destination's port); a lookup in one of the request's zones says
  ``+trk+est+rpl``, in any other zone ``+trk+new``. Tags number the requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from segctl.verifier.headerspace import BDD, CT_EST, CT_NEW, CT_RPL, CT_TRK, HeaderSpace
from segctl.verifier.symbolic import CONTROLLER, LOOP, MISS, TRUNCATED, UNCONNECTED, UNSUPPORTED, Disposition
from segctl.verifier.symtables import Finding

__all__ = [
    "BLACK_HOLES",
    "CommitPoint",
    "Engine",
    "ReplyRequest",
    "RunView",
    "disposition_key",
    "reply_states",
    "requests_union",
]

SwitchPort = tuple[str, int]
#: Where a ``ct(commit)`` happens: (switch, table, zone).
CommitPoint = tuple[str, int, int]
#: Dispositions that black-hole traffic (an explicit drop rule or a TTL expiry does not).
BLACK_HOLES = frozenset({MISS, UNCONNECTED, CONTROLLER, UNSUPPORTED, TRUNCATED, LOOP})


def disposition_key(d: Disposition) -> tuple[str, str, int, int, str]:
    """The canonical order of dispositions (kind, switch, table, port, detail)."""
    return (d.kind, d.switch, -1 if d.table is None else d.table, -1 if d.port is None else d.port, d.detail)


@dataclass
class RunView:
    """One run over many injections, every packet tagged (ingress or request number).

    ``delivered``: endpoint (``tenant/name``) → tagged origins delivered to it.
    ``natted``: endpoint → tagged origins of delivered IPv4 whose source or destination
    address was rewritten on the way (filled in run ``new``).
    ``exits``: uplink (``external/NAME``) → tagged origins delivered there, each with its
    ``ip_src`` as it leaves (live bits: what NAT made of it).
    ``holes``: black-hole disposition (:data:`BLACK_HOLES`) → tagged origins ending there.
    ``commits``: commit point → tagged origins committed there.
    """

    delivered: dict[str, BDD] = field(default_factory=dict)
    natted: dict[str, BDD] = field(default_factory=dict)
    exits: dict[str, BDD] = field(default_factory=dict)
    holes: dict[Disposition, BDD] = field(default_factory=dict)
    commits: dict[CommitPoint, BDD] = field(default_factory=dict)

    def sorted_holes(self) -> list[tuple[Disposition, BDD]]:
        """``holes`` in the canonical disposition order."""
        return sorted(self.holes.items(), key=lambda kv: disposition_key(kv[0]))

    def sorted_commits(self) -> list[tuple[CommitPoint, BDD]]:
        return sorted(self.commits.items())


@dataclass(frozen=True)
class ReplyRequest:
    """Inject replies at ``ingress``: the packets ``sender`` may send (its bound addresses)
    that are in ``to`` (destinations and reply services); lookups in ``zones`` say est+rpl.

    The two factors stay apart so that an engine can inject many requests that share ``to``
    (one replier's, or many repliers' answers to the same sources) as one space."""

    ingress: SwitchPort
    sender: BDD = field(compare=False)
    to: BDD = field(compare=False)
    zones: frozenset[int]

    @property
    def space(self) -> BDD:
        return self.sender & self.to


def requests_union(
    hs: HeaderSpace, requests: Sequence[tuple[int, ReplyRequest]], *, at_ingress: bool = False
) -> BDD:
    """∪ over ``(tag, request)``: tag ∧ request space (∧ ``in_port`` = its ingress port with
    ``at_ingress``), grouped by shared factors: a few operations per distinct ``to`` and
    sender, not one per request, and each ``to`` ANDed once, after the union of what tells
    its requests apart (the repliers of one group answer the same sources)."""
    groups: dict[tuple[BDD, BDD, int | None], list[int]] = {}
    for tag, req in requests:
        port = req.ingress[1] if at_ingress else None
        groups.setdefault((req.sender, req.to, port), []).append(tag)
    by_to: dict[BDD, list[BDD]] = {}
    for (sender, to, port), tags in groups.items():
        where = sender if port is None else hs.eq("in_port", port) & sender
        by_to.setdefault(to, []).append(where & hs.tag_set(tags))
    return hs.union(to & hs.union(senders) for to, senders in by_to.items())


def reply_states(hs: HeaderSpace, zones: frozenset[int]) -> BDD:
    """What a ``ct()`` lookup returns for a reply (over ``ct_zone`` and ``ct_state``): ``+trk+est+rpl``
    in ``zones`` (where the forward packets were committed), ``+trk+new`` elsewhere."""
    in_zones = hs.false
    for z in sorted(zones):
        in_zones |= hs.eq("ct_zone", z)
    return (in_zones & hs.eq("ct_state", CT_TRK | CT_EST | CT_RPL)) | (
        ~in_zones & hs.eq("ct_state", CT_TRK | CT_NEW)
    )


class Engine(Protocol):
    """An engine the properties can be checked with (the reference or the scalable one)."""

    hs: HeaderSpace
    name: str

    def ingresses(self) -> Sequence[SwitchPort]:
        """Every injected edge port; tag ``i`` of runs any/new is ``ingresses()[i]``."""

    def findings(self) -> list[Finding]:
        """Structural problems of the tables (equal-priority overlaps, conjunctions)."""

    def run(self, mode: str, ingresses: Sequence[SwitchPort] | None = None) -> RunView:
        """Run ``any`` or ``new`` from ``ingresses`` (default: every one); tags stay the
        numbers of :meth:`ingresses`."""

    def runs(self, ingresses: Sequence[SwitchPort] | None = None) -> tuple[RunView, RunView]:
        """Runs ``any`` and ``new`` (in that order), as :meth:`run` would give them; an engine
        may compute both in one walk."""

    def replies(self, requests: Sequence[ReplyRequest]) -> RunView:
        """Inject every request; tag ``i`` is ``requests[i]``."""

    def work(self) -> Mapping[str, int]:
        """Counters of what the engine did (reported beside its time; not part of the verdict)."""
