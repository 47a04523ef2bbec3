"""``segctl show``'s rule tables: guardrails (listed first), tenant policies, and where
IPv6 goes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segctl.topology.network import Network
    from segctl.topology.schema import Guardrail

__all__ = ["guardrail_documents", "guardrail_section", "ipv6_documents", "ipv6_lines", "policy_section"]

Section = tuple[str, list[str], list[list[object]]]


def _services(rule: Any) -> str:
    return ", ".join(s.describe() for s in rule.services)


def _evaluation_order(network: Network) -> list[Guardrail]:
    from segctl.topology.ordered import guardrail_order

    order = sorted(range(len(network.guardrails)), key=lambda i: guardrail_order(network.guardrails[i], i))
    return [network.guardrails[i] for i in order]


def guardrail_section(network: Network) -> Section:
    """The guardrail tier in evaluation order (the order they decide in)."""
    return (
        "Guardrails (evaluated before every tenant policy, in this order)",
        ["PRIORITY", "GUARDRAIL", "ACTION", "FROM", "TO", "SCOPE", "SERVICES", "LOG"],
        [
            [g.priority, g.name, g.action, g.from_.describe(), g.to.describe(), g.scope, _services(g),
             "yes" if g.log else "no"]
            for g in _evaluation_order(network)
        ],
    )  # fmt: skip


def guardrail_documents(network: Network) -> list[dict[str, Any]]:
    """The guardrails of ``segctl show --output json``, in evaluation order."""
    return [
        {
            "name": g.name,
            "priority": g.priority,
            "action": g.action,
            "from": g.from_.model_dump(mode="json"),
            "to": g.to.model_dump(mode="json"),
            "scope": g.scope,
            "services": [s.describe() for s in g.services],
            "service_sets": list(g.service_sets),
            "log": g.log,
        }
        for g in _evaluation_order(network)
    ]


def policy_section(network: Network, has_tenant: Any, selector_text: Any) -> Section:
    """Tenant policies; with ordered rules (a guardrail or a deny policy) also their action
    and priority."""
    from segctl.topology.ordered import is_ordered

    ordered = is_ordered(network)
    headers = [
        "TENANT",
        "POLICY",
        *(["ACTION", "PRIORITY"] if ordered else []),
        "FROM",
        "TO",
        "SERVICES",
        "STATEFUL",
    ]
    rows: list[list[object]] = []
    for t in network.tenants:
        if not has_tenant(t.name):
            continue
        for p in network.policies(t.name):
            order = [p.action, p.priority] if ordered else []
            stateful = "-" if p.action == "deny" else "yes" if p.stateful else "no"
            rows.append(
                [t.name, p.name, *order, selector_text(p.from_), selector_text(p.to), _services(p), stateful]
            )
    return ("Policies", headers, rows)


def ipv6_documents(network: Network, has_tenant: Any) -> list[dict[str, Any]]:
    """``show -o json``'s ``ipv6``: per segment where IPv6 goes, its ipv6 endpoints, whether
    it is strict (then only neighbour discovery and what policies allow inside it) and its
    ``gateway6`` (null: not routed)."""
    from segctl.topology.analysis import ipv6_segments

    out = []
    for tenant, segment, members in ipv6_segments(network):
        if not has_tenant(tenant):
            continue
        seg = network.segment(tenant, segment)
        out.append(
            {
                "tenant": tenant,
                "segment": segment,
                "strict": seg.strict,
                "gateway6": str(seg.gateway6) if seg.gateway6 is not None else None,
                "endpoints": [ep.name for ep in members],
            }
        )
    return out


def ipv6_lines(network: Network, has_tenant: Any) -> list[str]:
    """Where IPv6 goes (docs/intent.md): inside a segment between its ipv6 endpoints, under
    their grants (every packet in a non-strict segment), routed under policies and shared
    services between segments with a ``gateway6``, never a router advertisement or
    redirect."""
    if not any(ep.ipv6 is not None for ep in network.endpoints):
        return []
    docs = ipv6_documents(network, has_tenant)
    head = (
        "IPv6 (inside a segment, and routed between segments with a gateway6, through conntrack; "
        "neighbour discovery inside a segment; never router advertisements or redirects)"
    )
    out = [head]
    for d in docs:
        what = "neighbour discovery and what policies allow (strict)" if d["strict"] else "every packet"
        if len(d["endpoints"]) < 2:
            what = "no peer in the segment"
        if d["gateway6"] is not None:
            what += f"; routed through gateway6 {d['gateway6']} under policies and shared services"
        out.append(f"  {d['tenant']}/{d['segment']}: {', '.join(d['endpoints'])}: {what}")
    return out if docs else [head, "  (nowhere)"]
