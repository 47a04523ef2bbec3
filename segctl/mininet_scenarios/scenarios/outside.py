"""Attacks from the outside: crafted frames the upstream router's host sends up the uplink.

The target is the first endpoint with a floating IP (:func:`floating_target`). From the
router's MAC to the external network's, the outside sends: a TCP SYN on a granted port
straight to the target's *private* address, the same to its floating IP from a source
spoofed into the target's own segment on a port no policy grants (an intra-segment
allow must not apply after the translation: docs/pipeline.md, ORIGIN 4095), the granted
SYN tagged with the target segment's VLAN and with the top transit VLAN (the uplink takes
untagged frames only), and a SYN to its tenant's SNAT address. None may be captured at any
endpoint. The granted SYN to the floating IP from the outside server, which the intent
allows, must reach the target translated to its private address (the capture works).
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from segctl.mininet_scenarios.network import OutsidePlan
from segctl.mininet_scenarios.probes import inject
from segctl.mininet_scenarios.runner import Run
from segctl.topology.network import EndpointInfo, Network
from segctl.topology.outside import external_decision, outside_server

__all__ = ["floating_target", "outside_attack_frames", "outside_attacks", "outside_attacks_needs"]

MARKER = b"SEGCTL-OUTSIDE"
#: The highest VLAN id: transit VLANs are taken from it downward.
TOP_VLAN = 4094
_PORTS = (80, 443, 8080, 22, 9)


def floating_target(network: Network) -> tuple[EndpointInfo, int] | None:
    """The first endpoint with a floating IP and a TCP port the outside server may open on
    it (the control), in document order."""
    for ep in network.endpoints:
        if ep.floating_ip is None or ep.floating_external is None:
            continue
        ext = network.external(ep.floating_external)
        server = outside_server(network, ext)
        for port in _PORTS:
            decision = external_decision(network, ep, "in", server, "tcp", port, external=ext.name)
            if decision is not None and decision.allow:
                return ep, port
    return None


def outside_attacks_needs(network: Network) -> str:
    """Why the outside attacks cannot run on ``network`` ("" when they can)."""
    if floating_target(network) is None:
        return "no endpoint has a floating IP that an ingress policy opens on TCP"
    return ""


def _closed_port(network: Network, target: EndpointInfo, server: IPv4Address) -> int:
    """A TCP port no ingress policy opens to ``target`` from ``server``."""
    return next(
        p
        for p in (22, 23, 3389, 4444, 31337)
        if not (d := external_decision(network, target, "in", server, "tcp", p)) or not d.allow
    )


def outside_attack_frames(
    network: Network, outside: OutsidePlan, target: EndpointInfo, port: int
) -> tuple[dict[str, bytes], bytes]:
    """(attack name -> frame, control frame): what :func:`outside_attacks` sends."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Dot1Q, Ether

    ext = outside.external
    assert target.floating_ip is not None
    floating, server = str(target.floating_ip), str(outside.server)
    segment = network.segment(target.tenant, target.segment)
    taken = {str(target.ip), str(segment.gateway)}
    neighbour = next((a for a in segment.cidr.hosts() if str(a) not in taken), None)

    def syn(src: str, dst: str, dport: int, tag: bytes, vlan: int | None = None) -> Any:
        eth = Ether(src=ext.router_mac, dst=ext.mac)
        head = eth / Dot1Q(vlan=vlan) if vlan is not None else eth
        return head / IP(src=src, dst=dst, ttl=64) / TCP(sport=40001, dport=dport, flags="S") / (MARKER + tag)

    closed = _closed_port(network, target, outside.server)
    snat = network.tenant(target.tenant).snat_address(ext.name)
    attacks: dict[str, Any] = {
        f"SYN to the private address {target.ip}:{port}": syn(server, str(target.ip), port, b"private"),
        f"SYN to the floating IP on closed port {closed} from a source in the target's segment": syn(
            str(neighbour), floating, closed, b"spoofed"
        ),
        f"SYN to the floating IP tagged with the segment's VLAN {segment.vlan}": syn(
            server, floating, port, b"segment-vlan", segment.vlan
        ),
        f"SYN to the floating IP tagged with transit VLAN {TOP_VLAN}": syn(
            server, floating, port, b"transit-vlan", TOP_VLAN
        ),
    }
    if snat is not None:
        attacks[f"SYN to the tenant's SNAT address {snat}:{port}"] = syn(server, str(snat), port, b"snat")
    control = syn(server, floating, port, b"control")
    return {name: bytes(frame) for name, frame in attacks.items()}, bytes(control)


def outside_attacks(run: Run) -> None:
    """Send the outside's crafted frames; none may be captured at any endpoint, the control
    must reach the target."""
    found = floating_target(run.network)
    if found is None:
        run.check("outside attacks not applicable", True, outside_attacks_needs(run.network))
        return
    target, port = found
    outside = next(o for o in run.fabric.plan.outsides if o.external.name == target.floating_external)
    frames, control = outside_attack_frames(run.network, outside, target, port)
    watchers = list(run.network.endpoints)
    captured = inject(run.fabric, outside.key, [*frames.values(), control], watchers, bpf="tcp")
    for name, frame in frames.items():
        tail = frame[frame.index(MARKER) :]
        where = sorted("/".join(key) for key, got in captured.items() if any(tail in raw for raw in got))
        sender = "/".join(outside.key)
        detail = f"reached {', '.join(where)}" if where else f"sent by {sender}, captured nowhere"
        run.check(f"outside attack dropped: {name}", not where, detail)
    got = [raw for raw in captured.get(target.key, []) if MARKER + b"control" in raw]
    translated = any(raw[30:34] == IPv4Address(target.ip).packed for raw in got)
    run.check(
        "outside control SYN delivered to the floating IP's endpoint (capture works)",
        translated,
        f"{'/'.join(outside.key)} -> {target.floating_ip}:{port} arrived at {target.qualified} as {target.ip}"
        if translated
        else f"{'/'.join(outside.key)} -> {target.floating_ip}:{port} not captured at {target.qualified}",
    )
    run.matrix("after outside attacks")
