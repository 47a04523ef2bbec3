"""Intent commands: ``segctl validate FILE...``, ``segctl schema``, ``segctl show FILE``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from segctl.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    add_output_option,
    format_table,
    print_json,
)

__all__ = ["analysis_document", "analysis_text", "register", "show_document", "show_text"]

if TYPE_CHECKING:  # command bodies import segctl.topology lazily so `segctl --help` stays fast
    from segctl.topology.analysis import Reachability
    from segctl.topology.network import Network


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
        "endpoint's blast radius (docs/intent.md).",
    )
    p.add_argument("file", metavar="FILE", help="intent file (.yaml, .yml or .json)")
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
    reach = expected_reachability(network)
    if args.output == "json":
        print_json({**show_document(network, reach), "analysis": analysis_document(network)})
    else:
        print(show_text(network, reach))
    return EXIT_OK


def _selector_text(selector: Any) -> str:
    return str(selector.describe())


def show_document(network: Network, reach: Reachability) -> dict[str, Any]:
    """The JSON form of ``segctl show``: every object resolved, plus the expected grants."""
    tenants = []
    for t in network.tenants:
        doc = network.tenant_doc(t.name)
        tenants.append(
            {
                "name": t.name,
                "id": t.id,
                "zone": t.id,
                "gateway_mac": t.gateway_mac,
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
                "policies": [
                    {
                        "name": p.name,
                        "from": _selector_text(p.from_),
                        "to": _selector_text(p.to),
                        "services": [s.describe() for s in p.services],
                        "stateful": p.stateful,
                    }
                    for p in doc.policies
                ],
            }
        )
    return {
        "switches": [{"name": s.name, "dpid": f"{s.dpid:#018x}"} for s in network.switches],
        "links": [f"{a}:{ap} <-> {b}:{bp}" for a, ap, b, bp in network.links],
        "tenants": tenants,
        "endpoints": [
            {
                "tenant": ep.tenant,
                "name": ep.name,
                "segment": ep.segment,
                "mac": ep.mac,
                "ip": str(ep.ip),
                "ipv6": None if ep.ipv6 is None else str(ep.ipv6),
                "switch": ep.switch,
                "port": ep.port,
                "labels": ep.label_dict(),
            }
            for ep in network.endpoints
        ],
        "shared_services": [
            {
                "name": svc.name,
                "provider": {
                    "tenant": svc.provider.tenant,
                    "endpoints": [ep.name for ep in network.shared_providers(svc)],
                },
                "consumers": [{"tenant": c.tenant, "group": c.group} for c in svc.consumers],
                "services": [s.describe() for s in svc.services],
            }
            for svc in network.shared_services
        ],
        "reachability": [
            {
                "src": f"{src[0]}/{src[1]}",
                "dst": f"{dst[0]}/{dst[1]}",
                "grants": [g.to_json() for g in grants],
            }
            for (src, dst), grants in reach.items()
        ],
    }


Section = tuple[str, list[str], list[list[object]]]


def show_text(network: Network, reach: Reachability) -> str:
    """The readable form of ``segctl show``: one table per kind, the matrix, the grants,
    then the intent analysis."""
    out: list[str] = []
    for title, headers, rows in (
        _fabric_section(network),
        _tenant_section(network),
        _segment_section(network),
        _endpoint_section(network),
        _group_section(network),
        _policy_section(network),
        _shared_section(network),
    ):
        out.append(title)
        out.append(format_table(headers, rows, indent="  ") if rows else "  (none)")
        out.append("")
    out += _matrix_lines(network, reach)
    out.append("")
    out += _allowed_lines(reach)
    out.append("")
    out.append(analysis_text(network))
    return "\n".join(out)


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


def _tenant_section(network: Network) -> Section:
    return (
        "Tenants",
        ["TENANT", "ID/ZONE", "GATEWAY MAC", "SEGMENTS", "ENDPOINTS"],
        [
            [
                t.name,
                t.id,
                t.gateway_mac,
                sum(1 for s in network.segments if s.tenant == t.name),
                len(network.tenant_endpoints(t.name)),
            ]
            for t in network.tenants
        ],
    )


def _segment_section(network: Network) -> Section:
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
        ],
    )


def _endpoint_section(network: Network) -> Section:
    return (
        "Endpoints",
        ["#", "ENDPOINT", "SEGMENT", "MAC", "IP", "IPV6", "ATTACH", "LABELS"],
        [
            [
                i,
                ep.qualified,
                ep.segment,
                ep.mac,
                ep.ip,
                ep.ipv6,
                f"{ep.switch}:{ep.port}",
                ",".join(f"{k}={v}" for k, v in ep.labels) or None,
            ]
            for i, ep in enumerate(network.endpoints, start=1)
        ],
    )


def _group_section(network: Network) -> Section:
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
            for g in network.tenant_doc(t.name).groups
        ],
    )


def _policy_section(network: Network) -> Section:
    return (
        "Policies",
        ["TENANT", "POLICY", "FROM", "TO", "SERVICES", "STATEFUL"],
        [
            [
                t.name,
                p.name,
                _selector_text(p.from_),
                _selector_text(p.to),
                ", ".join(s.describe() for s in p.services),
                "yes" if p.stateful else "no",
            ]
            for t in network.tenants
            for p in network.policies(t.name)
        ],
    )


def _shared_section(network: Network) -> Section:
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
        ],
    )


def _matrix_lines(network: Network, reach: Reachability) -> list[str]:
    from segctl.topology.analysis import reachability_matrix

    out = ["Expected reachability (row may open connections to column)"]
    matrix = reachability_matrix(network, reach)
    if not matrix:
        return [*out, "  (no endpoints)"]
    width = max(len(str(len(matrix))), *(len(c) for _, row in matrix for c in row))
    name_width = max(len(ep.qualified) for ep, _ in matrix) + len(str(len(matrix))) + 1
    header = " " * (name_width + 3) + " ".join(str(i).rjust(width) for i in range(1, len(matrix) + 1))
    out.append(header.rstrip())
    for i, (ep, row) in enumerate(matrix, start=1):
        label = f"{i} {ep.qualified}".ljust(name_width)
        out.append(("  " + label + " " + " ".join(c.rjust(width) for c in row)).rstrip())
    out.append("  legend: · denied   S same segment   P policy   X shared service")
    return out


def _allowed_lines(reach: Reachability) -> list[str]:
    out = ["Allowed (source -> destination: grants)"]
    if not reach:
        out.append("  (nothing is allowed)")
    for (src, dst), grants in reach.items():
        why = "; ".join(g.describe() for g in grants)
        out.append(f"  {src[0]}/{src[1]} -> {dst[0]}/{dst[1]}: {why}")
    return out


# ---------------------------------------------------------------- show: intent analysis


def analysis_document(network: Network) -> dict[str, Any]:
    """The ``analysis`` object of ``segctl show -o json`` (the report's, docs/report.md)."""
    from segctl.topology.exposure import analyse

    return analyse(network).to_json()


def analysis_text(network: Network) -> str:
    """Cross-tenant paths and the blast radius table (docs/intent.md, "Intent analysis")."""
    from segctl.topology.exposure import analyse

    result = analyse(network)
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
