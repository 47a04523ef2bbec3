"""Header spaces of the intent (origin packets, live variable names): what endpoints may send.

:class:`Spaces` builds, over one :class:`~segctl.verifier.headerspace.HeaderSpace`, the spaces
the property checks (:mod:`segctl.verifier.checks`) compare the engine's outcomes with: what
an endpoint may send (its bound addresses), a grant's services, property 3's forward and
reply spaces, property 2's allowed space. Results are cached per input: a
:class:`~segctl.verifier.incremental.IncrementalVerifier` keeps one ``Spaces`` across calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address

from segctl.openflow.ofctl import mac_int
from segctl.topology.analysis import Grant, ServiceMatch, ipv6_allowed, pair_grants
from segctl.topology.network import MIN_ROUTED_TTL, EndpointInfo, Network, first_hop_mac, routed
from segctl.verifier.headerspace import BDD, HeaderSpace

__all__ = ["ETH_ARP", "ETH_IP", "ETH_IP6", "Spaces"]

ETH_ARP, ETH_IP, ETH_IP6 = 0x0806, 0x0800, 0x86DD
_PROTO = {"tcp": 6, "udp": 17, "icmp": 1}


def _mac(text: str) -> int:
    return int(text.replace(":", ""), 16)


def _range(hs: HeaderSpace, name: str, lo: int, hi: int, width: int) -> BDD:
    """``lo <= field <= hi`` as a union of prefix blocks."""
    out = hs.false
    while lo <= hi:
        size = lo & -lo if lo else 1 << width
        while size > hi - lo + 1:
            size >>= 1
        mask = ((1 << width) - 1) ^ (size - 1)
        out |= hs.eq(name, lo, mask)
        lo += size
    return out


class Spaces:
    """Header spaces of the intent (origin packets, live names) over one :class:`HeaderSpace`."""

    def __init__(self, hs: HeaderSpace, network: Network) -> None:
        self.hs = hs
        self.net = network
        self._bound: dict[tuple[str, str], BDD] = {}
        self._pairs: dict[tuple[str, tuple[str, str], tuple[str, str], tuple[Grant, ...]], BDD] = {}

    def ip(self, field_name: str, addr: IPv4Address) -> BDD:
        return self.hs.eq(field_name, int(addr))

    def bound(self, ep: EndpointInfo) -> BDD:
        """Everything ``ep`` may send: untagged, its MAC, ARP/IPv4(/IPv6) with its addresses."""
        cached = self._bound.get(ep.key)
        if cached is not None:
            return cached
        hs = self.hs
        mac = _mac(ep.mac)
        arp = hs.eq("eth_type", ETH_ARP) & hs.eq("arp_sha", mac) & self.ip("ip_src", ep.ip)
        ipv4 = hs.eq("eth_type", ETH_IP) & self.ip("ip_src", ep.ip)
        out = arp | ipv4
        if ep.ipv6 is not None:
            out |= hs.eq("eth_type", ETH_IP6) & hs.eq("ipv6_src", int(IPv6Address(ep.ipv6)))
        out &= hs.eq("eth_src", mac) & hs.eq("vlan_present", 0) & hs.eq("vlan_vid", 0)
        self._bound[ep.key] = out
        return out

    def service(self, svc: ServiceMatch, *, reply: bool = False) -> BDD:
        """IPv4 packets of a service; ``reply`` mirrors the ports (source port in range)."""
        hs = self.hs
        out = hs.eq("eth_type", ETH_IP)
        if svc.proto == "any":
            return out
        out &= hs.eq("ip_proto", _PROTO[svc.proto])
        if svc.ports is None:
            return out
        port_field = "tp_src" if reply else "tp_dst"
        ports = hs.false
        for lo, hi in svc.ports:
            ports |= _range(hs, port_field, lo, hi, 16)
        return out & ports

    def grants(self, grants: Iterable[Grant], *, reply: bool = False) -> BDD:
        out = self.hs.false
        for g in grants:
            for svc in g.services:
                out |= self.service(svc, reply=reply)
        return out

    def routed(self, src: EndpointInfo, dst: EndpointInfo) -> bool:
        return src.tenant != dst.tenant or src.segment != dst.segment

    def first_hop(self, src: EndpointInfo, dst: EndpointInfo) -> BDD:
        """``eth_dst`` (and TTL) of a packet ``src`` sends to ``dst``: the intent's first-hop
        rule (:func:`~segctl.topology.network.first_hop_mac`), TTL >= 2 when routed."""
        hs = self.hs
        out = hs.eq("eth_dst", mac_int(first_hop_mac(self.net, src, dst)))
        if routed(src, dst):
            for ttl in range(MIN_ROUTED_TTL):
                out &= ~hs.eq("nw_ttl", ttl)
        return out

    def forward(self, src: EndpointInfo, dst: EndpointInfo, grants: Iterable[Grant]) -> BDD:
        """New packets ``src`` may send to ``dst`` (property 3's forward space)."""
        return self._pair("forward", src, dst, tuple(grants))

    def reply(self, src: EndpointInfo, dst: EndpointInfo, grants: Iterable[Grant]) -> BDD:
        """Replies ``dst`` sends back to ``src`` on ``src``'s stateful grants."""
        return self._pair("reply", src, dst, tuple(grants))

    def _pair(self, kind: str, src: EndpointInfo, dst: EndpointInfo, grants: tuple[Grant, ...]) -> BDD:
        """:meth:`forward` or :meth:`reply` (``kind``), cached per (kind, src, dst, grants)."""
        key = (kind, src.key, dst.key, grants)
        cached = self._pairs.get(key)
        if cached is None:
            build = self._forward if kind == "forward" else self._reply
            cached = self._pairs[key] = build(src, dst, grants)
        return cached

    def _forward(self, src: EndpointInfo, dst: EndpointInfo, grants: tuple[Grant, ...]) -> BDD:
        return self.bound(src) & self.first_hop(src, dst) & self.ip("ip_dst", dst.ip) & self.grants(grants)

    def _reply(self, src: EndpointInfo, dst: EndpointInfo, grants: tuple[Grant, ...]) -> BDD:
        stateful = [g for g in grants if g.stateful]
        if not stateful:
            return self.hs.false
        return (
            self.bound(dst)
            & self.first_hop(dst, src)
            & self.ip("ip_dst", src.ip)
            & self.grants(stateful, reply=True)
        )

    def allowed_new(self, src: EndpointInfo, dst: EndpointInfo) -> BDD:
        """Property 2: what may be delivered from ``src`` to ``dst`` (same tenant) as new."""
        hs = self.hs
        if src.key == dst.key:
            seg = self.net.segment(src.tenant, src.segment)
            if seg.gateway is None:
                return hs.false
            return hs.eq("eth_type", ETH_ARP) & hs.eq("arp_op", 1) & self.ip("ip_dst", seg.gateway)
        out = self.grants(pair_grants(self.net, src, dst)) & self.ip("ip_src", src.ip)
        out &= self.ip("ip_dst", dst.ip)
        if src.tenant == dst.tenant and src.segment == dst.segment:
            out |= hs.eq("eth_type", ETH_ARP) & self.ip("ip_dst", dst.ip)
        if ipv6_allowed(self.net, src, dst):
            out |= hs.eq("eth_type", ETH_IP6)
        return out

    def same_address(self, name: str) -> BDD:
        """Relation: the live ``name`` equals its ghost (the injected value)."""
        bdd = self.hs.bdd
        out = self.hs.true
        width = 32
        for i in range(width):
            out &= bdd.apply("equiv", bdd.var(f"{name}_{i}"), bdd.var(f"o.{name}_{i}"))
        return out
