"""Policy stages: grants (policies, shared services) compiled to conjunctive matches.

A grant "endpoints A may open connections to endpoints B on services P" is enforced
twice: in ``policy_src`` on the switches of A and in ``policy_dst`` on the switches of B.
On one switch and side it costs, with ``L`` the local endpoints, ``R`` the remote side
and ``S`` the service matches::

    min(|L|·|R|·|S|, |L| + |R| + |S| + 1) flows

direct flows when the product is that small, else one OVS ``conjunction`` (three clause
sets plus one ``conj_id`` flow). Where a grant carries IPv6 (a source and a destination
with ipv6 in one segment, or in two segments with a ``gateway6`` each,
:attr:`Grant.ipv6_segments`) its clauses hold both families: a routed IPv6 remote address
(global, in a segment with ``gateway6``) matches as it is, any other the remote endpoint's
own context, so it meets only local endpoints of its segment; services take their IPv6
form (:func:`segctl.flows.services.family_match`).

**Priorities are ranked per context domain.** Every rule of one side of a grant matches
the metadata TENANT and ORIGIN bits of that side exactly: ``policy_src`` the source
tenant with ORIGIN 0, ``policy_dst`` the destination tenant with ORIGIN = the consumer
tenant for a shared service (0 otherwise). That pair is the side's :data:`Domain`. Rules
of two domains never match one packet, so only the grants of one domain compete, and
each side is ranked within its domain in precedence order, the ranks packed: grants that
never meet one packet share a priority (:func:`rank_grants`); priority
``PRIO_POLICY_TOP - rank`` (guardrail band: ``PRIO_GUARDRAIL_TOP - rank``). A change of
one tenant's policies moves only the rules of its own domains. Conjunction ids are the
grant's identity (:func:`conj_id`), unique per table across domains and unchanged by other
grants. ``segctl.flows.conjunctions.check_conjunctions`` re-checks the emitted rules and
refuses overlapping conjunctions at one priority (the silent-misbehaviour trap of
antrea#367) and one id at two priorities of a table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from dataclasses import field as _field
from functools import cached_property

from segctl.errors import CompileError
from segctl.flows.external import OUTSIDE
from segctl.flows.pipeline import (
    EGRESS,
    LOG_MAX_LEN,
    META_ORIGIN_MASK,
    META_SEGMENT_MASK,
    META_TENANT_MASK,
    POLICY_DST,
    POLICY_SRC,
    PRIO_GUARDRAIL_BOTTOM,
    PRIO_GUARDRAIL_TOP,
    PRIO_POLICY_BOTTOM,
    PRIO_POLICY_TOP,
    ROUTE,
    metadata_value,
)
from segctl.flows.rules import Rule
from segctl.flows.services import Match, Spans, family_match, service_matches, service_spans, spans_meet
from segctl.openflow.cookies import Kind, make_cookie
from segctl.openflow.ofctl import Action, Conjunction, Controller, Ct, Drop, GotoTable
from segctl.topology.network import EndpointInfo, Network
from segctl.topology.ordered import ACTION_ORDER
from segctl.topology.schema import DEFAULT_POLICY_PRIORITY

__all__ = [
    "CONJ_INDEX_BITS",
    "CONJ_SHARED_BIT",
    "CONJ_TENANT_SHIFT",
    "PACK_ENDPOINTS",
    "PACK_LIMIT",
    "PACK_SERVICES",
    "Domain",
    "Grant",
    "GrantCache",
    "conj_id",
    "domain_name",
    "grant_rules",
    "grants_overlap",
    "network_grants",
    "rank_grants",
    "tenant_grants",
]
_CTX = META_TENANT_MASK | META_SEGMENT_MASK | META_ORIGIN_MASK
_DOMAIN_MASK = META_TENANT_MASK | META_ORIGIN_MASK
#: (TENANT, ORIGIN) metadata bits that every rule of one grant side matches exactly.
Domain = tuple[int, int]

#: Conjunction id layout (31 bits, so it never looks negative as a signed int32):
#: bit 30 = shared service, bits 18-29 = cookie tenant (policy: its tenant; shared
#: service: the consumer tenant), bits 0-17 = cookie index + 1 (policy position in its
#: tenant, shared-service position). See :func:`conj_id`.
CONJ_SHARED_BIT = 1 << 30
CONJ_TENANT_SHIFT = 18
CONJ_INDEX_BITS = 18


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
    src_rank: int = 0  # position among the grants of its band in its policy_src domain (0 = highest)
    dst_rank: int = 0  # position among the grants of its band in its policy_dst domain
    log: bool = False  # the source side's decision also goes to the controller (policy log)
    action: str = "allow"  # allow, or deny (a drop)
    priority: int = DEFAULT_POLICY_PRIORITY  # the intent's priority (tenant band order)
    band: str = "tenant"  # tenant, or guardrail (above the intra-segment allow)
    conj: int = 0  # the conjunction id when not the cookie identity's (guardrail band)
    #: A policy with an external peer: which side is outside ("src" or "dst"; that side's
    #: endpoints are empty) and its addresses, as disjoint prefixes.
    outside_side: str = ""
    outside: tuple[str, ...] = ()

    @cached_property
    def ipv6_segments(self) -> frozenset[tuple[str, str]]:
        """The segments whose endpoints this grant gives IPv6 too: a source and a destination
        with ipv6 in one segment, or in two segments with a ``gateway6`` each (across tenants,
        a shared service, only the latter) (:func:`segctl.topology.analysis.ipv6_applies`).
        Empty for most grants: no IPv6 rule is emitted."""

        if self.outside_side:  # an external peer: IPv6 when its prefixes are, to routed endpoints
            if not any(":" in prefix for prefix in self.outside):
                return frozenset()
            inside = self.destinations if self.outside_side == "src" else self.sources
            return frozenset((ep.tenant, ep.segment) for ep in inside if ep.ipv6 and ep.ipv6_gateway)

        def segments(eps: tuple[EndpointInfo, ...]) -> dict[tuple[str, str], bool]:
            return {(ep.tenant, ep.segment): ep.ipv6_gateway is not None for ep in eps if ep.ipv6 is not None}

        sources, destinations = segments(self.sources), segments(self.destinations)
        routed = any(sources.values()) and any(destinations.values())
        return frozenset(
            seg
            for side, other in ((sources, destinations), (destinations, sources))
            for seg, has_gateway in side.items()
            if seg in other or (routed and has_gateway)
        )

    @property
    def origin(self) -> int:
        """ORIGIN bits of the destination context: the consumer tenant across tenants, else 0."""
        return self.src_tenant if self.src_tenant != self.dst_tenant else 0

    @property
    def src_domain(self) -> Domain:
        return (self.src_tenant, 0)

    @property
    def dst_domain(self) -> Domain:
        return (self.dst_tenant, self.origin)

    @property
    def conj_id(self) -> int:
        return self.conj or conj_id(self.cookie_kind, self.cookie_tenant, self.cookie_index)

    @property
    def top(self) -> int:
        """The highest priority of the grant's band."""
        return PRIO_GUARDRAIL_TOP if self.band == "guardrail" else PRIO_POLICY_TOP


def conj_id(kind: Kind, tenant: int, index: int) -> int:
    """The conjunction id of a grant: its cookie identity (kind, tenant, index) packed in 31 bits.

    Unique per table: a grant has at most one conjunction per table, and (kind, tenant,
    index) names one grant (a policy of a tenant, or a shared service for one consumer
    tenant). It changes only when the grant's own cookie does, never because another
    grant was added, removed or made stateless. Table 40's route conjunctions (ids 1..the
    number of shared providers) live in another table, so they never meet these.

    >>> conj_id(Kind.POLICY, 1, 0), conj_id(Kind.SHARED, 2, 0) == (1 << 30) | (2 << 18) | 1
    (262145, True)
    """
    if not 0 < tenant <= META_TENANT_MASK or not 0 <= index < (1 << CONJ_INDEX_BITS) - 1:
        raise CompileError(f"no conjunction id for {kind.name.lower()} tenant {tenant} index {index}")
    shared = CONJ_SHARED_BIT if kind is Kind.SHARED else 0
    return shared | (tenant << CONJ_TENANT_SHIFT) | (index + 1)


def domain_name(domain: Domain, names: dict[int, str] | None = None) -> str:
    """``tenant acme`` or ``tenant infra, origin globex`` (ids when no names are given)."""
    names = names or {}
    tenant, origin = domain
    text = f"tenant {names.get(tenant, tenant)}"
    return text + (f", origin {names.get(origin, origin)}" if origin else "")


def network_grants(network: Network) -> list[Grant]:
    """Every grant of the tenant tier in document order (policies per tenant, then shared
    services per consumer tenant), each side ranked within its domain (:func:`rank_grants`).
    With guardrails, :func:`segctl.flows.guardrails.ordered_grants` adds their band."""
    return rank_grants(tenant_grants(network), {t.id: t.name for t in network.tenants})


def tenant_grants(network: Network) -> list[Grant]:
    """The tenant tier's grants in document order, not yet ranked."""
    grants: list[Grant] = []
    for tenant in network.tenants:
        for index, pol in enumerate(network.policies(tenant.name)):
            peer = pol.to if pol.to.external is not None else pol.from_
            side = "" if peer.external is None else ("dst" if peer is pol.to else "src")
            grants.append(
                Grant(
                    name=f"policy {tenant.name}/{pol.name}",
                    cookie_kind=Kind.POLICY,
                    cookie_tenant=tenant.id,
                    cookie_index=index,
                    sources=tuple(network.select(tenant.name, pol.from_)),
                    destinations=tuple(network.select(tenant.name, pol.to)),
                    services=service_matches(pol.services),
                    stateful=pol.stateful and pol.action == "allow",
                    src_tenant=OUTSIDE if side == "src" else tenant.id,  # the outside's origin
                    dst_tenant=tenant.id,
                    log=pol.log,
                    action=pol.action,
                    priority=pol.priority,
                    outside_side=side,
                    outside=tuple(str(p) for p in peer.outside) if side else (),
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
                    log=svc.log,
                )
            )
    return grants


def _rank_key(grant: Grant, position: int) -> tuple[int, ...]:
    """Guardrail band: the order given (evaluation order, copies under a pass in place);
    tenant band: priority, deny before allow, stateful before stateless, document order."""
    if grant.band == "guardrail":
        return (0, position)
    return (1, grant.priority, ACTION_ORDER[grant.action], not grant.stateful, position)


#: Grants per band and domain up to which priorities are packed (:func:`rank_grants`);
#: beyond it (an adversarial intent) every grant gets its own priority, as before packing.
PACK_LIMIT = 400


def rank_grants(grants: Sequence[Grant], names: dict[int, str] | None = None) -> list[Grant]:
    """``grants`` with ``src_rank``/``dst_rank`` set within their band and domain.

    Precedence inside a domain: the guardrail band keeps the order given; the tenant band
    orders by priority (lower first), deny before allow at one priority, stateful before
    stateless allows, document order within. Ranks are **packed**: a grant ranks one below
    the lowest-ranked earlier grant of its domain that it *overlaps* (some packet matches
    both: common sources, common destinations and a common service), and at the top when it
    overlaps none. So overlapping grants keep their precedence, and grants that can never
    meet one packet share a priority, which lets them share clause flows (a set used by
    several rules is compiled once per priority, not once per use: the compiler merges
    equal clause flows into one flow with several ``conjunction()`` actions). Domains of
    more than :data:`PACK_LIMIT` grants get one rank per grant. Raises CompileError naming
    the domain when its ranks exceed the band's priorities, or when a grant has no
    conjunction id.
    """
    bands = {
        "tenant": PRIO_POLICY_TOP - PRIO_POLICY_BOTTOM + 1,
        "guardrail": PRIO_GUARDRAIL_TOP - PRIO_GUARDRAIL_BOTTOM + 1,
    }
    for g in grants:
        if not g.conj:
            conj_id(g.cookie_kind, g.cookie_tenant, g.cookie_index)  # range check, before any switch
    order = sorted(range(len(grants)), key=lambda i: _rank_key(grants[i], i))
    keys = [_endpoint_keys(g) for g in grants]
    ranks: list[list[int]] = [[0, 0] for _ in grants]
    for side in (0, 1):
        members: dict[tuple[str, Domain], list[int]] = defaultdict(list)
        for i in order:
            g = grants[i]
            members[(g.band, g.src_domain if side == 0 else g.dst_domain)].append(i)
        for (band, domain), group in members.items():
            packed = _packed(group, grants, keys)
            for i, rank in packed.items():
                ranks[i][side] = rank
            depth = max(packed.values()) + 1
            if depth > bands[band]:
                what = "policy grants" if band == "tenant" else "guardrail rules"
                raise CompileError(
                    f"{len(group)} {what} need {depth} priorities in the "
                    f"{'policy_src' if side == 0 else 'policy_dst'} domain of {domain_name(domain, names)}, "
                    f"more than the {bands[band]} of the {band} band"
                )
    return [replace(g, src_rank=ranks[i][0], dst_rank=ranks[i][1]) for i, g in enumerate(grants)]


_Keys = tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]], Spans]


#: The endpoint keys of an external peer: it meets every side (an outside prefix may hold a
#: provider's address; ranking such grants apart is always correct, sharing is not).
_ANY_PEER = frozenset({("", "*")})


def _endpoint_keys(grant: Grant) -> _Keys:
    return (
        _ANY_PEER if grant.outside_side == "src" else frozenset(ep.key for ep in grant.sources),
        _ANY_PEER if grant.outside_side == "dst" else frozenset(ep.key for ep in grant.destinations),
        service_spans(grant.services),
    )


def _meet(a: frozenset[tuple[str, str]], b: frozenset[tuple[str, str]]) -> bool:
    return a is _ANY_PEER or b is _ANY_PEER or not a.isdisjoint(b)


def grants_overlap(a: Grant, b: Grant, a_keys: _Keys | None = None, b_keys: _Keys | None = None) -> bool:
    """May one packet match both grants: common sources, common destinations (an external
    peer meets any), a common service?"""
    (sa, da, va), (sb, db, vb) = a_keys or _endpoint_keys(a), b_keys or _endpoint_keys(b)
    if not _meet(sa, sb) or not _meet(da, db):
        return False
    return spans_meet(va, vb)


#: A grant packs (shares a priority with grants it never meets) only when its conjunction
#: is small enough for check_conjunctions to prove two at one priority disjoint cheaply
#: (flow pairs of two clauses); a bigger one gets a priority of its own, as before packing.
PACK_SERVICES, PACK_ENDPOINTS = 32, 512


def _packable(grant: Grant) -> bool:
    return (
        len(grant.services) <= PACK_SERVICES
        and len(grant.sources) <= PACK_ENDPOINTS
        and len(grant.destinations) <= PACK_ENDPOINTS
    )


def _packed(group: list[int], grants: Sequence[Grant], keys: list[_Keys]) -> dict[int, int]:
    """Ranks of one domain's grants (precedence order): one below the lowest earlier grant it
    overlaps; a big grant (:data:`PACK_SERVICES`) alone at the next free rank; sequential
    past :data:`PACK_LIMIT`."""
    if len(group) > PACK_LIMIT:
        return {i: rank for rank, i in enumerate(group)}
    ranks: dict[int, int] = {}
    alone: set[int] = set()  # ranks held by a big grant
    for i in group:
        if not _packable(grants[i]):
            rank = max(ranks.values(), default=-1) + 1
            alone.add(rank)
            ranks[i] = rank
            continue
        rank = 0
        for j, other in ranks.items():
            if other >= rank and grants_overlap(grants[i], grants[j], keys[i], keys[j]):
                rank = other + 1
        while rank in alone:
            rank += 1
        ranks[i] = rank
    return ranks


def _meta(value: int, mask: int) -> tuple[str, str]:
    return ("metadata", f"{value:#x}/{mask:#x}")


def _combine(*parts: Match) -> list[tuple[str, str]]:
    """Union of match pairs; the most specific protocol shorthand wins (ip < tcp/udp/icmp,
    ipv6 < tcp6/udp6/icmp6)."""
    out: dict[str, str] = {}
    for part in parts:
        for name, value in part:
            if name == "proto" and out.get("proto", "ip") not in ("ip", "ipv6") and value in ("ip", "ipv6"):
                continue
            out[name] = value
    return list(out.items())


@dataclass
class GrantCache:
    """What :func:`grant_rules` builds once per grant and side, not once per switch.

    ``remote``: the unique remote-side matches; ``shared``: the conjunction's remote and
    service clause flows and its ``conj_id`` flow (switch independent). Keyed by (table,
    conj_id), which names one grant side.
    """

    remote: dict[tuple[int, int], list[Match]] = _field(default_factory=dict)
    shared: dict[tuple[int, int], list[Rule]] = _field(default_factory=dict)


def grant_rules(
    grant: Grant,
    switch: str,
    segment_index: Callable[[EndpointInfo], int],
    *,
    cache: GrantCache | None = None,
) -> list[Rule]:
    """The policy_src and policy_dst rules of one grant on one switch.

    Priorities come from the grant's rank in each side's domain (``src_rank``,
    ``dst_rank``: :func:`rank_grants`), the conjunction id from its identity
    (:func:`conj_id`). The local side matches the endpoint's full context (tenant,
    segment, origin) with its address, so a rule fires only for packets that are being
    delivered to (or sent by) that endpoint; a frame addressed to one endpoint's MAC and
    another's IP never commits. The remote and service clauses and the ``conj_id`` flow
    of a conjunction match the side's domain (TENANT and ORIGIN bits), so every rule of
    one domain is disjoint from every rule of another. Pass one ``cache`` for all switches
    of a compilation to build the switch-independent parts once.
    """
    cache = GrantCache() if cache is None else cache
    cid = grant.conj_id
    rules: list[Rule] = []
    local_src = [ep for ep in grant.sources if ep.switch == switch]
    local_dst = [ep for ep in grant.destinations if ep.switch == switch]
    if local_src:
        tenant = grant.src_tenant
        local = _local(grant, local_src, lambda ep: metadata_value(tenant, segment_index(ep)), "src")
        remote = _remote(cache, (POLICY_SRC.id, cid), grant, grant.destinations, segment_index, "dst")
        actions: list[Action] = [Controller(max_len=LOG_MAX_LEN)] if grant.log else []
        if grant.action != "allow":
            actions = actions or [Drop()]
        else:
            if grant.stateful:
                actions.append(Ct(commit=True, zone=grant.src_tenant))
            actions.append(GotoTable(ROUTE.id))
        level = (POLICY_SRC.id, grant.top - grant.src_rank, cid, grant.src_domain)
        rules += _side(grant, level, local, remote, actions, cache)
    if local_dst:
        tenant, origin = grant.dst_tenant, grant.origin
        local = _local(grant, local_dst, lambda ep: metadata_value(tenant, segment_index(ep), origin), "dst")
        remote = _remote(cache, (POLICY_DST.id, cid), grant, grant.sources, segment_index, "src")
        actions = []
        if grant.action != "allow":
            actions.append(Drop())
        elif grant.stateful:
            actions.append(Ct(commit=True, zone=grant.dst_tenant))
            if grant.src_tenant != grant.dst_tenant and not grant.outside_side:
                # Also in the consumer's zone: shared_reply finds the consumer tenant by it.
                actions.append(Ct(commit=True, zone=grant.src_tenant))
        if grant.action == "allow":
            actions.append(GotoTable(EGRESS.id))
        level = (POLICY_DST.id, grant.top - grant.dst_rank, cid, grant.dst_domain)
        rules += _side(grant, level, local, remote, actions, cache)
    return rules


def _local(
    grant: Grant, eps: Sequence[EndpointInfo], context: Callable[[EndpointInfo], int], side: str
) -> list[Match]:
    """The local clause: per endpoint its full context with its IPv4 address, and with each
    of its IPv6 addresses where the grant carries IPv6: global and link-local when the other
    side has an endpoint in its segment, else (routed only) the global one."""
    others = grant.destinations if side == "src" else grant.sources
    on_link = {(e.tenant, e.segment) for e in others}
    out: list[Match] = []
    for ep in eps:
        meta = _meta(context(ep), _CTX)
        out.append((meta, ("proto", "ip"), (f"nw_{side}", str(ep.ip))))
        if (ep.tenant, ep.segment) in grant.ipv6_segments:
            addresses = ep.ipv6_sources if (ep.tenant, ep.segment) in on_link else (ep.ipv6,)
            out += [(meta, ("proto", "ipv6"), (f"ipv6_{side}", str(a))) for a in addresses]
    return out


def _remote(
    cache: GrantCache,
    key: tuple[int, int],
    grant: Grant,
    eps: Sequence[EndpointInfo],
    segment_index: Callable[[EndpointInfo], int],
    side: str,
) -> list[Match]:
    """The remote clause (switch independent, built once per grant side): IPv4 addresses,
    and IPv6 addresses where the grant carries IPv6: a routed one (the global address of an
    endpoint in a segment with ``gateway6``) as it is, any other with the remote endpoint's
    own context, so that it meets only local endpoints of its segment (one tenant, ORIGIN 0;
    the gateway drops IPv6 from a segment without ``gateway6``)."""
    remote = cache.remote.get(key)
    if remote is None and grant.outside_side == side:  # an external peer: its prefixes
        remote = cache.remote[key] = [
            (("proto", "ipv6"), (f"ipv6_{side}", prefix))
            if ":" in prefix
            else (("proto", "ip"), (f"nw_{side}", prefix))
            for prefix in grant.outside
        ]
    if remote is None:
        out: dict[Match, None] = dict.fromkeys((("proto", "ip"), (f"nw_{side}", str(ep.ip))) for ep in eps)
        # the local side's segments: an address with a context meets only those
        local = {(e.tenant, e.segment) for e in (grant.sources if side == "dst" else grant.destinations)}
        for ep in eps:
            if (ep.tenant, ep.segment) in grant.ipv6_segments:
                meta = _meta(metadata_value(grant.dst_tenant, segment_index(ep)), _CTX)
                for address in ep.ipv6_sources:
                    field = (f"ipv6_{side}", str(address))
                    if address == ep.ipv6 and ep.ipv6_gateway is not None:  # routed
                        out[(("proto", "ipv6"), field)] = None
                    elif (ep.tenant, ep.segment) in local:
                        out[(meta, ("proto", "ipv6"), field)] = None
        remote = cache.remote[key] = list(out)
    return remote


def _family(match: Match) -> int:
    return 6 if ("proto", "ipv6") in match else 4


def _direct(lm: Match, rm: Match, sm: Match) -> list[tuple[str, str]] | None:
    """One direct flow of a local, a remote and a service match; None when they cannot meet
    (two families, two segments of an IPv6 pair, a service without packets in the family)."""
    family = _family(lm)
    if _family(rm) != family or (family == 6 and rm[0][0] == "metadata" and lm[0] != rm[0]):
        return None
    service = family_match(sm, family)
    return None if service is None else _combine(lm, rm, service)


#: Where one side of a grant goes: (table, priority, conjunction id, domain).
_Level = tuple[int, int, int, Domain]


def _side(
    grant: Grant,
    level: _Level,
    local: Sequence[Match],
    remote: Sequence[Match],
    actions: Sequence[Action],
    cache: GrantCache,
) -> list[Rule]:
    table, priority, cid, (tenant, origin) = level
    cookie = make_cookie(table, grant.cookie_kind, grant.cookie_tenant, grant.cookie_index)
    local_u, remote_u, services = list(dict.fromkeys(local)), remote, grant.services
    n_l, n_r, n_s = len(local_u), len(remote_u), len(services)
    if n_l * n_r * n_s <= n_l + n_r + n_s + 1:
        return [
            Rule.make(table, priority, cookie, match, actions)
            for lm in local_u
            for rm in remote_u
            for sm in services
            if (match := _direct(lm, rm, sm)) is not None
        ]
    rules = [Rule.make(table, priority, cookie, m, [Conjunction(cid, 1, 3)]) for m in local_u]
    shared = cache.shared.get((table, cid))
    if shared is None:
        domain = _meta(metadata_value(tenant, 0, origin), _DOMAIN_MASK)
        families = (4, 6) if grant.ipv6_segments else (4,)
        in_family = list(
            dict.fromkeys(m for sm in services for f in families if (m := family_match(sm, f)) is not None)
        )
        shared = [
            Rule.make(table, priority, cookie, _combine((domain,), m), [Conjunction(cid, clause, 3)])
            for clause, members in ((2, remote_u), (3, in_family))
            for m in members
        ]
        shared += [
            Rule.make(table, priority, cookie, [domain, ("proto", proto), ("conj_id", str(cid))], actions)
            for proto in ("ip", "ipv6")[: len(families)]
        ]
        cache.shared[(table, cid)] = shared
    return rules + shared
