"""The guardrail band: guardrails compiled above the tenant tier of policy_src/policy_dst.

Each guardrail becomes one grant-shaped rule per (source tenant, destination tenant) it
selects, in evaluation order (:func:`segctl.topology.ordered.guardrail_order`), ranked in
the guardrail band (``PRIO_GUARDRAIL_TOP`` downwards, above the intra-segment allow):

* ``deny`` drops (the packet's head also goes to the controller when it is logged);
* ``allow`` admits like a stateful policy; between two tenants it is left out (a
  guardrail never opens traffic between tenants);
* ``pass`` hands over to the tenant tier. In one table that means: the guardrails below
  it must not see its packets, the tenant rules must. When no later guardrail of its
  domains overlaps it, the pass is simply left out (its packets fall to the tenant band).
  Otherwise the tenant rules it hands over to are copied *under* it, each narrowed to the
  pass (endpoints and services intersected), and a drop closes it: |pass| × |tenant rules
  of its domain| extra conjunctions, paid only where a pass is needed.

Between tenants a guardrail keeps only the consumer → provider pairs of shared services
(the only traffic that may cross), so a cross-tenant deny narrows a shared service and
costs nothing elsewhere. Guardrail conjunction ids are numbered in evaluation order from 1
with the tenant bits 0, a range no policy (tenant >= 1) or shared service (bit 30) uses.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import replace

from segctl.errors import CompileError
from segctl.flows.pipeline import PRIO_GUARDRAIL_BOTTOM, PRIO_GUARDRAIL_TOP
from segctl.flows.policy import (
    CONJ_TENANT_SHIFT,
    PACK_LIMIT,
    Domain,
    Grant,
    domain_name,
    grants_overlap,
    rank_grants,
    tenant_grants,
)
from segctl.flows.services import Match, intersect_match, service_matches
from segctl.openflow.cookies import Kind
from segctl.topology.network import EndpointInfo, Network
from segctl.topology.ordered import guardrail_order
from segctl.topology.schema import Guardrail

__all__ = ["guardrail_grants", "ordered_grants"]

_ANY: tuple[Match, ...] = ((("proto", "ip"),),)


def ordered_grants(network: Network) -> list[Grant]:
    """Every grant of the intent: the guardrail band, then the tenant tier, ranked."""
    tenant = tenant_grants(network)
    return rank_grants([*guardrail_grants(network, tenant), *tenant], {t.id: t.name for t in network.tenants})


def guardrail_grants(network: Network, tenant: Sequence[Grant]) -> list[Grant]:
    """The guardrail band in evaluation order, with conjunction ids.

    The work is bounded before it is spent: a domain of the band holds at most
    :data:`~segctl.flows.policy.PACK_LIMIT` rules (more can never be ranked in its
    priorities), so the first guardrail whose rules, or whose pass copies of the tenant
    tier, take a domain past it stops the build with a CompileError naming it; the overlap
    test of a pass and the copies only look at grants of the pass's own domains.
    """
    rails = sorted(enumerate(network.guardrails), key=lambda item: guardrail_order(item[1], item[0]))
    budget = _DomainBudget({t.id: t.name for t in network.tenants})
    base: list[Grant] = []
    owners: list[str] = []  # the guardrail each base grant comes from
    for index, rail in rails:
        for grant in _rail_grants(network, index, rail):
            budget.take(grant, rail.name, "rules")
            base.append(grant)
            owners.append(rail.name)
    later = _LaterIndex(base)
    tiers = _TenantTier(network, tenant)
    out: list[Grant] = []
    for position, grant in enumerate(base):
        if grant.action != "pass":
            out.append(grant)
        elif later.overlapped(position):
            for copy in tiers.handed_over(grant):
                budget.take(copy, owners[position], "copies of the tenant rules it passes to")
                out.append(copy)
    if len(out) >= (1 << CONJ_TENANT_SHIFT) - 1:
        raise CompileError(
            f"{len(out)} guardrail rules exceed the {(1 << CONJ_TENANT_SHIFT) - 2} conjunction ids"
        )
    return [replace(g, conj=i + 1) for i, g in enumerate(out)]


class _DomainBudget:
    """Counts the band's rules per (side, domain) and refuses the one past PACK_LIMIT."""

    def __init__(self, names: dict[int, str]) -> None:
        self._names = names
        self._count: dict[tuple[int, Domain], int] = defaultdict(int)

    def take(self, grant: Grant, rail: str, what: str) -> None:
        for side, domain in ((0, grant.src_domain), (1, grant.dst_domain)):
            self._count[(side, domain)] += 1
            if self._count[(side, domain)] > PACK_LIMIT:
                raise CompileError(
                    f"guardrail {rail}: its {what} take the guardrail band past {PACK_LIMIT} rules "
                    f"in the {'policy_src' if side == 0 else 'policy_dst'} domain of "
                    f"{domain_name(domain, self._names)}; the band has "
                    f"{PRIO_GUARDRAIL_TOP - PRIO_GUARDRAIL_BOTTOM + 1} priorities"
                )


class _LaterIndex:
    """For each base grant, the later grants of its source or destination domain."""

    def __init__(self, base: Sequence[Grant]) -> None:
        self._base = base
        self._by_src: dict[Domain, list[int]] = defaultdict(list)
        self._by_dst: dict[Domain, list[int]] = defaultdict(list)
        for i, g in enumerate(base):
            self._by_src[g.src_domain].append(i)
            self._by_dst[g.dst_domain].append(i)

    def overlapped(self, position: int) -> bool:
        """Does a later grant of the same domain overlap the one at ``position``?"""
        grant = self._base[position]
        later = {
            i for i in (*self._by_src[grant.src_domain], *self._by_dst[grant.dst_domain]) if i > position
        }
        return any(grants_overlap(grant, self._base[i]) for i in sorted(later))


class _TenantTier:
    """The tenant tier, indexed for hand-over: grants by (source, destination) domain in
    their order, non-strict segments by tenant id."""

    def __init__(self, network: Network, tenant: Sequence[Grant]) -> None:
        self._network = network
        self._grants: dict[tuple[Domain, Domain], list[Grant]] = defaultdict(list)
        for g in sorted(tenant, key=lambda g: (g.priority, g.action != "deny", not g.stateful)):
            self._grants[(g.src_domain, g.dst_domain)].append(g)
        ids = {t.name: t.id for t in network.tenants}
        self._segments: dict[int, list[Grant]] = defaultdict(list)
        for seg in network.segments:
            if seg.strict:
                continue
            members = tuple(network.segment_endpoints(seg.tenant, seg.name))
            tid = ids[seg.tenant]
            grant = Grant(
                name=f"intra-segment {seg.tenant}/{seg.name}", cookie_kind=Kind.SEGMENT,
                cookie_tenant=tid, cookie_index=seg.index, sources=members, destinations=members,
                services=_ANY, stateful=True, src_tenant=tid, dst_tenant=tid,
            )  # fmt: skip
            self._segments[tid].append(grant)

    def handed_over(self, rail: Grant) -> Iterator[Grant]:
        """The tenant tier narrowed to a pass (intra-segment allows, then the tenant rules in
        their order), closed by a drop of the rest of the pass; lazily, so that a budget can
        stop it."""
        narrow = _Narrowing(rail)
        if rail.src_tenant == rail.dst_tenant:
            for members in self._segments[rail.src_tenant]:
                yield from narrow(members)
        for grant in self._grants[(rail.src_domain, rail.dst_domain)]:
            yield from narrow(grant)
        yield replace(rail, action="deny", log=self._network.intent.logging.default_deny)


class _Narrowing:
    """Grants restricted to the endpoints and services of one pass (none when disjoint)."""

    def __init__(self, rail: Grant) -> None:
        self._rail = rail
        self._src = {ep.key for ep in rail.sources}
        self._dst = {ep.key for ep in rail.destinations}

    def __call__(self, grant: Grant) -> list[Grant]:
        sources = tuple(ep for ep in grant.sources if ep.key in self._src)
        destinations = tuple(ep for ep in grant.destinations if ep.key in self._dst)
        if not sources or not destinations:
            return []
        services = tuple(
            dict.fromkeys(
                m
                for x in self._rail.services
                for y in grant.services
                if (m := intersect_match(x, y)) is not None
            )
        )
        if not services:
            return []
        return [
            replace(
                grant, sources=sources, destinations=destinations, services=services, band="guardrail", conj=0
            )
        ]


def _rail_grants(network: Network, index: int, rail: Guardrail) -> list[Grant]:
    """One grant per (source tenant, destination tenant) pair of ``rail`` (scope applied)."""
    by_tenant_src = _by_tenant(network.peer_select(rail.from_))
    by_tenant_dst = _by_tenant(network.peer_select(rail.to))
    services = service_matches(rail.services)
    out: list[Grant] = []
    for a, sources in by_tenant_src.items():
        for b, destinations in by_tenant_dst.items():
            if a != b:
                if rail.action == "allow":
                    continue
                consumers, providers = _shared_pairs(network, sources, destinations, services)
                groups = [(consumers, providers)] if consumers and providers else []
            elif rail.scope == "cross-segment":
                groups = []
                for seg in dict.fromkeys(ep.segment for ep in sources):
                    mine = tuple(ep for ep in sources if ep.segment == seg)
                    others = tuple(ep for ep in destinations if ep.segment != seg)
                    if others:
                        groups.append((mine, others))
            else:
                groups = [(sources, destinations)]
            for srcs, dsts in groups:
                out.append(
                    Grant(
                        name=f"guardrail {rail.name}",
                        cookie_kind=Kind.GUARDRAIL,
                        cookie_tenant=network.tenant(a).id,
                        cookie_index=index,
                        sources=srcs,
                        destinations=dsts,
                        services=services,
                        stateful=rail.action == "allow",
                        src_tenant=network.tenant(a).id,
                        dst_tenant=network.tenant(b).id,
                        log=rail.log,
                        action=rail.action,
                        priority=rail.priority,
                        band="guardrail",
                    )
                )
    return out


def _by_tenant(eps: Sequence[EndpointInfo]) -> dict[str, tuple[EndpointInfo, ...]]:
    out: dict[str, list[EndpointInfo]] = defaultdict(list)
    for ep in eps:
        out[ep.tenant].append(ep)
    return {k: tuple(v) for k, v in out.items()}


def _shared_pairs(
    network: Network,
    sources: Sequence[EndpointInfo],
    destinations: Sequence[EndpointInfo],
    services: Sequence[Match],
) -> tuple[tuple[EndpointInfo, ...], tuple[EndpointInfo, ...]]:
    """The sources that consume, and the destinations that provide, a shared service between
    them on some of ``services`` (nothing else can cross tenants, so nothing else needs a rule)."""
    src_keys, dst_keys = {ep.key for ep in sources}, {ep.key for ep in destinations}
    used_src: set[tuple[str, str]] = set()
    used_dst: set[tuple[str, str]] = set()
    for svc in network.shared_services:
        offered = service_matches(svc.services)
        if not any(intersect_match(x, y) is not None for x in services for y in offered):
            continue
        consumers = {ep.key for ep in network.shared_consumers(svc)} & src_keys
        providers = {ep.key for ep in network.shared_providers(svc)} & dst_keys
        if consumers and providers:
            used_src |= consumers
            used_dst |= providers
    return (
        tuple(ep for ep in sources if ep.key in used_src),
        tuple(ep for ep in destinations if ep.key in used_dst),
    )
