"""Header spaces of the intent (packets as sent, in origin naming): what endpoints may send.

:class:`Spaces` builds, over one :class:`~segctl.verifier.headerspace.HeaderSpace`, the
spaces the properties (:mod:`segctl.verifier.checks`) compare an engine's views with: what
an endpoint may send (its bound addresses), a grant's services, property 3's forward and
reply spaces, property 2's allowed space; and their *tagged* unions over many sources at
once (``tag`` = the source's ingress number), so that a property is checked for every
source of a destination with a few BDD operations instead of one per pair. Everything is
cached per input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Address, IPv6Address

from segctl.openflow.ofctl import mac_int
from segctl.openflow.ofmatch import IP_PROTO_ICMPV6
from segctl.topology.analysis import (
    ICMP_REPLY_TYPES,
    ICMPV6_REPLY_TYPES,
    NEIGHBOUR_DISCOVERY,
    NEIGHBOUR_SOLICITATION,
    ROUTER_ONLY_ICMPV6,
    Grant,
    ServiceMatch,
    ipv6_addresses,
    ipv6_applies,
)
from segctl.topology.network import MIN_ROUTED_TTL, EndpointInfo, Network, first_hop_mac, routed
from segctl.verifier.headerspace import BDD, HeaderSpace

__all__ = ["ETH_ARP", "ETH_IP", "ETH_IP6", "Spaces", "port_range", "same_address"]

ETH_ARP, ETH_IP, ETH_IP6 = 0x0806, 0x0800, 0x86DD
_PROTO = {"tcp": 6, "udp": 17, "icmp": 1, "icmp6": IP_PROTO_ICMPV6}
#: Per family: its ICMP protocol name (the other family's has no packet in it).
_ICMP = {4: "icmp", 6: "icmp6"}


def port_range(hs: HeaderSpace, name: str, lo: int, hi: int, width: int) -> BDD:
    """``lo <= field <= hi`` as a union of prefix blocks."""
    out = hs.false
    while lo <= hi:
        size = lo & -lo if lo else 1 << width
        while size > hi - lo + 1:
            size >>= 1
        mask = ((1 << width) - 1) ^ (size - 1)
        out |= hs.oeq(name, lo, mask)
        lo += size
    return out


def same_address(hs: HeaderSpace, name: str) -> BDD:
    """Relation: the live ``name`` (a 32-bit address field) equals its ghost (the injected value)."""
    bdd = hs.bdd
    out = hs.true
    for i in reversed(range(32)):
        out &= bdd.apply("equiv", bdd.var(f"{name}_{i}"), bdd.var(f"o.{name}_{i}"))
    return out


class Spaces:
    """Header spaces of the intent over one :class:`HeaderSpace`, in origin naming (rewritable
    fields on their ghost bits, as :meth:`~segctl.verifier.headerspace.HeaderSpace.sent` gives
    the packets of a relation).

    ``tags`` maps an endpoint key to its ingress number, for the tagged unions.
    """

    def __init__(
        self, hs: HeaderSpace, network: Network, tags: Mapping[tuple[str, str], int] | None = None
    ) -> None:
        self.hs = hs
        self.net = network
        self.tags = dict(tags or {})
        self._bound: dict[tuple[str, str], BDD] = {}
        self._services: dict[tuple[ServiceMatch, bool, bool], BDD] = {}
        self._grants: dict[tuple[tuple[Grant, ...], bool, bool], BDD] = {}
        self._sets: dict[tuple[str, frozenset[object]], BDD] = {}

    # ------------------------------------------------------------------ one endpoint

    def ip(self, field_name: str, addr: IPv4Address) -> BDD:
        return self.hs.oeq(field_name, int(addr))

    def to_address(self, ep: EndpointInfo, ipv6: bool, *, routed6: bool = False) -> BDD:
        """Packets addressed to ``ep``: IPv4 to its address, and with ``ipv6`` (the pair may
        use IPv6, :func:`~segctl.topology.analysis.ipv6_applies`) IPv6 to its global or
        link-local address (``routed6``, :func:`~segctl.topology.analysis.ipv6_routed`: to
        its global address only)."""
        return self._address(ep, ipv6, "dst", routed6)

    def _address(self, ep: EndpointInfo, ipv6: bool, side: str, routed6: bool) -> BDD:
        hs = self.hs

        def build() -> BDD:
            out = hs.oeq("eth_type", ETH_IP) & self.ip(f"ip_{side}", ep.ip)
            addresses = ipv6_addresses(ep, routed6)
            if ipv6 and addresses:
                out |= hs.oeq("eth_type", ETH_IP6) & self.ip6_set(f"ipv6_{side}", addresses)
            return out

        return self._memo(f"address_{side}", frozenset([(ep.key, ipv6, routed6)]), build)

    def not_link_local_from(self, endpoints: Iterable[EndpointInfo]) -> BDD:
        """Every packet but IPv6 from the link-local address of one of ``endpoints`` (what the
        gateway never routes)."""
        addresses = [ep.ipv6_link_local for ep in endpoints if ep.ipv6_link_local is not None]
        if not addresses:
            return self.hs.true
        return ~(self.hs.oeq("eth_type", ETH_IP6) & self.ip6_set("ipv6_src", addresses))

    def bound(self, ep: EndpointInfo) -> BDD:
        """Everything ``ep`` may send: untagged, its MAC, ARP/IPv4(/IPv6) with its addresses."""
        cached = self._bound.get(ep.key)
        if cached is not None:
            return cached
        hs = self.hs
        mac = mac_int(ep.mac)
        arp = hs.oeq("eth_type", ETH_ARP) & hs.oeq("arp_sha", mac) & self.ip("ip_src", ep.ip)
        ipv4 = hs.oeq("eth_type", ETH_IP) & self.ip("ip_src", ep.ip)
        out = arp | ipv4
        if ep.ipv6_sources:  # global and link-local
            sources = hs.false
            for address in ep.ipv6_sources:
                sources |= hs.oeq("ipv6_src", int(IPv6Address(address)))
            out |= hs.oeq("eth_type", ETH_IP6) & sources
        out &= hs.oeq("eth_src", mac) & hs.oeq("vlan_present", 0) & hs.oeq("vlan_vid", 0)
        self._bound[ep.key] = out
        return out

    def grant_ipv6(self) -> BDD:
        """The IPv6 a grant may carry: all of it but the router-only ICMPv6 messages (RA guard,
        :data:`~segctl.topology.analysis.ROUTER_ONLY_ICMPV6`) and neighbour discovery, which
        goes outside conntrack and grants (:meth:`neighbour_discovery`). Built once."""
        hs = self.hs

        def build() -> BDD:
            types = hs.union(hs.oeq("icmp_type", t) for t in (*ROUTER_ONLY_ICMPV6, *NEIGHBOUR_DISCOVERY))
            return hs.oeq("eth_type", ETH_IP6) & ~(hs.oeq("ip_proto", IP_PROTO_ICMPV6) & types)

        return self._memo("grant_ipv6", frozenset(), build)

    def neighbour_discovery(self) -> BDD:
        """Neighbour solicitations and advertisements
        (:data:`~segctl.topology.analysis.NEIGHBOUR_DISCOVERY`), whatever their addresses."""
        hs = self.hs
        return self._memo(
            "nd",
            frozenset(),
            lambda: (
                hs.oeq("eth_type", ETH_IP6)
                & hs.oeq("ip_proto", IP_PROTO_ICMPV6)
                & hs.union(hs.oeq("icmp_type", t) for t in NEIGHBOUR_DISCOVERY)
            ),
        )

    def service(self, svc: ServiceMatch, *, ipv6: bool, reply: bool = False) -> BDD:
        """Packets of a service: IPv4, and with ``ipv6`` (the pair may use it,
        :func:`~segctl.topology.analysis.ipv6_applies`) the IPv6 a grant may carry
        (:meth:`grant_ipv6`); ``reply`` mirrors the ports (source port in range) and turns an
        ICMP query type into its reply type (:meth:`icmp`). IPv4-only pairs get IPv4-only
        spaces: a smaller BDD for every operation the proof does with them."""
        key = (svc, reply, ipv6)
        cached = self._services.get(key)
        if cached is None:
            cached = self._in_family(svc, 4, reply)
            if ipv6:
                cached |= self._in_family(svc, 6, reply)
            self._services[key] = cached
        return cached

    def _in_family(self, svc: ServiceMatch, family: int, reply: bool) -> BDD:
        hs = self.hs
        out = hs.oeq("eth_type", ETH_IP) if family == 4 else self.grant_ipv6()
        icmp = _ICMP[family]
        if svc.proto == "other":  # every protocol but tcp, udp and the family's icmp
            for name in ("tcp", "udp", icmp):
                out &= ~hs.oeq("ip_proto", _PROTO[name])
        elif svc.proto in _ICMP.values() and svc.proto != icmp:
            return hs.false
        elif svc.proto != "any":
            out &= hs.oeq("ip_proto", _PROTO[svc.proto])
            if svc.ports is not None:
                port_field = "tp_src" if reply else "tp_dst"
                ports = hs.false
                for lo, hi in svc.ports:
                    ports |= port_range(hs, port_field, lo, hi, 16)
                out &= ports
            if svc.icmp_type is not None:
                out &= self.icmp(svc, reply=reply)
        return out

    def icmp(self, svc: ServiceMatch, *, reply: bool = False) -> BDD:
        """The ICMP type (and code) of a typed service; its replies: the reply type of a query
        (echo 8 -> 0, timestamp 13 -> 14, ...; ICMPv6 echo 128 -> 129; any code), none for
        any other type (conntrack passes no reply to an error or a message that is not a query)."""
        hs = self.hs
        if svc.icmp_type is None:
            return hs.true
        if reply:
            answers = ICMPV6_REPLY_TYPES if svc.proto == "icmp6" else ICMP_REPLY_TYPES
            answer = answers.get(svc.icmp_type)
            return hs.false if answer is None else hs.oeq("icmp_type", answer)
        out = hs.oeq("icmp_type", svc.icmp_type)
        return out if svc.icmp_code is None else out & hs.oeq("icmp_code", svc.icmp_code)

    def grants(self, grants: Iterable[Grant], *, ipv6: bool, reply: bool = False) -> BDD:
        """The services of ``grants`` (replies: ports mirrored; ``ipv6``: in IPv6 too, see
        :meth:`service`)."""
        key = (tuple(grants), reply, ipv6)
        cached = self._grants.get(key)
        if cached is None:
            out = self.hs.false
            for g in key[0]:
                for svc in g.services:
                    out |= self.service(svc, reply=reply, ipv6=ipv6)
            cached = self._grants[key] = out
        return cached

    def first_hop(self, src: EndpointInfo, dst: EndpointInfo) -> BDD:
        """``eth_dst`` (and TTL) of a packet ``src`` sends to ``dst``: the intent's first-hop
        rule (:func:`~segctl.topology.network.first_hop_mac`), TTL >= 2 when routed."""
        hs = self.hs
        out = hs.oeq("eth_dst", mac_int(first_hop_mac(self.net, src, dst)))
        if routed(src, dst):
            for ttl in range(MIN_ROUTED_TTL):
                out &= ~hs.oeq("nw_ttl", ttl)
        return out

    def replies_to(self, dst: EndpointInfo, sources: Sequence[tuple[EndpointInfo, Sequence[Grant]]]) -> BDD:
        """The destination side of the replies ``dst`` sends back to each of ``sources`` on
        that source's stateful grants (each source's carry its address as destination; AND
        :meth:`bound` of ``dst`` for the replies themselves)."""
        hs = self.hs
        classes: dict[tuple[tuple[Grant, ...], bool, bool], list[EndpointInfo]] = {}
        for src, grants in sources:
            stateful = tuple(g for g in grants if g.stateful)
            if stateful:
                classes.setdefault((stateful, routed(dst, src), ipv6_applies(dst, src)), []).append(src)
        parts = []
        for (grants, via_gateway, ipv6), srcs in classes.items():
            if via_gateway:  # routed IPv6 (ipv6_routed) goes to global addresses only
                to = hs.oeq("eth_type", ETH_IP) & self.ip_set("ip_dst", [s.ip for s in srcs])
                if ipv6:
                    global6 = [s.ipv6 for s in srcs if s.ipv6 is not None]
                    to |= hs.oeq("eth_type", ETH_IP6) & self.ip6_set("ipv6_dst", global6)
                to &= self.first_hop(dst, srcs[0]) & self.not_link_local_from([dst])
            else:
                to = self._memo(
                    "mac_ip", frozenset((s.key, ipv6) for s in srcs),
                    lambda srcs=srcs, ipv6=ipv6: hs.union(
                        hs.oeq("eth_dst", mac_int(s.mac)) & self.to_address(s, ipv6) for s in srcs
                    ),
                )  # fmt: skip
            parts.append(to & self.grants(grants, reply=True, ipv6=ipv6))
        return hs.union(parts)

    def gateway_arp(self, ep: EndpointInfo) -> BDD:
        """What ``ep`` may deliver to itself: its ARP request for its segment's gateway, and its
        neighbour solicitation for the segment's ``gateway6`` (each answered by the gateway)."""
        seg = self.net.segment(ep.tenant, ep.segment)
        hs = self.hs
        out = hs.false
        if seg.gateway is not None:
            out |= hs.oeq("eth_type", ETH_ARP) & hs.oeq("arp_op", 1) & self.ip("ip_dst", seg.gateway)
        if ep.ipv6_gateway is not None:
            out |= (
                hs.oeq("eth_type", ETH_IP6)
                & hs.oeq("ip_proto", IP_PROTO_ICMPV6)
                & hs.oeq("icmp_type", NEIGHBOUR_SOLICITATION)
                & hs.oeq("nd_target", int(ep.ipv6_gateway))
            )
        return out

    # ------------------------------------------------------------------ tagged unions

    def tag_set(self, endpoints: Iterable[EndpointInfo]) -> BDD:
        """Packets tagged with the ingress of one of ``endpoints``."""
        tags = frozenset(self.tags[ep.key] for ep in endpoints)
        return self._memo("tags", tags, lambda: self.hs.tag_set(tags))

    def bound_tagged(self, endpoints: Iterable[EndpointInfo]) -> BDD:
        """∪ over ``endpoints``: tag(ep) ∧ :meth:`bound` (ep)."""
        eps = tuple(endpoints)
        key = frozenset(ep.key for ep in eps)
        return self._memo(
            "bound", key, lambda: self.hs.union(self.hs.tag(self.tags[ep.key]) & self.bound(ep) for ep in eps)
        )

    def src_ip_tagged(self, endpoints: Iterable[EndpointInfo]) -> BDD:
        """∪ over ``endpoints``: tag(ep) ∧ IPv4 from ep's address."""
        eps = tuple(endpoints)
        key = frozenset(ep.key for ep in eps)
        hs = self.hs
        return self._memo(
            "src_ip",
            key,
            lambda: (
                hs.oeq("eth_type", ETH_IP)
                & hs.union(hs.tag(self.tags[ep.key]) & self.ip("ip_src", ep.ip) for ep in eps)
            ),
        )

    def ip6_tagged(self, endpoints: Iterable[EndpointInfo], side: str, *, routed6: bool = False) -> BDD:
        """∪ over ``endpoints``: tag(ep) ∧ IPv6 from (``side`` ``src``) or to (``dst``) its
        global or link-local address (``routed6``: its global address only)."""
        eps = tuple(ep for ep in endpoints if ep.ipv6_sources)
        key = frozenset(ep.key for ep in eps)
        hs = self.hs
        return self._memo(
            f"{side}_ip6_{routed6}",
            key,
            lambda: (
                hs.union(
                    hs.tag(self.tags[ep.key]) & self.ip6_set(f"ipv6_{side}", ipv6_addresses(ep, routed6))
                    for ep in eps
                )
                & hs.oeq("eth_type", ETH_IP6)
            ),
        )

    def dst_ip_tagged(self, endpoints: Iterable[EndpointInfo]) -> BDD:
        """∪ over ``endpoints``: tag(ep) ∧ ``ip_dst`` = ep's address."""
        eps = tuple(endpoints)
        key = frozenset(ep.key for ep in eps)
        hs = self.hs
        return self._memo(
            "dst_ip",
            key,
            lambda: hs.union(hs.tag(self.tags[ep.key]) & self.ip("ip_dst", ep.ip) for ep in eps),
        )

    def ip_set(self, field_name: str, addresses: Iterable[IPv4Address]) -> BDD:
        """``field`` is one of ``addresses``."""
        key = frozenset(addresses)
        return self._memo(field_name, key, lambda: self.hs.union(self.ip(field_name, a) for a in sorted(key)))

    def ip6_set(self, field_name: str, addresses: Iterable[IPv6Address]) -> BDD:
        """``field`` (``ipv6_src``/``ipv6_dst``) is one of ``addresses``."""
        key = frozenset(addresses)
        return self._memo(
            field_name, key, lambda: self.hs.union(self.hs.oeq(field_name, int(a)) for a in sorted(key))
        )

    def _memo(self, kind: str, key: frozenset[object], build: object) -> BDD:
        cached = self._sets.get((kind, key))
        if cached is None:
            assert callable(build)
            cached = self._sets[(kind, key)] = build()
        return cached
