"""IPv6 first-hop attacks: rogue router advertisements, redirects and forged sources.

An endpoint with IPv6 (the first one that may send an ICMPv6 echo request to a peer of
its segment, :func:`ipv6_pair`) sends crafted ICMPv6: router
advertisements to the all-nodes group and unicast to its peer, a redirect, an RA from its
own link-local address, and echo requests from a forged global and a forged link-local
source. None may arrive anywhere (RA guard and spoof guard, docs/pipeline.md table 0; the
bound sources are the global address and ``EndpointInfo.ipv6_link_local``). An echo
request from its bound address to the peer, which the intent allows, proves the captures
work.
"""

from __future__ import annotations

from typing import Any

from segctl.mininet_scenarios.probes import inject
from segctl.mininet_scenarios.runner import Run
from segctl.topology.analysis import allowed_grants, ipv6_segments
from segctl.topology.network import EndpointInfo, Network

__all__ = ["ipv6_attacks", "ipv6_first_hop", "ipv6_first_hop_needs", "ipv6_pair"]

MARKER = b"SEGCTL-V6ATTACK"
_ALL_NODES = ("33:33:00:00:00:01", "ff02::1")


def ipv6_pair(network: Network) -> tuple[EndpointInfo, EndpointInfo] | None:
    """The first (attacker, peer) pair in document order of two IPv6 endpoints of one segment
    where the intent allows an ICMPv6 echo request (the control frame)."""
    position = {ep.key: i for i, ep in enumerate(network.endpoints)}
    members = sorted(
        (ep for _, _, eps in ipv6_segments(network) for ep in eps),
        key=lambda ep: position[ep.key],
    )
    for me in members:
        for peer in members:
            same_segment = (me.tenant, me.segment) == (peer.tenant, peer.segment)
            if same_segment and allowed_grants(network, me, peer, "icmp6", icmp_type=128, family=6):
                return me, peer
    return None


def ipv6_first_hop_needs(network: Network) -> str:
    """Why the IPv6 attacks cannot run on ``network`` ("" when they can)."""
    if ipv6_pair(network) is None:
        return "no endpoint may send an ICMPv6 echo request to another (two ipv6 endpoints of one segment)"
    return ""


def _forged_ipv6(me: EndpointInfo, network: Network) -> str:
    """An address of ``me``'s prefix that no endpoint has."""
    taken = {ep.ipv6 for ep in network.endpoints}
    if me.ipv6 is None:
        raise ValueError(f"{me.qualified} has no ipv6")
    candidate = me.ipv6 + 0xBEEF
    while candidate in taken:
        candidate += 1
    return str(candidate)


def ipv6_attacks(network: Network, me: EndpointInfo, peer: EndpointInfo) -> tuple[dict[str, bytes], bytes]:
    """(attack name -> frame, control frame): what :func:`ipv6_first_hop` sends."""
    from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_RA, ICMPv6ND_Redirect, IPv6
    from scapy.layers.l2 import Ether

    def v6(src_ip: str, eth_dst: str, dst_ip: str) -> Any:
        return Ether(src=me.mac, dst=eth_dst) / IPv6(src=src_ip, dst=dst_ip, hlim=255)

    own, to_peer = str(me.ipv6), (peer.mac, str(peer.ipv6))
    attacks: dict[str, Any] = {
        "rogue router advertisement (all nodes)": v6(own, *_ALL_NODES) / ICMPv6ND_RA() / (MARKER + b"ra-all"),
        "rogue router advertisement (unicast to an IPv6 peer)": v6(own, *to_peer)
        / ICMPv6ND_RA()
        / (MARKER + b"ra-peer"),
        "ICMPv6 redirect (to an IPv6 peer)": v6(own, *to_peer)
        / ICMPv6ND_Redirect(tgt=own, dst=own)
        / (MARKER + b"redirect"),
        "router advertisement from its link-local address": v6(str(me.ipv6_link_local), *_ALL_NODES)
        / ICMPv6ND_RA()
        / (MARKER + b"ra-ll"),
        "forged IPv6 source": v6(_forged_ipv6(me, network), *to_peer)
        / ICMPv6EchoRequest(data=MARKER + b"src"),
        "forged link-local source": v6("fe80::dead:beef", *to_peer) / ICMPv6EchoRequest(data=MARKER + b"ll"),
    }
    control = v6(own, *to_peer) / ICMPv6EchoRequest(data=MARKER + b"control")
    return {name: bytes(frame) for name, frame in attacks.items()}, bytes(control)


def ipv6_first_hop(run: Run) -> None:
    """Send the IPv6 attacks; none may be captured anywhere, the control must reach the peer."""
    pair = ipv6_pair(run.network)
    if pair is None:
        run.check("IPv6 attacks not applicable", True, ipv6_first_hop_needs(run.network))
        return
    me, peer = pair
    frames, control = ipv6_attacks(run.network, me, peer)
    others = [ep for ep in run.network.endpoints if ep.key != me.key]
    captured = inject(run.fabric, me, [*frames.values(), control], others, bpf="icmp6")
    for name, frame in frames.items():
        tail = frame[frame.index(MARKER) :]
        where = sorted("/".join(key) for key, got in captured.items() if any(tail in raw for raw in got))
        detail = f"reached {', '.join(where)}" if where else f"sent by {me.qualified}, captured nowhere"
        run.check(f"attack dropped: {name}", not where, detail)
    delivered = any(MARKER + b"control" in raw for raw in captured.get(peer.key, []))
    run.check(
        "IPv6 control frame delivered (capture works)",
        delivered,
        f"{me.qualified} -> {peer.qualified} ICMPv6 echo request",
    )
    run.matrix("after IPv6 attacks")
