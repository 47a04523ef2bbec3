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
from collections.abc import Sequence
from dataclasses import replace

from segctl.errors import CompileError
from segctl.flows.policy import (
    CONJ_TENANT_SHIFT,
    Grant,
    Match,
    grants_overlap,
    intersect_match,
    rank_grants,
    service_matches,
    tenant_grants,
)
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
    """The guardrail band in evaluation order, with conjunction ids."""
    base: list[Grant] = []
    rails = sorted(enumerate(network.guardrails), key=lambda item: guardrail_order(item[1], item[0]))
    for index, rail in rails:
        base += _rail_grants(network, index, rail)
    out: list[Grant] = []
    for position, grant in enumerate(base):
        if grant.action != "pass":
            out.append(grant)
        elif any(_overlap(grant, later) for later in base[position + 1 :]):
            out += _handed_over(network, grant, tenant)
    if len(out) >= (1 << CONJ_TENANT_SHIFT) - 1:
        raise CompileError(
            f"{len(out)} guardrail rules exceed the {(1 << CONJ_TENANT_SHIFT) - 2} conjunction ids"
        )
    return [replace(g, conj=i + 1) for i, g in enumerate(out)]


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


def _same_domains(a: Grant, b: Grant) -> bool:
    return a.src_domain == b.src_domain or a.dst_domain == b.dst_domain


def _overlap(a: Grant, b: Grant) -> bool:
    """May one packet match both grants (same domain, common endpoints on both sides, services)?"""
    return _same_domains(a, b) and grants_overlap(a, b)


def _handed_over(network: Network, rail: Grant, tenant: Sequence[Grant]) -> list[Grant]:
    """The tenant tier narrowed to a pass (intra-segment allows, then the tenant rules in
    their order), closed by a drop of the rest of the pass."""
    out: list[Grant] = []
    if rail.src_tenant == rail.dst_tenant:
        tenant_name = next(t.name for t in network.tenants if t.id == rail.src_tenant)
        for seg in network.segments:
            if seg.tenant != tenant_name or seg.strict:
                continue
            members = Grant(
                name=f"intra-segment {seg.tenant}/{seg.name}", cookie_kind=Kind.SEGMENT,
                cookie_tenant=rail.src_tenant, cookie_index=seg.index,
                sources=tuple(network.segment_endpoints(seg.tenant, seg.name)),
                destinations=tuple(network.segment_endpoints(seg.tenant, seg.name)),
                services=_ANY, stateful=True, src_tenant=rail.src_tenant, dst_tenant=rail.dst_tenant,
            )  # fmt: skip
            out += _narrowed(rail, members)
    ordered = sorted(
        (g for g in tenant if g.src_domain == rail.src_domain and g.dst_domain == rail.dst_domain),
        key=lambda g: (g.priority, g.action != "deny", not g.stateful),
    )
    for grant in ordered:
        out += _narrowed(rail, grant)
    out.append(replace(rail, action="deny", log=network.intent.logging.default_deny))
    return out


def _narrowed(rail: Grant, grant: Grant) -> list[Grant]:
    """``grant`` restricted to the endpoints and services of ``rail`` (none when disjoint)."""
    src_keys, dst_keys = {ep.key for ep in rail.sources}, {ep.key for ep in rail.destinations}
    sources = tuple(ep for ep in grant.sources if ep.key in src_keys)
    destinations = tuple(ep for ep in grant.destinations if ep.key in dst_keys)
    services = tuple(
        dict.fromkeys(
            m for x in rail.services for y in grant.services if (m := intersect_match(x, y)) is not None
        )
    )
    if not sources or not destinations or not services:
        return []
    return [
        replace(
            grant, sources=sources, destinations=destinations, services=services, band="guardrail", conj=0
        )
    ]
