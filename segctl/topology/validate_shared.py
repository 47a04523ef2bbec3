"""Validation of shared services: providers and consumers exist, each is listed once (a
group of a tenant that consumes as a whole counts as listed again), every segment on the
way is routed, and a consumer reaches each provider address once, in both families.

A shared service is routed by address, without NAT: a consumer segment may not overlap a
provider segment, and one consumer segment may not reach two providers (of tenants that
reuse addresses) at one address. IPv6 goes to a shared service only between segments with
a ``gateway6`` on both sides (:func:`segctl.topology.analysis.ipv6_applies`), so the IPv6
checks apply there only; the IPv4 ones always.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address

from segctl.errors import Problem
from segctl.topology.schema import Endpoint, Intent, Segment, Selector, SharedServiceConsumer, Tenant
from segctl.topology.sets import in_address_set

__all__ = ["check_shared_services", "duplicates", "group_endpoints", "selected_endpoints"]

#: (consumer tenant, segment) -> a provider address it reaches -> (provider endpoint, service)
_Reached = dict[tuple[str, str], dict[IPv4Address | IPv6Address, tuple[str, str]]]


def duplicates(names: Iterable[str]) -> set[str]:
    """The names that occur more than once."""
    return {name for name, count in Counter(names).items() if count > 1}


def group_endpoints(tenant: Tenant, group_name: str) -> list[Endpoint]:
    """The endpoints of ``tenant``'s group ``group_name`` (members, or by labels); none for an
    unknown group."""
    for group in tenant.groups:
        if group.name == group_name:
            if group.members is not None:
                return [ep for ep in tenant.endpoints if ep.name in group.members]
            labels = group.labels or {}
            return [ep for ep in tenant.endpoints if all(ep.labels.get(k) == v for k, v in labels.items())]
    return []


def selected_endpoints(tenant: Tenant, selector: Selector) -> list[Endpoint]:
    """The endpoints a (valid) policy selector picks, before resolution: the rule of
    ``Network.select`` (none for an external peer: it is outside the fabric)."""
    if selector.external is not None:
        return []
    if selector.endpoint is not None or selector.endpoints is not None:
        names = {selector.endpoint} if selector.endpoint is not None else set(selector.endpoints or [])
        return [ep for ep in tenant.endpoints if ep.name in names]
    if selector.segment is not None:
        return [ep for ep in tenant.endpoints if ep.segment == selector.segment]
    if selector.group is not None:
        return group_endpoints(tenant, selector.group)
    if selector.address_set is not None:
        aset = next(a for a in tenant.address_sets if a.name == selector.address_set)
        return [ep for ep in tenant.endpoints if in_address_set(aset, ep.name, ep.ip, ep.ipv6)]
    labels = selector.labels or {}
    return [ep for ep in tenant.endpoints if all(ep.labels.get(k) == v for k, v in labels.items())]


def check_shared_services(intent: Intent) -> list[Problem]:
    """Every problem of the intent's shared services, each naming its place."""
    problems: list[Problem] = []
    tenants = {t.name: t for t in intent.tenants}
    reached: _Reached = defaultdict(dict)
    for name in sorted(duplicates(s.name for s in intent.shared_services)):
        problems.append(Problem(f"shared_services[{name}]", "duplicate shared service name"))
    for svc in intent.shared_services:
        base = f"shared_services[{svc.name}]"
        for name in sorted(duplicates(svc.provider.endpoints or [])):
            problems.append(Problem(f"{base}.provider.endpoints", f"{name} is listed twice"))
        repeated = _repeated_consumers(base, svc.consumers)
        problems += repeated.values()
        provider = tenants.get(svc.provider.tenant)
        if provider is None:
            problems.append(Problem(f"{base}.provider.tenant", f"unknown tenant {svc.provider.tenant}"))
            continue
        provider_eps, found = _provider_endpoints(base, provider, svc.provider.endpoints, svc.provider.group)
        problems += found
        provider_segs = {s.name: s for s in provider.segments}
        provider_nets = {
            ep.segment: provider_segs[ep.segment] for ep in provider_eps if ep.segment in provider_segs
        }
        for seg in provider_nets.values():
            if seg.gateway is None:
                problems.append(
                    Problem(
                        f"{base}.provider",
                        f"provider segment {provider.name}/{seg.name} has no gateway to route through",
                    )
                )
        for index, consumer in enumerate(svc.consumers):
            where = f"{base}.consumers[{index}]"
            if index in repeated:
                continue
            tenant = tenants.get(consumer.tenant)
            if tenant is None:
                problems.append(Problem(f"{where}.tenant", f"unknown tenant {consumer.tenant}"))
                continue
            if tenant.name == provider.name:
                problems.append(
                    Problem(f"{where}.tenant", "the provider's own tenant is not a consumer; use a policy")
                )
                continue
            if consumer.group is not None:
                if consumer.group not in {g.name for g in tenant.groups}:
                    problems.append(
                        Problem(f"{where}.group", f"unknown group {consumer.group} in tenant {tenant.name}")
                    )
                    continue
                seg_names = {ep.segment for ep in group_endpoints(tenant, consumer.group)}
                consumer_segs = [s for s in tenant.segments if s.name in seg_names]
            else:
                consumer_segs = list(tenant.segments)
            for cseg in consumer_segs:
                seen = reached[(tenant.name, cseg.name)]
                problems += _consumer_segment(
                    where, tenant, cseg, provider, provider_eps, provider_nets, svc.name, seen
                )
    return problems


def _repeated_consumers(base: str, consumers: list[SharedServiceConsumer]) -> dict[int, Problem]:
    """Consumers (by index) that add nothing: the same tenant (and group) listed again, or a
    group of a tenant that is also a consumer as a whole (a narrowing that does not narrow)."""
    first: dict[tuple[str, str | None], int] = {}
    for index, consumer in enumerate(consumers):
        first.setdefault((consumer.tenant, consumer.group), index)
    repeated: dict[int, Problem] = {}
    for index, consumer in enumerate(consumers):
        where = f"{base}.consumers[{index}]"
        earlier = first[(consumer.tenant, consumer.group)]
        whole = first.get((consumer.tenant, None))
        if earlier != index:
            what = f"tenant {consumer.tenant}" + (
                "" if consumer.group is None else f" group {consumer.group}"
            )
            repeated[index] = Problem(where, f"{what} is listed twice (also consumers[{earlier}])")
        elif consumer.group is not None and whole is not None:
            repeated[index] = Problem(
                where,
                f"tenant {consumer.tenant} is already a consumer as a whole (consumers[{whole}]); "
                f"its group {consumer.group} adds nothing",
            )
    return repeated


def _provider_endpoints(
    base: str, provider: Tenant, names: list[str] | None, group: str | None
) -> tuple[list[Endpoint], list[Problem]]:
    """The provider endpoints a shared service names (listed, or a group), and the problems
    of the names."""
    if names is not None:
        known = {ep.name: ep for ep in provider.endpoints}
        unknown = [
            Problem(f"{base}.provider.endpoints", f"unknown endpoint {name} in tenant {provider.name}")
            for name in names
            if name not in known
        ]
        return [known[name] for name in names if name in known], unknown
    if group not in {g.name for g in provider.groups}:
        return [], [Problem(f"{base}.provider.group", f"unknown group {group} in tenant {provider.name}")]
    return group_endpoints(provider, group or ""), []


def _consumer_segment(
    where: str,
    tenant: Tenant,
    cseg: Segment,
    provider: Tenant,
    provider_eps: list[Endpoint],
    provider_nets: dict[str, Segment],
    service: str,
    seen: dict[IPv4Address | IPv6Address, tuple[str, str]],
) -> list[Problem]:
    """The problems of one consumer segment: no gateway, an overlap with a provider segment
    (IPv4; IPv6 where both have a ``gateway6``), a provider address reached twice."""
    consumer = f"{tenant.name}/{cseg.name}"
    problems = _one_provider_per_address(
        where, consumer, cseg, seen, provider, provider_eps, provider_nets, service
    )
    if cseg.gateway is None:
        problems.append(Problem(where, f"consumer segment {consumer} has no gateway to route through"))
    for pseg in provider_nets.values():
        if cseg.cidr.overlaps(pseg.cidr):
            problems.append(
                Problem(
                    where,
                    f"consumer segment {consumer} ({cseg.cidr}) overlaps provider segment "
                    f"{provider.name}/{pseg.name} ({pseg.cidr}); NAT is not supported",
                )
            )
        routed6 = _routed6(cseg) and _routed6(pseg)
        if routed6 and cseg.cidr6 is not None and pseg.cidr6 is not None and cseg.cidr6.overlaps(pseg.cidr6):
            problems.append(
                Problem(
                    where,
                    f"consumer segment {consumer} ({cseg.cidr6}) overlaps provider segment "
                    f"{provider.name}/{pseg.name} ({pseg.cidr6}): IPv6 between them is routed "
                    "(both have a gateway6) and NAT is not supported",
                )
            )
    return problems


def _routed6(seg: Segment) -> bool:
    return seg.gateway6 is not None


def _one_provider_per_address(
    where: str,
    consumer: str,
    cseg: Segment,
    seen: dict[IPv4Address | IPv6Address, tuple[str, str]],
    provider: Tenant,
    endpoints: list[Endpoint],
    provider_nets: dict[str, Segment],
    service: str,
) -> list[Problem]:
    """A consumer segment routes to a provider by its address: two providers it reaches (of
    tenants that reuse addresses) may not share one, or its traffic could go to either. The
    IPv6 address counts where IPv6 goes (both segments have a ``gateway6``)."""
    problems = []
    for ep in endpoints:
        name = f"{provider.name}/{ep.name}"
        addresses: list[IPv4Address | IPv6Address] = [ep.ip]
        pseg = provider_nets.get(ep.segment)
        if ep.ipv6 is not None and pseg is not None and _routed6(pseg) and _routed6(cseg):
            addresses.append(ep.ipv6)
        for address in addresses:
            other = seen.setdefault(address, (name, service))
            if other[0] != name:
                problems.append(
                    Problem(
                        where,
                        f"consumer segment {consumer} would reach two providers at {address} ({other[0]} in "
                        f"shared service {other[1]}, {name} in {service}); a consumer must reach each "
                        "address once",
                    )
                )
    return problems
