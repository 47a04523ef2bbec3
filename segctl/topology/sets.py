"""Reusable sets: service sets (intent-wide) and address sets (per tenant).

A policy, shared service or guardrail matches its own ``services`` plus those of the
``service_sets`` it names; :func:`expand_service_sets` writes that union into
``services`` once, when the intent is resolved, so the compiler, the verifier and the
analysis read one list and never look sets up. An address set stands for the tenant's
endpoints it names and those whose IPv4 address lies in one of its CIDRs
(:func:`in_address_set`); ``Network.select`` and validation share that rule.

>>> from segctl.topology.schema import AddressSet
>>> from ipaddress import IPv4Address
>>> frontends = AddressSet(name="fe", endpoints=["lb1"], cidrs=["10.1.1.0/25"])
>>> in_address_set(frontends, "web1", IPv4Address("10.1.1.10"))
True
>>> in_address_set(frontends, "db1", IPv4Address("10.1.3.10"))
False
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address

from segctl.topology.schema import AddressSet, Intent, Service, ServiceSet

__all__ = ["expand_service_sets", "in_address_set", "services_with_sets"]


def in_address_set(address_set: AddressSet, name: str, ip: IPv4Address) -> bool:
    """Does ``address_set`` hold the endpoint called ``name`` with address ``ip``?"""
    return name in (address_set.endpoints or []) or any(ip in cidr for cidr in address_set.cidrs or [])


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
