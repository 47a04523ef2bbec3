"""Reusable sets: service sets (intent-wide) and address sets (per tenant).

A policy, shared service or guardrail matches its own ``services`` plus those of the
``service_sets`` it names; :func:`expand_service_sets` writes that union into
``services`` once, when the intent is resolved, so the compiler, the verifier and the
analysis read one list and never look sets up. An address set stands for the tenant's
endpoints it names and those with an address in one of its CIDRs: an IPv4 prefix takes
the endpoints whose ``ip`` is inside, an IPv6 prefix those whose ``ipv6`` is
(:func:`in_address_set`, :func:`address_in`); ``Network.select``, guardrail peers and
validation share that rule.

>>> from segctl.topology.schema import AddressSet
>>> from ipaddress import IPv4Address, IPv6Address
>>> frontends = AddressSet(name="fe", endpoints=["lb1"], cidrs=["10.1.1.0/25", "fd00:1::/64"])
>>> in_address_set(frontends, "web1", IPv4Address("10.1.1.10"))
True
>>> in_address_set(frontends, "db1", IPv4Address("10.1.3.10"))
False
>>> in_address_set(frontends, "db1", IPv4Address("10.1.3.10"), IPv6Address("fd00:1::10"))
True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from segctl.topology.schema import AddressSet, Intent, Service, ServiceSet

__all__ = ["address_in", "expand_service_sets", "in_address_set", "services_with_sets"]


def address_in(cidr: IPv4Network | IPv6Network, ip: IPv4Address, ipv6: IPv6Address | None) -> bool:
    """Is an endpoint with addresses ``ip`` (and ``ipv6``) inside ``cidr``: its IPv4 address
    for an IPv4 prefix, its global IPv6 address for an IPv6 one?"""
    if isinstance(cidr, IPv6Network):
        return ipv6 is not None and ipv6 in cidr
    return ip in cidr


def in_address_set(
    address_set: AddressSet, name: str, ip: IPv4Address, ipv6: IPv6Address | None = None
) -> bool:
    """Does ``address_set`` hold the endpoint called ``name`` with address ``ip`` (and ``ipv6``)?"""
    return name in (address_set.endpoints or []) or any(
        address_in(cidr, ip, ipv6) for cidr in address_set.cidrs or []
    )


def services_with_sets(
    services: Sequence[Service], set_names: Iterable[str], service_sets: Sequence[ServiceSet]
) -> list[Service]:
    """``services`` then each named set's services, each service once (document order).

    Unknown set names are skipped: validation reports them before anything resolves.
    """
    by_name = {s.name: s for s in service_sets}
    out: dict[tuple[object, ...], Service] = {}  # by what makes two services equal: linear, not n²
    for svc in [*services, *(svc for name in set_names if name in by_name for svc in by_name[name].services)]:
        out.setdefault(_service_key(svc), svc)
    return list(out.values())


def _service_key(svc: Service) -> tuple[object, ...]:
    """The fields of a service, hashable (``Service`` itself is not)."""
    ports = None if svc.ports is None else tuple((r.lo, r.hi) for r in svc.ports)
    return (svc.proto, ports, svc.type, svc.code)


def expand_service_sets(intent: Intent) -> Intent:
    """``intent`` with every policy's, shared service's and guardrail's sets written into its services.

    The set names stay (``segctl show`` lists them); expanding twice changes nothing.
    """
    if not intent.service_sets:
        return intent
    sets = intent.service_sets
    tenants = [
        t.model_copy(
            update={
                "policies": [
                    p.model_copy(update={"services": services_with_sets(p.services, p.service_sets, sets)})
                    for p in t.policies
                ]
            }
        )
        for t in intent.tenants
    ]
    shared = [
        s.model_copy(update={"services": services_with_sets(s.services, s.service_sets, sets)})
        for s in intent.shared_services
    ]
    guardrails = [
        g.model_copy(update={"services": services_with_sets(g.services, g.service_sets, sets)})
        for g in intent.guardrails
    ]
    return intent.model_copy(update={"tenants": tenants, "shared_services": shared, "guardrails": guardrails})
