"""The six properties' per-ingress (and per granted pair) contributions, as pure functions.

Each function here looks at the engine outcomes of ONE ingress (or one granted pair) and
the intent's expectations of that source, and returns its violations (and counts). The
property results of :mod:`segctl.verifier.properties` are these contributions combined in a
fixed order, so a full run and an incremental one (:mod:`segctl.verifier.incremental`, which
recomputes only the contributions whose inputs changed) give the same result. What each
property means is in the docstring of :mod:`segctl.verifier.properties`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from segctl.topology.analysis import Grant
from segctl.topology.network import EndpointInfo, Network
from segctl.verifier.headerspace import BDD, HeaderSpace
from segctl.verifier.spaces import ETH_IP, Spaces
from segctl.verifier.symbolic import (
    CONTROLLER,
    DELIVERED,
    LOOP,
    MISS,
    TRUNCATED,
    UNCONNECTED,
    UNSUPPORTED,
    CommitEvent,
    Outcome,
)

__all__ = [
    "Allowed",
    "Violation",
    "commit_part",
    "commit_zones",
    "conformance_part",
    "isolation_part",
    "loop_part",
    "pair_part",
    "spoof_part",
]

SwitchPort = tuple[str, int]
EndpointKey = tuple[str, str]
BLACK_HOLES = {MISS, UNCONNECTED, CONTROLLER, UNSUPPORTED, TRUNCATED, LOOP}


@dataclass(frozen=True)
class Violation:
    """One violated instance of a property.

    ``space`` holds the offending packets as injected (origin, live variable names);
    ``outcome`` is the engine outcome they were found in (its hops are the trace);
    ``ct_mode`` says what every ``ct()`` lookup returned in that run: ``new``, ``est``
    (``+est+rpl``) or ``any``.
    """

    property: str
    message: str
    ingress: tuple[str, int]
    src: str | None
    dst: str | None
    ct_mode: str
    space: BDD = field(compare=False, repr=False)
    outcome: Outcome | None = field(default=None, compare=False, repr=False)
    commit: CommitEvent | None = field(default=None, compare=False, repr=False)


@dataclass
class Allowed:
    """A granted (source, destination) pair: property 3's forward and reply spaces."""

    src: EndpointInfo
    dst: EndpointInfo
    forward: BDD
    reply: BDD
    grants: tuple[Grant, ...]


def endpoint_of(network: Network, qualified: str | None) -> EndpointInfo | None:
    if qualified is None:
        return None
    tenant, _, name = qualified.partition("/")
    return network.endpoint(tenant, name)


def delivered(outcomes: Sequence[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.disposition.kind == DELIVERED]


def grants_text(grants: Sequence[Grant]) -> str:
    return "; ".join(g.describe() for g in grants)


def isolation_part(
    hs: HeaderSpace,
    network: Network,
    spaces: Spaces,
    ingress: SwitchPort,
    src: EndpointInfo,
    runs: Sequence[tuple[str, Sequence[Outcome]]],
    shared: Mapping[tuple[EndpointKey, EndpointKey], Sequence[Grant]],
) -> tuple[list[Violation], int]:
    """Property 1 for one source: ``runs`` is ``[("new", run N), ("any", run A)]`` outcomes."""
    violations: list[Violation] = []
    checked = 0
    for mode, outcomes in runs:
        for o in delivered(outcomes):
            dst = endpoint_of(network, o.disposition.endpoint)
            if dst is None or dst.tenant == src.tenant:
                continue
            checked += 1
            origin = hs.origin(o.relation)
            if mode == "new":
                allowed = spaces.grants(shared.get((src.key, dst.key), []))
            elif (src.key, dst.key) in shared or (dst.key, src.key) in shared:
                allowed = hs.eq("eth_type", ETH_IP)
            else:
                allowed = hs.false
            bad = origin & ~allowed
            if hs.is_empty(bad):
                continue
            if mode == "any" and any(v.src == src.qualified and v.dst == dst.qualified for v in violations):
                continue  # already shown with every lookup new
            what = "new connection " if mode == "new" else ""
            message = (
                f"{what}traffic of tenant {src.tenant} ({src.qualified}) is "
                f"delivered to tenant {dst.tenant} ({dst.qualified}) outside any shared service"
            )
            violations.append(
                Violation("isolation", message, ingress, src.qualified, dst.qualified, mode, bad, o)
            )
    return violations, checked


def conformance_part(
    hs: HeaderSpace,
    network: Network,
    spaces: Spaces,
    keep_ip: BDD,
    ingress: SwitchPort,
    src: EndpointInfo,
    new: Sequence[Outcome],
) -> tuple[list[Violation], int]:
    """Property 2 for one source over its run-N outcomes; ``keep_ip``: addresses unchanged."""
    violations: list[Violation] = []
    checked = 0
    for o in delivered(new):
        dst = endpoint_of(network, o.disposition.endpoint)
        if dst is None or dst.tenant != src.tenant:
            continue
        checked += 1
        origin = hs.origin(o.relation)
        bad = origin & ~spaces.allowed_new(src, dst)
        if not hs.is_empty(bad):
            target = "itself" if src.key == dst.key else dst.qualified
            message = f"{src.qualified} reaches {target} with traffic no grant allows"
            violations.append(
                Violation("conformance", message, ingress, src.qualified, dst.qualified, "new", bad, o)
            )
            continue
        ipv4 = o.relation & hs.eq("eth_type", ETH_IP)
        nat = hs.origin(ipv4 & ~keep_ip)
        if not hs.is_empty(nat):
            message = (
                f"{src.qualified} -> {dst.qualified}: IPv4 addresses are "
                "rewritten on the way (segctl does no NAT)"
            )
            violations.append(
                Violation("conformance", message, ingress, src.qualified, dst.qualified, "new", nat, o)
            )
    return violations, checked


def spoof_part(
    hs: HeaderSpace, spaces: Spaces, ingress: SwitchPort, src: EndpointInfo, any_run: Sequence[Outcome]
) -> tuple[list[Violation], int]:
    """Property 4 for one source over its run-A outcomes (first violation only)."""
    bound = spaces.bound(src)
    checked = 0
    for o in delivered(any_run):
        checked += 1
        bad = hs.origin(o.relation) & ~bound
        if hs.is_empty(bad):
            continue
        message = (
            f"a packet from {src.qualified}'s port with a source not bound to it "
            f"is delivered to {o.disposition.endpoint}"
        )
        return [
            Violation("spoof-guard", message, ingress, src.qualified, o.disposition.endpoint, "any", bad, o)
        ], checked
    return [], checked


def loop_part(
    hs: HeaderSpace, ingress: SwitchPort, src: EndpointInfo | None, any_run: Sequence[Outcome]
) -> list[Violation]:
    """Property 5, loops: the first looping or truncated outcome of one ingress in run A."""
    for o in any_run:
        if o.disposition.kind in (LOOP, TRUNCATED):
            message = f"packets from {ingress[0]}:{ingress[1]} {o.disposition}"
            qualified = src.qualified if src else None
            return [
                Violation("loop-free", message, ingress, qualified, None, "any", hs.origin(o.relation), o)
            ]
    return []


def _cover(
    hs: HeaderSpace, outcomes: Sequence[Outcome], wanted: BDD, endpoint: str
) -> tuple[BDD, list[Outcome]]:
    """(part of ``wanted`` not delivered to ``endpoint``, outcomes that hold it)."""
    done = hs.false
    for o in outcomes:
        if o.disposition.kind == DELIVERED and o.disposition.endpoint == endpoint:
            done |= hs.origin(o.relation)
    missing = wanted & ~done
    if hs.is_empty(missing):
        return missing, []
    holders = [o for o in outcomes if not hs.is_empty(hs.origin(o.relation) & missing)]
    return missing, holders


def commit_zones(hs: HeaderSpace, commits: Sequence[CommitEvent], forward: BDD) -> frozenset[int]:
    """Zones in which the tables commit some of a pair's forward packets (run N commits of its source)."""
    return frozenset(c.zone for c in commits if not hs.is_empty(hs.origin(c.relation) & forward))


def pair_part(
    hs: HeaderSpace, a: Allowed, new: Sequence[Outcome], replies: Sequence[Outcome]
) -> tuple[list[Violation], list[Violation]]:
    """Properties 3 and 5 (black holes) for one granted pair: (allowed-delivered, loop-free)."""
    fwd_ingress, back = (a.src.switch, a.src.port), (a.dst.switch, a.dst.port)
    delivered_v: list[Violation] = []
    for mode, outs, wanted, ingress, sender, receiver in (
        ("new", new, a.forward, fwd_ingress, a.src, a.dst),
        ("est", replies, a.reply, back, a.dst, a.src),
    ):
        if mode == "est" and hs.is_empty(wanted):
            continue  # a stateless grant: no replies to deliver
        missing, holders = _cover(hs, outs, wanted, receiver.qualified)
        if hs.is_empty(missing):
            continue
        if mode == "new":
            message = (
                f"granted traffic {sender.qualified} -> {receiver.qualified} "
                f"({grants_text(a.grants)}) is not all delivered"
            )
        else:
            message = (
                f"replies {sender.qualified} -> {receiver.qualified} of a "
                f"granted stateful connection are not all delivered"
            )
        o = holders[0] if holders else None
        delivered_v.append(
            Violation(
                "allowed-delivered", message, ingress, sender.qualified, receiver.qualified, mode, missing, o
            )
        )
    holes: list[Violation] = []
    for mode, outs, wanted, ingress in (
        ("new", new, a.forward, fwd_ingress),
        ("est", replies, a.reply, back),
    ):
        for o in outs:
            if o.disposition.kind not in BLACK_HOLES:
                continue
            bad = hs.origin(o.relation) & wanted
            if not hs.is_empty(bad):
                message = (
                    f"allowed traffic {a.src.qualified} -> {a.dst.qualified}"
                    f"{' (replies)' if mode == 'est' else ''} ends {o.disposition}"
                )
                holes.append(
                    Violation("loop-free", message, ingress, a.src.qualified, a.dst.qualified, mode, bad, o)
                )
                break
    return delivered_v, holes


def commit_part(
    hs: HeaderSpace,
    network: Network,
    spaces: Spaces,
    src: EndpointInfo,
    commits: Sequence[CommitEvent],
    new: Sequence[Outcome],
    grants_to: Mapping[EndpointKey, tuple[Grant, ...]],
    owners: Mapping[int, frozenset[EndpointKey]],
) -> list[Violation]:
    """Property 6 for the run-N commits of one source; ``grants_to``: its grants per destination
    (key), ``owners``: per zone the endpoints whose packets may be tracked there."""
    violations: list[Violation] = []
    # (ok, repliers) depend only on the source and the zone: built once per zone, not per commit.
    unsafe: dict[int, BDD] = {}
    seen: set[tuple[str, int, int]] = set()
    for c in commits:
        outside = unsafe.get(c.zone)
        if outside is None:
            ok = hs.false
            for dst_key, grants in grants_to.items():
                dst = network.endpoint(*dst_key)
                zones = {network.tenant(src.tenant).id, network.tenant(dst.tenant).id}
                if c.zone in zones:
                    ok |= spaces.grants([g for g in grants if g.stateful]) & spaces.ip("ip_dst", dst.ip)
            repliers = hs.false
            for owner in sorted(owners.get(c.zone, frozenset())):
                if owner != src.key:
                    repliers |= spaces.ip("ip_dst", network.endpoint(*owner).ip)
            outside = unsafe[c.zone] = ~ok & repliers
        committed = hs.origin(c.relation) & spaces.bound(src)
        bad = committed & outside
        if hs.is_empty(bad):
            continue
        key = (c.switch, c.table, c.zone)
        if key in seen:
            continue
        seen.add(key)
        # Prefer a packet that is also delivered: the commit and the leak in one trace.
        o = next((o for o in delivered(new) if not hs.is_empty(hs.origin(o.relation) & bad)), None)
        if o is not None:
            bad &= hs.origin(o.relation)
        message = (
            f"{c.switch} table {c.table} commits traffic of {src.qualified} in zone "
            f"{c.zone} that no stateful grant allows"
        )
        reached = o.disposition.endpoint if o else None
        violations.append(
            Violation("commit-safety", message, c.ingress, src.qualified, reached, "new", bad, o, c)
        )
    return violations
