"""Policy stages: grants (policies, shared services) compiled to conjunctive matches.

A grant "endpoints A may open connections to endpoints B on services P" is enforced
twice: in ``policy_src`` on the switches of A and in ``policy_dst`` on the switches of B.
On one switch and side it costs, with ``L`` the local endpoints, ``R`` the remote side
and ``S`` the service matches::

    min(|L|·|R|·|S|, |L| + |R| + |S| + 1) flows

direct flows when the product is that small, else one OVS ``conjunction`` (three clause
sets plus one ``conj_id`` flow). Each grant has its own priority (stateful grants
above stateless ones, document order within), so two conjunctions never share a
priority; :func:`check_conjunctions` re-checks the emitted rules and refuses overlapping
conjunctions at one priority (the silent-misbehaviour trap of antrea#367).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from dataclasses import field as _field

from segctl.errors import CompileError
from segctl.flows.cookies import Kind, make_cookie
from segctl.flows.ofctl import Action, Conjunction, Ct, FieldMatch, GotoTable
from segctl.flows.pipeline import (
    EGRESS,
    META_ORIGIN_MASK,
    META_SEGMENT_MASK,
    META_TENANT_MASK,
    POLICY_DST,
    POLICY_SRC,
    PRIO_POLICY_BOTTOM,
    PRIO_POLICY_TOP,
    ROUTE,
    metadata_value,
)
from segctl.flows.rules import Rule
from segctl.topology.network import EndpointInfo, Network
from segctl.topology.schema import Service

__all__ = [
    "Grant",
    "GrantCache",
    "check_conjunctions",
    "grant_rules",
    "network_grants",
    "port_range_masks",
    "service_matches",
]

Match = tuple[tuple[str, str], ...]
_CTX = META_TENANT_MASK | META_SEGMENT_MASK | META_ORIGIN_MASK


@dataclass(frozen=True)
class Grant:
    """One enforceable allow: sources → destinations on services, with its actions per side."""

    name: str
    cookie_kind: Kind
    cookie_tenant: int
    cookie_index: int
    sources: tuple[EndpointInfo, ...]
    destinations: tuple[EndpointInfo, ...]
    services: tuple[Match, ...]
    stateful: bool
    src_tenant: int  # tenant id of the sources (zone at the source side)
    dst_tenant: int  # tenant id of the destinations (zone at the destination side)


def port_range_masks(lo: int, hi: int) -> list[tuple[int, int]]:
    """Cover ``lo..hi`` with the fewest ``value/mask`` pairs (16-bit ports).

    >>> port_range_masks(8080, 8080), port_range_masks(8000, 8015)
    ([(8080, 65535)], [(8000, 65520)])
    """
    out: list[tuple[int, int]] = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << 16
        while size > hi - lo + 1:
            size >>= 1
        out.append((lo, 0xFFFF & ~(size - 1)))
        lo += size
    return out


def service_matches(services: Iterable[Service]) -> tuple[Match, ...]:
    """The match pairs of each service (deduplicated, in first-seen order)."""
    out: dict[Match, None] = {}
    for svc in services:
        if svc.proto == "any":
            out[(("proto", "ip"),)] = None
        elif svc.proto == "icmp":
            out[(("proto", "icmp"),)] = None
        elif svc.ports is None:
            out[(("proto", svc.proto),)] = None
        else:
            field = f"{svc.proto}_dst"
            for r in svc.ports:
                for value, mask in port_range_masks(r.lo, r.hi):
                    text = str(value) if mask == 0xFFFF else f"{value:#x}/{mask:#x}"
                    out[(("proto", svc.proto), (field, text))] = None
    return tuple(out)


def network_grants(network: Network) -> list[Grant]:
    """Every grant of the intent, in priority order (stateful first, then document order)."""
    grants: list[Grant] = []
    for tenant in network.tenants:
        for index, pol in enumerate(network.policies(tenant.name)):
            grants.append(
                Grant(
                    name=f"policy {tenant.name}/{pol.name}",
                    cookie_kind=Kind.POLICY,
                    cookie_tenant=tenant.id,
                    cookie_index=index,
                    sources=tuple(network.select(tenant.name, pol.from_)),
                    destinations=tuple(network.select(tenant.name, pol.to)),
                    services=service_matches(pol.services),
                    stateful=pol.stateful,
                    src_tenant=tenant.id,
                    dst_tenant=tenant.id,
                )
            )
    for index, svc in enumerate(network.shared_services):
        providers = tuple(network.shared_providers(svc))
        consumers = network.shared_consumers(svc)
        provider_tenant = network.tenant(svc.provider.tenant).id
        for tenant in network.tenants:
            mine = tuple(dict.fromkeys(c for c in consumers if c.tenant == tenant.name))
            if not mine:
                continue
            grants.append(
                Grant(
                    name=f"shared-service {svc.name} (consumer {tenant.name})",
                    cookie_kind=Kind.SHARED,
                    cookie_tenant=tenant.id,
                    cookie_index=index,
                    sources=mine,
                    destinations=providers,
                    services=service_matches(svc.services),
                    stateful=True,
                    src_tenant=tenant.id,
                    dst_tenant=provider_tenant,
                )
            )
    grants.sort(key=lambda g: not g.stateful)  # stable: document order within each class
    if len(grants) > PRIO_POLICY_TOP - PRIO_POLICY_BOTTOM + 1:
        raise CompileError(
            f"{len(grants)} policy grants exceed the {PRIO_POLICY_TOP - PRIO_POLICY_BOTTOM + 1} "
            "priorities of the policy band"
        )
    return grants


def _meta(value: int, mask: int) -> tuple[str, str]:
    return ("metadata", f"{value:#x}/{mask:#x}")


def _combine(*parts: Match) -> list[tuple[str, str]]:
    """Union of match pairs; the most specific protocol shorthand wins (ip < tcp/udp/icmp)."""
    out: dict[str, str] = {}
    for part in parts:
        for name, value in part:
            if name == "proto" and out.get("proto", "ip") != "ip" and value == "ip":
                continue
            out[name] = value
    return list(out.items())


@dataclass
class GrantCache:
    """What :func:`grant_rules` builds once per grant and side, not once per switch.

    ``remote``: the unique remote-side matches; ``shared``: the conjunction's remote and
    service clause flows and its ``conj_id`` flow (switch independent). Keyed by (table, rank).
    """

    remote: dict[tuple[int, int], list[Match]] = _field(default_factory=dict)
    shared: dict[tuple[int, int], list[Rule]] = _field(default_factory=dict)


def grant_rules(
    grant: Grant,
    rank: int,
    switch: str,
    segment_index: Callable[[EndpointInfo], int],
    *,
    cache: GrantCache | None = None,
) -> list[Rule]:
    """The policy_src and policy_dst rules of one grant on one switch (rank = its position).

    The local side matches the endpoint's full context (tenant, segment, origin) with its
    address, so a rule fires only for packets that are being delivered to (or sent by)
    that endpoint; a frame addressed to one endpoint's MAC and another's IP never commits.
    Pass one ``cache`` for all switches of a compilation to build the switch-independent
    parts once.
    """
    cache = GrantCache() if cache is None else cache
    priority = PRIO_POLICY_TOP - rank
    conj_id = rank + 1
    rules: list[Rule] = []
    local_src = [ep for ep in grant.sources if ep.switch == switch]
    local_dst = [ep for ep in grant.destinations if ep.switch == switch]
    if local_src:
        local = [
            (
                _meta(metadata_value(grant.src_tenant, segment_index(ep)), _CTX),
                ("proto", "ip"),
                ("nw_src", str(ep.ip)),
            )
            for ep in local_src
        ]
        remote = _remote(cache, (POLICY_SRC.id, rank), grant.destinations, "nw_dst")
        actions: list[Action] = [Ct(commit=True, zone=grant.src_tenant)] if grant.stateful else []
        actions.append(GotoTable(ROUTE.id))
        rules += _side(grant, POLICY_SRC.id, priority, conj_id, local, remote, actions, cache)
    if local_dst:
        local = [
            (
                _meta(metadata_value(grant.dst_tenant, segment_index(ep), _origin(grant)), _CTX),
                ("proto", "ip"),
                ("nw_dst", str(ep.ip)),
            )
            for ep in local_dst
        ]
        remote = _remote(cache, (POLICY_DST.id, rank), grant.sources, "nw_src")
        actions = []
        if grant.stateful:
            actions.append(Ct(commit=True, zone=grant.dst_tenant))
            if grant.src_tenant != grant.dst_tenant:
                # Also in the consumer's zone: shared_reply finds the consumer tenant by it.
                actions.append(Ct(commit=True, zone=grant.src_tenant))
        actions.append(GotoTable(EGRESS.id))
        rules += _side(grant, POLICY_DST.id, priority, conj_id, local, remote, actions, cache)
    return rules


def _remote(cache: GrantCache, key: tuple[int, int], eps: Sequence[EndpointInfo], name: str) -> list[Match]:
    remote = cache.remote.get(key)
    if remote is None:
        remote = cache.remote[key] = list(dict.fromkeys((("proto", "ip"), (name, str(ep.ip))) for ep in eps))
    return remote


def _origin(grant: Grant) -> int:
    return grant.src_tenant if grant.src_tenant != grant.dst_tenant else 0


def _side(
    grant: Grant,
    table: int,
    priority: int,
    conj_id: int,
    local: Sequence[Match],
    remote: Sequence[Match],
    actions: Sequence[Action],
    cache: GrantCache,
) -> list[Rule]:
    cookie = make_cookie(table, grant.cookie_kind, grant.cookie_tenant, grant.cookie_index)
    local_u, remote_u, services = list(dict.fromkeys(local)), remote, grant.services
    n_l, n_r, n_s = len(local_u), len(remote_u), len(services)
    if n_l * n_r * n_s <= n_l + n_r + n_s + 1:
        return [
            Rule.make(table, priority, cookie, _combine(lm, rm, sm), actions)
            for lm in local_u
            for rm in remote_u
            for sm in services
        ]
    rules = [Rule.make(table, priority, cookie, m, [Conjunction(conj_id, 1, 3)]) for m in local_u]
    shared = cache.shared.get((table, conj_id))
    if shared is None:
        shared = [
            Rule.make(table, priority, cookie, m, [Conjunction(conj_id, clause, 3)])
            for clause, members in ((2, remote_u), (3, services))
            for m in members
        ]
        shared.append(
            Rule.make(table, priority, cookie, [("proto", "ip"), ("conj_id", str(conj_id))], actions)
        )
        cache.shared[(table, conj_id)] = shared
    return rules + shared


# ---------------------------------------------------------------- overlap check


def _disjoint(a: tuple[FieldMatch, ...], b: tuple[FieldMatch, ...]) -> bool:
    bm = {m.field: m for m in b}
    for m in a:
        other = bm.get(m.field)
        if other is not None and (m.value ^ other.value) & m.mask & other.mask:
            return True
    return False


def check_conjunctions(rules: Iterable[Rule], *, switch: str = "") -> None:
    """Refuse two conjunctions that may match one packet at one (table, priority).

    Two conjunctions A and B are disjoint when some clause of A and some clause of B
    have pairwise disjoint flows; otherwise they may overlap and CompileError is raised.
    """
    levels: dict[tuple[int, int], dict[int, list[tuple[Rule, int]]]] = defaultdict(lambda: defaultdict(list))
    for rule in rules:
        if type(rule.actions[0]) is not Conjunction:
            continue  # a Rule with a conjunction action carries only conjunction actions
        for action in rule.actions:
            if isinstance(action, Conjunction):
                levels[(rule.table, rule.priority)][action.id].append((rule, action.clause))
    # only levels with two or more conjunctions need the (parsed) matches
    clauses: dict[tuple[int, int], dict[int, dict[int, list[tuple[FieldMatch, ...]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    parsed: dict[int, tuple[FieldMatch, ...]] = {}
    for level, members_by_id in levels.items():
        if len(members_by_id) < 2:
            continue
        for cid, members in members_by_id.items():
            for rule, clause in members:
                match = parsed.get(id(rule))
                if match is None:
                    match = parsed[id(rule)] = rule.to_flow().match
                clauses[level][cid][clause].append(match)
    for (table, priority), by_id in sorted(clauses.items()):
        ids = sorted(by_id)
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                separated = any(
                    all(_disjoint(fa, fb) for fa in by_id[a][ca] for fb in by_id[b][cb])
                    for ca in by_id[a]
                    for cb in by_id[b]
                )
                if not separated:
                    raise CompileError(
                        f"switch {switch or '?'} table {table} priority {priority}: conjunctions "
                        f"{a} and {b} may match the same packet; refusing to emit them"
                    )
