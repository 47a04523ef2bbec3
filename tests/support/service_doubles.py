"""A small compiler and verifier for unit tests of the controller service and API.

They stand in for segctl.flows (compiler/verifier) so the service's orchestration can be
tested on its own; they are real enough to disagree: the compiler routes by
``next_hop_ports`` (so link state matters) and has a deliberate bug switch (endpoint
label ``bug: misdeliver`` sends its traffic to a neighbour's port), and the verifier
checks that every edge output goes to the port of the endpoint whose MAC it matches
(isolation) and that every switch can forward to every endpoint (delivery).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from segctl.controller.gate import Progress, SwitchTables, Verification, Violation
from segctl.controller.southbound import SwitchMeter
from segctl.openflow.ofctl import Flow, Output, mac_text, parse_flow
from segctl.topology.model import build_graph, next_hop_ports
from segctl.topology.network import Network


def compile_tables(network: Network) -> dict[str, SwitchTables]:
    graph = build_graph(network)
    flows: dict[str, set[Flow]] = {s.name: set() for s in network.switches}
    meters: dict[str, set[SwitchMeter]] = {s.name: set() for s in network.switches}
    for n, ep in enumerate(network.endpoints, start=1):
        tid = network.tenant(ep.tenant).id
        flows[ep.switch].add(
            parse_flow(
                f"table=0,priority=100,cookie={tid:#x},in_port={ep.port},dl_src={ep.mac},"
                f"actions=write_metadata:{tid:#x}/0xfff,goto_table:1"
            )
        )
        port = ep.port
        if ep.label_dict().get("bug") == "misdeliver":
            others = [o for o in network.endpoints if o.switch == ep.switch and o != ep]
            port = others[0].port if others else port
        flows[ep.switch].add(
            parse_flow(f"table=1,priority=100,metadata={tid:#x}/0xfff,dl_dst={ep.mac},actions=output:{port}")
        )
        for sw, hop in next_hop_ports(graph, ep.switch).items():
            flows[sw].add(
                parse_flow(
                    f"table=1,priority=100,metadata={tid:#x}/0xfff,dl_dst={ep.mac},actions=output:{hop}"
                )
            )
        if ep.rate_pps:
            meters[ep.switch].add(SwitchMeter(n, "pktps", ep.rate_pps, ep.rate_burst))
    for name in flows:
        flows[name].add(parse_flow("table=0,priority=0,actions=drop"))
    return {name: SwitchTables(frozenset(flows[name]), frozenset(meters[name])) for name in flows}


def verify_tables(
    network: Network, tables: Mapping[str, Sequence[Flow]], *, progress: Progress | None = None
) -> Verification:
    violations: list[Violation] = []
    edge = {(ep.switch, ep.port): ep for ep in network.endpoints}
    by_mac = {ep.mac: ep for ep in network.endpoints}
    reach: dict[str, set[str]] = {}
    for switch, flows in tables.items():
        for flow in flows:
            dst = flow.get("eth_dst")
            if flow.table != 1 or dst is None:
                continue
            mac = mac_text(dst.value)
            target = by_mac.get(mac)
            reach.setdefault(switch, set()).add(mac)
            for action in flow.actions:
                if isinstance(action, Output) and (switch, action.port) in edge:
                    owner = edge[(switch, action.port)]
                    if target is None or owner != target:
                        violations.append(
                            Violation(
                                "isolation", f"{switch}: traffic for {mac} leaves on {owner.qualified}'s port"
                            )
                        )
    for switch in tables:
        for ep in network.endpoints:
            if ep.mac not in reach.get(switch, set()):
                violations.append(Violation("delivery", f"{switch} cannot forward to {ep.qualified}"))
    return Verification(not violations, tuple(violations), {"switches": sorted(tables)})
