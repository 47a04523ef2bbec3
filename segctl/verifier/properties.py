"""The six verification properties, checked over the symbolic engine's outcomes.

Inputs: a resolved :class:`~segctl.topology.network.Network` (the intent and the
topology), the expected relation of :mod:`segctl.topology.analysis`, and three runs of
:class:`~segctl.verifier.symbolic.Engine` over the same parsed tables:

* run **A** (any): every ``ct()`` lookup may return any state (``+trk`` and one of
  new/est/rel/inv, ``rpl`` free);
* run **N** (new): every ``ct()`` lookup returns ``+trk+new`` (a connection's first packet);
* run **E** (reply): the replies of a granted stateful connection, injected at the
  destination's port; a ``ct()`` lookup in a zone where run N committed the connection's
  packets returns ``+trk+est+rpl``, a lookup in any other zone ``+trk+new``.

What each property quantifies over (a packet is *from* endpoint ``s`` when it is injected
at the edge port ``s`` is bound to; "origin" is the packet as injected):

1. ``isolation`` (runs A and N): a packet from ``s`` delivered to ``d`` of another tenant
   must be IPv4 between a declared shared-service pair (``s`` consumer and ``d`` provider,
   or the reverse for replies), in every conntrack state; and, when every lookup says new,
   only ``consumer -> provider`` on the shared service's services.
2. ``conformance`` (run N): a packet from ``s`` delivered to ``d`` of the same tenant is
   allowed by the intent: IPv4 from ``s``'s address to ``d``'s address on a service some
   grant allows; ARP between two endpoints of one segment with ``arp_tpa`` = ``d``'s
   address; IPv6 when :func:`~segctl.topology.analysis.ipv6_allowed`; to ``s`` itself only
   the gateway's ARP reply. Delivered IPv4 keeps its addresses (no NAT).
3. ``allowed-delivered`` (runs N and E): for every granted ``(s, d, service)`` the whole
   header space of such packets is delivered to ``d``: untagged IPv4 with ``s``'s bound
   MAC and address, ``d``'s address, ``d``'s MAC (same segment) or the gateway MAC of
   ``s``'s tenant (routed; TTL >= 2), any source port, any other field; and for stateful
   grants the replies (``d -> s``, ports mirrored, ct est+rpl) are delivered to ``s``.
4. ``spoof-guard`` (run A): a packet delivered anywhere was sent with the source bound
   to its ingress port: untagged, ``eth_src`` the endpoint's MAC, and ARP with
   ``arp_sha``/``arp_spa`` bound, or IPv4 with ``ip_src`` bound, or IPv6 (endpoints with
   ``ipv6`` only) with ``ipv6_src`` bound. Every other ethertype must never be delivered.
5. ``loop-free`` (runs A, N, E): no packet at all loops or exhausts the step budget; no
   part of the allowed spaces of property 3 is black-holed (table miss, no output,
   unconnected port, controller, unsupported).
6. ``commit-safety`` (run N): every ``ct(commit)`` in zone ``z`` of a packet from ``s``
   commits only packets that a *stateful* grant ``s -> d`` allows, with ``d``'s address
   as destination and ``z`` the zone of ``s``'s or ``d``'s tenant; or packets to an
   address that no endpoint able to answer in zone ``z`` owns (no reply can ever use the
   entry). Together with 2 this closes the loop for established traffic: "est" can only
   come from a committed, allowed connection.

Each property is the combination, in a fixed order, of per-ingress (or per granted pair)
contributions computed by the pure functions of :mod:`segctl.verifier.checks`;
:class:`Checker` combines them and keeps each contribution with the inputs it depends on,
so that an :class:`~segctl.verifier.incremental.IncrementalVerifier` recomputes only those
whose outcomes were re-run or whose expectations changed.

Each check returns a :class:`PropertyResult` with the header space it checked
(:class:`Checked`) and its :class:`Violation` s; a violation carries the offending origin
space and the outcome it was found in, from which :mod:`segctl.verifier.counterexample`
builds one concrete packet and its trace.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol, TypeVar

from segctl.topology.network import EndpointInfo, Network
from segctl.verifier.checks import (
    Allowed,
    Violation,
    commit_part,
    commit_zones,
    conformance_part,
    isolation_part,
    loop_part,
    pair_part,
    spoof_part,
)
from segctl.verifier.expectations import Expectations, Row
from segctl.verifier.headerspace import HeaderSpace
from segctl.verifier.spaces import Spaces, _range
from segctl.verifier.symbolic import CommitEvent, Outcome, Reachability

__all__ = [
    "PROPERTIES",
    "Allowed",
    "Checked",
    "Checker",
    "PropertyResult",
    "Runs",
    "Spaces",
    "Violation",
    "_range",
]

SwitchPort = tuple[str, int]
EndpointKey = tuple[str, str]


class ReplySource(Protocol):
    """Run E: the replies of granted pairs, with their records kept across calls."""

    def __call__(self, a: Allowed, zones: frozenset[int]) -> tuple[list[Outcome], object]:
        """Reply outcomes of a granted pair whose forward packets are committed in ``zones``, and
        a token that is the same object exactly when the outcomes are the same as last time."""

    def stale(self) -> AbstractSet[EndpointKey]:
        """The sources some of whose last call's reply records must be run again."""

    def carry(self, a: Allowed, zones: frozenset[int]) -> None:
        """Keep the last call's record of this pair's replies, unchanged (not stale)."""


@dataclass(frozen=True)
class _Block:
    """One source's granted pairs: their Allowed and (allowed-delivered, black-hole)
    violations in destination order, the replies asked for, the parts computed, and the key
    (run-N token, row) they were computed under."""

    key: object
    allowed: list[Allowed]
    results: list[tuple[list[Violation], list[Violation]]]
    replied: list[tuple[Allowed, frozenset[int]]]
    parts: list[tuple[str, Hashable]]


T = TypeVar("T")
P = ParamSpec("P")

#: (id, title, one-line statement) of every property, in report order.
PROPERTIES: tuple[tuple[str, str, str], ...] = (
    (
        "isolation",
        "Tenant isolation",
        "Nothing from one tenant is delivered to another, except declared shared services.",
    ),
    (
        "conformance",
        "Policy conformance",
        "Within a tenant, what is delivered (new connections) is a subset of what the intent allows.",
    ),
    (
        "allowed-delivered",
        "Allowed traffic is delivered",
        "Every granted (source, destination, service) and its replies are delivered, all of it.",
    ),
    (
        "spoof-guard",
        "Spoofed sources are never delivered",
        "A delivered packet always carries the MAC/IP (and ARP sha/spa) bound to its ingress port, untagged.",
    ),
    (
        "loop-free",
        "No loops or black holes",
        "No packet loops; allowed traffic never ends in a table miss, a dead port or the controller.",
    ),
    (
        "commit-safety",
        "Commit safety",
        "Every ct(commit) commits only allowed (stateful) traffic, so 'established' is no side door.",
    ),
)


@dataclass(frozen=True)
class Checked:
    """What a property quantified over: a description, a header-space summary, counts."""

    description: str
    space: str
    counts: Mapping[str, int]


@dataclass(frozen=True)
class PropertyResult:
    id: str
    title: str
    statement: str
    checked: Checked
    violations: tuple[Violation, ...]

    @property
    def holds(self) -> bool:
        return not self.violations


@dataclass
class Runs:
    """What the checks read: runs A and N (outcomes per ingress, in edge-port order, and commit
    events in run order) and the replies of run E (see the module docstring).

    ``tokens[(run, ingress)]`` (run ``"any"`` or ``"new"``) is an object that stays the same
    exactly while that ingress's outcomes (and, for ``"new"``, its commits) are reused; the
    :class:`Checker` keys its cached contributions on it.
    """

    hs: HeaderSpace
    any: Reachability
    new: Reachability
    replies: ReplySource
    tokens: Mapping[tuple[str, SwitchPort], object] = field(default_factory=dict)
    _commits_by_ingress: dict[SwitchPort, list[CommitEvent]] | None = None

    def new_commits(self, ingress: SwitchPort) -> list[CommitEvent]:
        """Run N's commit events of one ingress, in run order."""
        if self._commits_by_ingress is None:
            self._commits_by_ingress = {}
            for c in self.new.commits:
                self._commits_by_ingress.setdefault(c.ingress, []).append(c)
        return self._commits_by_ingress.get(ingress, [])


class Checker:
    """The six checks as combinations of cached contributions (:mod:`segctl.verifier.checks`).

    A contribution is recomputed when its cache key (the identity tokens of the outcomes it
    reads and the expectations of its source) differs from the previous call's; a fresh
    ``Checker`` computes everything. ``recomputed``/``total`` count the last call's parts.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[str, Hashable], tuple[object, Any]] = {}
        self._next: dict[tuple[str, Hashable], tuple[object, Any]] = {}
        self._blocks: dict[EndpointKey, _Block] = {}  # per source: its granted pairs' parts
        self._next_blocks: dict[EndpointKey, _Block] = {}
        self.recomputed = 0
        self.total = 0
        #: The last call's expectations (:class:`~segctl.verifier.expectations.Expectations`).
        self.expectations: Expectations | None = None

    def _part(
        self, kind: str, ident: Hashable, key: object, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(*args)``, or its value of the last call when ``key`` is the same."""
        self.total += 1
        hit = self._cache.get((kind, ident))
        if hit is not None and hit[0] == key:
            value: T = hit[1]
        else:
            value = fn(*args, **kwargs)
            self.recomputed += 1
        self._next[(kind, ident)] = (key, value)
        return value

    def _source_pairs(
        self, runs: Runs, network: Network, spaces: Spaces, src: EndpointInfo, row: Row, stale: bool
    ) -> _Block:
        """Properties 3 and 5 (black holes) for the granted pairs of one source, in destination
        order. Reused whole (with its parts and its reply records) when the source's run-N
        token and its row are the last call's and none of its reply records is ``stale``: then
        every input of every part is the last call's too (the spaces are functions of the
        endpoints and grants, the replies of unchanged reply keys are reused), so no per-pair
        work is done (docs/verification.md §8)."""
        ingress = (src.switch, src.port)
        token = runs.tokens.get(("new", ingress))
        key = (token, row)
        hit = self._blocks.get(src.key)
        if hit is not None and not stale and hit.key == key:
            for a, zones in hit.replied:
                runs.replies.carry(a, zones)
            for part in hit.parts:
                self._next[part] = self._cache[part]
            self.total += len(hit.parts)
            self._next_blocks[src.key] = hit
            return hit
        hs = runs.hs
        new = runs.new.outcomes.get(ingress, [])
        block = _Block(key, [], [], [], [])
        for d, grants in row.items():
            dst = network.endpoint(*d)
            a = Allowed(src, dst, spaces.forward(src, dst, grants), spaces.reply(src, dst, grants), grants)
            block.allowed.append(a)
            replies: list[Outcome] = []
            reply_token: object = None
            if not hs.is_empty(a.reply):
                block.parts.append(("zones", (src.key, d)))
                commits = runs.new_commits(ingress)
                zones = self._part(
                    "zones", (src.key, d), (token, a.forward), commit_zones, hs, commits, a.forward
                )
                replies, reply_token = runs.replies(a, zones)
                block.replied.append((a, zones))
            block.parts.append(("pair", (src.key, d)))
            part_key = (token, a.forward, a.reply, a.grants, reply_token)
            block.results.append(self._part("pair", (src.key, d), part_key, pair_part, hs, a, new, replies))
        self._next_blocks[src.key] = block
        return block

    def check(
        self,
        runs: Runs,
        network: Network,
        spaces: Spaces,
        *,
        progress: Callable[[str], None] | None = None,
    ) -> list[PropertyResult]:
        """The six results over ``runs``, in :data:`PROPERTIES` order."""
        say = progress or (lambda _msg: None)
        hs = runs.hs
        self._next, self._next_blocks, self.recomputed, self.total = {}, {}, 0, 0
        exp = self.expectations = Expectations.of(network, self.expectations)
        sources = {(ep.switch, ep.port): ep for ep in network.endpoints}

        def tok(run: str, ingress: SwitchPort) -> object:
            return runs.tokens.get((run, ingress))

        say("replies of stateful grants")
        stale = runs.replies.stale()
        allowed: list[Allowed] = []
        pairs: list[tuple[list[Violation], list[Violation]]] = []
        for ep in network.endpoints:
            row = exp.rows.get(ep.key)
            if row:
                block = self._source_pairs(runs, network, spaces, ep, row, ep.key in stale)
                allowed += block.allowed
                pairs += block.results

        say("checking properties")
        keep_ip = spaces.same_address("ip_src") & spaces.same_address("ip_dst")
        iso, conf, spoof = [], [], []
        for ingress, src in sources.items():
            any_run, new_run = runs.any.outcomes.get(ingress, []), runs.new.outcomes.get(ingress, [])
            t_any, t_new = tok("any", ingress), tok("new", ingress)
            iso.append(
                self._part(
                    "isolation",
                    ingress,
                    (t_new, t_any, src.key, exp.shared_keys[src.key]),
                    isolation_part,
                    hs,
                    network,
                    spaces,
                    ingress,
                    src,
                    [("new", new_run), ("any", any_run)],
                    exp.shared,
                )
            )
            conf.append(
                self._part(
                    "conformance",
                    ingress,
                    (t_new, src.key, exp.rows.get(src.key)),
                    conformance_part,
                    hs,
                    network,
                    spaces,
                    keep_ip,
                    ingress,
                    src,
                    new_run,
                )
            )
            spoof.append(
                self._part(
                    "spoof",
                    ingress,
                    (t_any, src.key),
                    spoof_part,
                    hs,
                    spaces,
                    ingress,
                    src,
                    any_run,
                )
            )
        loops: list[Violation] = []
        for ingress, outs in runs.any.outcomes.items():
            maybe = sources.get(ingress)
            loops += self._part(
                "loop",
                ingress,
                (tok("any", ingress), maybe.key if maybe else None),
                loop_part,
                hs,
                ingress,
                maybe,
                outs,
            )
        commits: list[Violation] = []
        for ingress in runs.new.outcomes:
            maybe = sources.get(ingress)
            if maybe is None or not runs.new_commits(ingress):
                continue
            src = maybe
            commits += self._part(
                "commit",
                ingress,
                (tok("new", ingress), src.key, exp.rows.get(src.key), exp.owners_key),
                commit_part,
                hs,
                network,
                spaces,
                src,
                runs.new_commits(ingress),
                runs.new.outcomes.get(ingress, []),
                exp.rows.get(src.key, {}),
                exp.owners,
            )
        self._cache, self._blocks = self._next, self._next_blocks

        stateful = sum(1 for a in allowed if not hs.is_empty(a.reply))
        paths = sum(len(v) for v in runs.any.outcomes.values())
        return [
            _result(
                "isolation",
                "every packet delivered across tenants, injected at every edge port, in every conntrack "
                "state (and again with every lookup new)",
                "all headers × all ct states",
                {"cross-tenant deliveries": sum(n for _, n in iso)},
                [v for vs, _ in iso for v in vs],
            ),
            _result(
                "conformance",
                "every packet delivered inside a tenant when every conntrack lookup says new",
                "all headers, ct_state=+trk+new at every lookup",
                {"intra-tenant deliveries": sum(n for _, n in conf)},
                [v for vs, _ in conf for v in vs],
            ),
            _result(
                "allowed-delivered",
                "for every granted (source, destination): new packets with the bound source, the "
                "destination address and MAC (or gateway MAC, TTL >= 2), any granted service; and "
                "replies of stateful grants",
                "granted services × bound addresses",
                {"granted pairs": len(allowed), "stateful reply spaces": stateful},
                [v for vs, _ in pairs for v in vs],
            ),
            _result(
                "spoof-guard",
                "every delivered packet of every edge port, in every conntrack state",
                "all headers × all ct states",
                {"edge ports": len(sources), "deliveries": sum(n for _, n in spoof)},
                [v for vs, _ in spoof for v in vs],
            ),
            _result(
                "loop-free",
                "every path of every packet (loops); the allowed spaces (black holes)",
                "all headers × all ct states",
                {"paths": paths},
                loops + [v for _, vs in pairs for v in vs],
            ),
            _result(
                "commit-safety",
                "every ct(commit) met by a new packet of every edge port",
                "committed packets × zones",
                {"commit points": len(runs.new.commits)},
                commits,
            ),
        ]


def _result(
    pid: str, description: str, space: str, counts: Mapping[str, int], violations: Sequence[Violation]
) -> PropertyResult:
    _, title, statement = next(p for p in PROPERTIES if p[0] == pid)
    return PropertyResult(pid, title, statement, Checked(description, space, dict(counts)), tuple(violations))
