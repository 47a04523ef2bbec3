"""Intent commands: ``segctl validate FILE...``, ``segctl schema``, ``segctl show FILE``."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from segctl.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    add_output_option,
    format_table,
    print_json,
)

__all__ = [
    "Scope",
    "analysis_document",
    "analysis_text",
    "matrix_lines",
    "register",
    "show_document",
    "show_text",
]

if TYPE_CHECKING:  # command bodies import segctl.topology lazily so `segctl --help` stays fast
    from segctl.topology.analysis import Reachability
    from segctl.topology.network import EndpointInfo, Network


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``validate``, ``schema`` and ``show``."""
    p = subparsers.add_parser(
        "validate",
        help="check intent files; report every problem with file:line",
        description="Check intent files (YAML or JSON). Exit 0 when all are valid, 2 otherwise. "
        "Problems go to stderr as `file:line: location: message` (with -o json, to stdout as JSON).",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="intent file (.yaml, .yml or .json)")
    add_output_option(p)
    p.set_defaults(func=_validate)

    p = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of the intent format (for editors)",
        description="Print the JSON Schema (draft 2020-12) of the intent format.",
    )
    p.set_defaults(func=_schema)

    p = subparsers.add_parser(
        "show",
        help="show tenants, segments, endpoints, policies, the expected reachability and its analysis",
        description="Show a valid intent resolved: tenant ids (conntrack zones), gateway MACs, "
        "segment VLANs, endpoints, groups, policies, shared services, the expected "
        "reachability matrix computed from the intent alone, cross-tenant paths and each "
        "endpoint's blast radius (docs/intent.md). --tenant T shows one tenant and what it "
        "shares with others; past 60 endpoints the matrix folds per segment.",
    )
    p.add_argument("file", metavar="FILE", help="intent file (.yaml, .yml or .json)")
    p.add_argument(
        "--tenant",
        metavar="T",
        help="only tenant T: its objects, the shared services it takes part in, the pairs it is in",
    )
    p.add_argument(
        "--matrix",
        choices=("auto", "endpoints", "segments"),
        default="auto",
        help="the expected reachability matrix per endpoint, per segment, or auto "
        "(per segment past 60 endpoints, like the HTML report)",
    )
    add_output_option(p)
    p.set_defaults(func=_show)


# ---------------------------------------------------------------- validate


def _validate(args: argparse.Namespace) -> int:
    from segctl.topology.load import check_file

    results = []
    for name in args.files:
        _, problems = check_file(name)
        results.append({"file": name, "valid": not problems, "problems": [p.to_json() for p in problems]})
        if args.output == "text":
            for problem in problems:
                print(problem, file=sys.stderr)
            if not problems:
                print(f"{name}: valid")
    if args.output == "json":
        print_json({"files": results})
    return EXIT_OK if all(r["valid"] for r in results) else EXIT_BAD_INPUT


# ---------------------------------------------------------------- schema


def intent_json_schema() -> dict[str, Any]:
    """The JSON Schema of the intent document, with ``$schema`` and a title."""
    from segctl.topology.schema import Intent

    schema = Intent.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://segctl.dev/schema/intent-v1.json",
        **schema,
        "title": "segctl intent",
    }


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(intent_json_schema(), indent=2))
    return EXIT_OK


# ---------------------------------------------------------------- show


def _show(args: argparse.Namespace) -> int:
    from segctl.topology.analysis import expected_reachability
    from segctl.topology.network import load_network

    network = load_network(args.file)
    scope = Scope.of(network, args.tenant)
    reach = scope.reach(expected_reachability(network))
    if args.output == "json":
        doc = {**show_document(network, reach, scope), "analysis": analysis_document(network, scope)}
        print_json(doc if scope.tenant is None else {"tenant": scope.tenant, **doc})
    else:
        print(show_text(network, reach, scope, matrix=args.matrix))
    return EXIT_OK


@dataclass(frozen=True)
class Scope:
    """What ``show`` shows: every tenant, or one (``--tenant``) with what it shares."""

    tenant: str | None = None

    @classmethod
    def of(cls, network: Network, tenant: str | None) -> Scope:
        """The scope of ``--tenant`` (``None``: everything); an unknown tenant is bad input."""
        from segctl.errors import IntentError, Problem

        names = [t.name for t in network.tenants]
        if tenant is not None and tenant not in names:
            known = ", ".join(names) or "none"
            raise IntentError([Problem("--tenant", f"{tenant}: no such tenant (tenants: {known})")])
        return cls(tenant)

    def has(self, tenant: str) -> bool:
        return self.tenant is None or tenant == self.tenant

    def touches(self, *tenants: str) -> bool:
        """Is any of ``tenants`` in scope (a pair, a shared service's parties)?"""
        return self.tenant is None or self.tenant in tenants

    def reach(self, reach: Reachability) -> Reachability:
        """The pairs whose source or destination is in scope."""
        return {pair: g for pair, g in reach.items() if self.touches(pair[0][0], pair[1][0])}

    def service(self, svc: Any) -> bool:
        return self.touches(svc.provider.tenant, *(c.tenant for c in svc.consumers))


def _selector_text(selector: Any) -> str:
    return str(selector.describe())


def _tenant_document(network: Network, name: str) -> dict[str, Any]:
    """One tenant of ``segctl show --output json``: its objects, resolved."""
    from segctl.cli._external import snat_document
    from segctl.topology.schema import Selector

    t = network.tenant(name)
    doc = network.tenant_doc(name)
    return {
        "name": t.name,
        "id": t.id,
        "zone": t.id,
        "gateway_mac": t.gateway_mac,
        **snat_document(network, t),
        "segments": [
            {
                "name": s.name,
                "index": s.index,
                "cidr": str(s.cidr),
                "cidr6": None if s.cidr6 is None else str(s.cidr6),
                "gateway": None if s.gateway is None else str(s.gateway),
                "vlan": s.vlan,
                "strict": s.strict,
            }
            for s in network.segments
            if s.tenant == t.name
        ],
        "groups": [
            {"name": g.name, "members": [ep.name for ep in network.group_members(t.name, g.name)]}
            for g in doc.groups
        ],
        "address_sets": [
            {
                "name": a.name,
                "cidrs": [str(c) for c in a.cidrs or []],
                "endpoints": list(a.endpoints or []),
                "members": [ep.name for ep in network.select(t.name, Selector(address_set=a.name))],
            }
            for a in doc.address_sets
        ],
        "policies": [
            {
                "name": p.name,
                "from": _selector_text(p.from_),
                "to": _selector_text(p.to),
                "services": [s.describe() for s in p.services],
                "service_sets": list(p.service_sets),
                "action": p.action,
                "priority": p.priority,
                "stateful": p.stateful,
                "log": p.log,
            }
            for p in doc.policies
        ],
    }


def show_document(network: Network, reach: Reachability, scope: Scope | None = None) -> dict[str, Any]:
    """The JSON form of ``segctl show``: every object (in ``scope``) resolved, plus the expected grants."""
    from segctl.cli._external import external_documents, external_grant_documents, floating_document
    from segctl.cli._rules import guardrail_documents, ipv6_documents

    scope = scope or Scope()
    tenants = [_tenant_document(network, t.name) for t in network.tenants if scope.has(t.name)]
    external = bool(network.externals)  # the keys below only then: the output without stays as it was
    return {
        "switches": [{"name": s.name, "dpid": f"{s.dpid:#018x}"} for s in network.switches],
        "links": [f"{a}:{ap} <-> {b}:{bp}" for a, ap, b, bp in network.links],
        **({"externals": external_documents(network)} if external else {}),
        "tenants": tenants,
        "endpoints": [
            {
                "tenant": ep.tenant,
                "name": ep.name,
                "segment": ep.segment,
                "mac": ep.mac,
                "ip": str(ep.ip),
                **floating_document(network, ep),
                "ipv6": None if ep.ipv6 is None else str(ep.ipv6),
                "ipv6_link_local": None if ep.ipv6_link_local is None else str(ep.ipv6_link_local),
                "switch": ep.switch,
                "port": ep.port,
                "labels": ep.label_dict(),
            }
            for ep in network.endpoints
            if scope.has(ep.tenant)
        ],
        "service_sets": [
            {"name": s.name, "services": [svc.describe() for svc in s.services]}
            for s in network.intent.service_sets
        ],
        "guardrails": guardrail_documents(network),
        "shared_services": [
            {
                "name": svc.name,
                "provider": {
                    "tenant": svc.provider.tenant,
                    "endpoints": [ep.name for ep in network.shared_providers(svc)],
                },
                "consumers": [{"tenant": c.tenant, "group": c.group} for c in svc.consumers],
                "services": [s.describe() for s in svc.services],
                "service_sets": list(svc.service_sets),
                "log": svc.log,
            }
            for svc in network.shared_services
            if scope.service(svc)
        ],
        "reachability": [
            {
                "src": f"{src[0]}/{src[1]}",
                "dst": f"{dst[0]}/{dst[1]}",
                "grants": [g.to_json() for g in grants],
            }
            for (src, dst), grants in reach.items()
        ],
        **({"external_reachability": external_grant_documents(network, scope.has)} if external else {}),
        "ipv6": ipv6_documents(network, scope.has),
    }


Section = tuple[str, list[str], list[list[object]]]


def show_text(
    network: Network, reach: Reachability, scope: Scope | None = None, *, matrix: str = "auto"
) -> str:
    """The readable form of ``segctl show``: one table per kind, the matrix (``matrix``:
    ``endpoints``, ``segments`` or ``auto``), the grants, then the intent analysis; only
    what is in ``scope``."""
    from segctl.cli._external import external_grant_lines, external_section
    from segctl.cli._rules import guardrail_section, ipv6_lines

    scope = scope or Scope()
    out: list[str] = (
        [f"Tenant {scope.tenant} (and what it shares with other tenants)", ""] if scope.tenant else []
    )
    for title, headers, rows in (
        _fabric_section(network),
        *([external_section(network)] if network.externals else []),
        _tenant_section(network, scope),
        _segment_section(network, scope),
        _endpoint_section(network, scope),
        _group_section(network, scope),
        _address_set_section(network, scope),
        _service_set_section(network),
        *([guardrail_section(network)] if network.guardrails else []),
        _policy_section(network, scope),
        _shared_section(network, scope),
    ):
        out.append(title)
        out.append(format_table(headers, rows, indent="  ") if rows else "  (none)")
        out.append("")
    logging = logging_summary(network, scope)
    if logging:
        out += [logging, ""]
    out += matrix_lines(network, reach, _matrix_endpoints(network, reach, scope), fold=matrix)
    out.append("")
    out += _allowed_lines(reach, external_grant_lines(network, scope.has))
    out.append("")
    ipv6 = ipv6_lines(network, scope.has)
    out += [*ipv6, ""] if ipv6 else []
    out.append(analysis_text(network, scope))
    return "\n".join(out)


def logged_grants(network: Network, scope: Scope | None = None) -> list[str]:
    """``guardrail:NAME``, ``tenant/policy`` and ``shared:NAME`` of every rule with ``log: true``
    (guardrails whatever the ``scope``: they are everyone's)."""
    scope = scope or Scope()
    names = [
        f"{t.name}/{p.name}"
        for t in network.tenants
        if scope.has(t.name)
        for p in network.policies(t.name)
        if p.log
    ]
    names += [f"shared:{svc.name}" for svc in network.shared_services if svc.log and scope.service(svc)]
    return [f"guardrail:{g.name}" for g in network.guardrails if g.log] + names


def logging_summary(network: Network, scope: Scope | None = None) -> str:
    """One line on what is logged and at what rate, or "" when nothing is."""
    logging = network.intent.logging
    logged = logged_grants(network, scope)
    if not logged and not logging.default_deny:
        return ""
    what = ", ".join(logged + (["the default deny"] if logging.default_deny else []))
    burst = f" (burst {logging.burst})" if logging.burst is not None else ""
    return f"Logging: {what}; at most {logging.pps} packets/s{burst} per switch to the controller"


def _fabric_section(network: Network) -> Section:
    def ports(name: str) -> str | None:
        peers = sorted(
            [(ap, b, bp) for a, ap, b, bp in network.links if a == name]
            + [(bp, a, ap) for a, ap, b, bp in network.links if b == name]
        )
        return ", ".join(f"{p}->{peer}:{pp}" for p, peer, pp in peers) or None

    return (
        f"Fabric: {len(network.switches)} switches, {len(network.links)} links",
        ["SWITCH", "DPID", "FABRIC PORTS"],
        [[s.name, f"{s.dpid:#018x}", ports(s.name)] for s in network.switches],
    )


def _tenant_section(network: Network, scope: Scope) -> Section:
    from segctl.cli._external import snat_text

    external = bool(network.externals)  # a SNAT column only then
    return (
        "Tenants",
        ["TENANT", "ID/ZONE", "GATEWAY MAC", *(["SNAT"] if external else []), "SEGMENTS", "ENDPOINTS"],
        [
            [
                t.name,
                t.id,
                t.gateway_mac,
                *([snat_text(t)] if external else []),
                sum(1 for s in network.segments if s.tenant == t.name),
                len(network.tenant_endpoints(t.name)),
            ]
            for t in network.tenants
            if scope.has(t.name)
        ],
    )


def _segment_section(network: Network, scope: Scope) -> Section:
    return (
        "Segments",
        ["TENANT", "SEGMENT", "CIDR", "CIDR6", "GATEWAY", "VLAN", "STRICT", "ENDPOINTS"],
        [
            [
                s.tenant,
                s.name,
                s.cidr,
                s.cidr6,
                s.gateway,
                s.vlan,
                "yes" if s.strict else "no",
                len(network.segment_endpoints(s.tenant, s.name)),
            ]
            for s in network.segments
            if scope.has(s.tenant)
        ],
    )


def _endpoint_section(network: Network, scope: Scope) -> Section:
    from segctl.cli._external import floating_text

    external = bool(network.externals)  # a FLOATING IP column only then
    return (
        "Endpoints",
        [
            "#",
            "ENDPOINT",
            "SEGMENT",
            "MAC",
            "IP",
            *(["FLOATING IP"] if external else []),
            "IPV6",
            "ATTACH",
            "LABELS",
        ],
        [
            [
                i,
                ep.qualified,
                ep.segment,
                ep.mac,
                ep.ip,
                *([floating_text(ep)] if external else []),
                ep.ipv6,
                f"{ep.switch}:{ep.port}",
                ",".join(f"{k}={v}" for k, v in ep.labels) or None,
            ]
            for i, ep in enumerate((e for e in network.endpoints if scope.has(e.tenant)), start=1)
        ],
    )


def _group_section(network: Network, scope: Scope) -> Section:
    return (
        "Groups",
        ["TENANT", "GROUP", "SELECTS", "MEMBERS"],
        [
            [
                t.name,
                g.name,
                "members"
                if g.members is not None
                else ",".join(f"{k}={v}" for k, v in (g.labels or {}).items()),
                ", ".join(ep.name for ep in network.group_members(t.name, g.name)) or None,
            ]
            for t in network.tenants
            if scope.has(t.name)
            for g in network.tenant_doc(t.name).groups
        ],
    )


def _address_set_section(network: Network, scope: Scope) -> Section:
    from segctl.topology.schema import Selector

    return (
        "Address sets",
        ["TENANT", "SET", "CIDRS", "NAMED", "MEMBERS"],
        [
            [
                t.name,
                a.name,
                ", ".join(str(c) for c in a.cidrs or []) or None,
                ", ".join(a.endpoints or []) or None,
                ", ".join(ep.name for ep in network.select(t.name, Selector(address_set=a.name))) or None,
            ]
            for t in network.tenants
            if scope.has(t.name)
            for a in network.tenant_doc(t.name).address_sets
        ],
    )


def _service_set_section(network: Network) -> Section:
    return (
        "Service sets",
        ["SET", "SERVICES"],
        [[s.name, ", ".join(svc.describe() for svc in s.services)] for s in network.intent.service_sets],
    )


def _policy_section(network: Network, scope: Scope) -> Section:
    from segctl.cli._rules import policy_section

    return policy_section(network, scope.has, _selector_text)


def _shared_section(network: Network, scope: Scope) -> Section:
    return (
        "Shared services",
        ["SERVICE", "PROVIDER", "CONSUMERS", "SERVICES"],
        [
            [
                svc.name,
                ", ".join(ep.qualified for ep in network.shared_providers(svc)),
                ", ".join(
                    c.tenant if c.group is None else f"{c.tenant}/group {c.group}" for c in svc.consumers
                ),
                ", ".join(s.describe() for s in svc.services),
            ]
            for svc in network.shared_services
            if scope.service(svc)
        ],
    )


def _matrix_endpoints(network: Network, reach: Reachability, scope: Scope) -> list[EndpointInfo]:
    """The matrix's endpoints: all, or the tenant's then those it shares a grant with."""
    if scope.tenant is None:
        return list(network.endpoints)
    partners = {key for pair in reach for key in pair}
    own = [ep for ep in network.endpoints if ep.tenant == scope.tenant]
    return own + [ep for ep in network.endpoints if ep.tenant != scope.tenant and ep.key in partners]


def matrix_lines(
    network: Network, reach: Reachability, endpoints: list[EndpointInfo], *, fold: str = "auto"
) -> list[str]:
    """The expected reachability matrix over ``endpoints``: one cell per endpoint pair, or
    (``fold="segments"``, or ``auto`` past :data:`~segctl.reports.matrix.ENDPOINT_MATRIX_LIMIT`
    endpoints, as the HTML report does) one per ordered pair of segments."""
    from segctl.reports.matrix import ENDPOINT_MATRIX_LIMIT
    from segctl.topology.analysis import grant_symbol

    if fold == "segments" or (fold == "auto" and len(endpoints) > ENDPOINT_MATRIX_LIMIT):
        return _segment_matrix_lines(reach, endpoints)
    rows = [(ep, [grant_symbol(reach.get((ep.key, d.key), ())) for d in endpoints]) for ep in endpoints]
    out = ["Expected reachability (row may open connections to column)"]
    legend = "  legend: · denied   S same segment   P policy   X shared service"
    if any(g.kind == "guardrail" for grants in reach.values() for g in grants):
        legend += "   G guardrail"
    return out + _grid([ep.qualified for ep in endpoints], [row for _, row in rows], legend)


def _grid(names: list[str], rows: list[list[str]], legend: str) -> list[str]:
    """Numbered rows, numbered columns, cells right-aligned."""
    if not names:
        return ["  (no endpoints)"]
    width = max(len(str(len(names))), *(len(c) for row in rows for c in row))
    name_width = max(len(n) for n in names) + len(str(len(names))) + 1
    out = [
        (" " * (name_width + 3) + " ".join(str(i).rjust(width) for i in range(1, len(names) + 1))).rstrip()
    ]
    for i, (name, row) in enumerate(zip(names, rows, strict=True), start=1):
        out.append(
            ("  " + f"{i} {name}".ljust(name_width) + " " + " ".join(c.rjust(width) for c in row)).rstrip()
        )
    return [*out, legend]


def _segment_matrix_lines(reach: Reachability, endpoints: list[EndpointInfo]) -> list[str]:
    """One cell per ordered pair of segments: the grant letters of its endpoint pairs, and
    ``n/m`` when only n of its m pairs (self excluded) have a grant."""
    from segctl.topology.analysis import grant_symbol

    segment_of = {ep.key: f"{ep.tenant}/{ep.segment}" for ep in endpoints}
    segments = list(dict.fromkeys(segment_of.values()))
    members: dict[str, list[EndpointInfo]] = {s: [] for s in segments}
    for ep in endpoints:
        members[segment_of[ep.key]].append(ep)
    rows = []
    for src in segments:
        row = []
        for dst in segments:
            pairs = [(a.key, b.key) for a in members[src] for b in members[dst] if a.key != b.key]
            granted = [reach[p] for p in pairs if p in reach]
            letters = grant_symbol(g for grants in granted for g in grants)
            row.append(
                letters if len(granted) in (0, len(pairs)) else f"{letters} {len(granted)}/{len(pairs)}"
            )
        rows.append(row)
    head = (
        f"Expected reachability per segment ({len(endpoints)} endpoints in {len(segments)} segments; "
        "row may open connections to column)"
    )
    legend = "  legend: · denied   S same segment   P policy   X shared service   n/m: n of m endpoint pairs"
    return [head, *_grid(segments, rows, legend)]


def _allowed_lines(reach: Reachability, external: list[str]) -> list[str]:
    """Between endpoints, then (``external``) to and from the outside."""
    out = ["Allowed (source -> destination: grants)"]
    if not reach and not external:
        out.append("  (nothing is allowed)")
    for (src, dst), grants in reach.items():
        why = "; ".join(g.describe() for g in grants)
        out.append(f"  {src[0]}/{src[1]} -> {dst[0]}/{dst[1]}: {why}")
    return out + external


# ---------------------------------------------------------------- show: intent analysis


def _analysis(network: Network, scope: Scope | None) -> Any:
    """The intent analysis; with a tenant, its paths (from, to or through it) and its endpoints' radii."""
    from dataclasses import replace

    from segctl.topology.exposure import analyse

    result = analyse(network)
    if scope is None or scope.tenant is None:
        return result
    t = scope.tenant
    paths = tuple(
        p
        for p in result.cross_tenant_paths
        if p.tenant == t or any(key[0] == t for key in (p.target, *p.path))
    )
    radii = tuple(b for b in result.blast_radius if b.endpoint[0] == t)
    return replace(result, cross_tenant_paths=paths, blast_radius=radii)


def analysis_document(network: Network, scope: Scope | None = None) -> dict[str, Any]:
    """The ``analysis`` object of ``segctl show -o json`` (the report's, docs/report.md)."""
    doc: dict[str, Any] = _analysis(network, scope).to_json()
    return doc


def analysis_text(network: Network, scope: Scope | None = None) -> str:
    """Cross-tenant paths and the blast radius table (docs/intent.md, "Intent analysis")."""
    result = _analysis(network, scope)
    out = ["Cross-tenant paths (a compromised provider lets a consumer reach further)"]
    if not result.cross_tenant_paths:
        out.append("  none: every tenant reaches other tenants only over its declared shared services")
    for path in result.cross_tenant_paths:
        target = f"{path.target[0]}/{path.target[1]}"
        sources = f"{path.sources} endpoint{'s' if path.sources != 1 else ''}"
        out.append(f"  {path.tenant} -> {target} ({sources}): {path.describe()}")
    out += [
        "",
        f"Blast radius (what a compromised endpoint reaches over {result.edges} allowed connections; "
        "largest first)",
    ]
    rows: list[list[object]] = [
        [f"{b.endpoint[0]}/{b.endpoint[1]}", ", ".join(map(str, b.per_hop)) or "-", b.total]
        for b in result.blast_radius
    ]
    out.append(format_table(["ENDPOINT", "PER HOP", "TOTAL"], rows, indent="  ") if rows else "  (none)")
    return "\n".join(out)
