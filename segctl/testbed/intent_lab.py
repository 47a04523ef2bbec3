"""The lab of an intent: one bridge per fabric switch, one namespace per endpoint.

Tests, benchmarks and anything else that needs an intent's fabric on real OVS bridges
build its :class:`LabSpec` here, so the mapping (addresses with their segment prefix,
IPv6 where the segment has a ``cidr6``, the gateway as default route) exists once.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

from segctl.testbed.lab import HostSpec, LabSpec, LinkSpec, SwitchSpec
from segctl.topology.network import Network

__all__ = ["free_port", "lab_spec"]


def lab_spec(
    network: Network,
    prefix: str,
    *,
    host_names: Mapping[tuple[str, str], str] | None = None,
    hosts: bool = True,
) -> LabSpec:
    """The :class:`LabSpec` of ``network``: its switches, fabric links and endpoints, and
    for each external network a host ``x<index>`` on its uplink with the router's MAC and IP.

    Hosts are named after their endpoints unless ``host_names`` maps endpoint keys
    ``(tenant, name)`` to other names (endpoint names are unique per tenant only).
    With ``hosts=False`` the lab has the bridges and fabric links only, no endpoint
    namespaces: enough to push, dump and verify rules (OVS accepts flows that match
    ``in_port`` numbers no port has yet), not to send packets.
    """
    specs = []
    for ep in network.endpoints if hosts else ():
        seg = network.segment(ep.tenant, ep.segment)
        specs.append(
            HostSpec(
                name=host_names[ep.key] if host_names is not None else ep.name,
                mac=ep.mac,
                ipv4=f"{ep.ip}/{seg.cidr.prefixlen}",
                switch=ep.switch,
                port=ep.port,
                ipv6=f"{ep.ipv6}/{seg.cidr6.prefixlen}" if ep.ipv6 and seg.cidr6 else None,
                ipv6_link_local=str(ep.ipv6_link_local) if ep.ipv6_link_local else None,
                gateway=str(seg.gateway) if seg.gateway else None,
                gateway6=str(ep.ipv6_gateway) if ep.ipv6_gateway else None,
            )
        )
    for ext in network.externals if hosts else ():
        # the upstream router of each external network, the "internet" behind its uplink
        specs.append(HostSpec(f"x{ext.index}", ext.router_mac, f"{ext.router_ip}/{ext.cidr.prefixlen}",
                              ext.switch, ext.port))  # fmt: skip
    return LabSpec(
        prefix,
        [SwitchSpec(s.name, s.dpid) for s in network.switches],
        [LinkSpec(*link) for link in network.links],
        specs,
    )


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
