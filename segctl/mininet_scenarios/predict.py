"""The verifier's prediction of each probe, computed from the *live* flow tables.

Each probe is two concrete packets run through the dumped tables with the verifier's
packet simulator (:mod:`segctl.verifier.simulate`, independent of the compiler): the
request from the source's edge port (conntrack state ``+trk+new``) must be delivered to
the destination, and the reply from the destination's edge port (``+trk+est`` when the
request was committed, ``+trk+new`` otherwise) must be delivered back to the source.
The destination MAC is the first-hop rule of the intent
(:func:`~segctl.topology.network.first_hop_mac`): the peer's MAC inside a segment, the
source tenant's gateway MAC otherwise (ARP itself is not simulated here). That is what
the hosts' kernels send: "on-link" for a kernel is its own subnet, which inside a tenant
is exactly its segment, and across tenants (overlapping address plans) no host can learn a
peer's MAC, because ARP is answered only inside the segment.

Replies of a shared service whose consumers in several tenants share the client's
address walk several conntrack zones; the simulator takes one state per ``ct()`` call,
so those probes are reported as *not predicted* (never counted as agreeing).

A probe to or from the outside (external networks) enters or leaves at the uplink: the
request from the endpoint goes to its tenant's gateway MAC and must leave the uplink; its
reply comes in from the upstream router's MAC to the external network's MAC, addressed to
the source the request left with, and must reach the endpoint (the simulator is told
which connection it answers, ``nat_original``: tenants share one SNAT address). From the
outside, the request goes to the endpoint's public address, the reply back to the uplink.

When the simulator is not importable, :func:`load_predictor` returns ``None`` with the
reason, and the run reports the predicted matrix as unavailable (never as agreeing).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Mapping, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from segctl.mininet_scenarios.network import is_outside
from segctl.mininet_scenarios.probes import ECHO6_REQUEST, ECHO_REQUEST, IPV6_PROBES, Probe, outside_address
from segctl.openflow.ofctl import Flow, mac_int
from segctl.openflow.ofmatch import IP_PROTO_ICMPV6
from segctl.topology.analysis import ICMP_REPLY_TYPES, ICMPV6_REPLY_TYPES
from segctl.topology.network import EndpointInfo, ExternalInfo, Network, first_hop_mac
from segctl.topology.outside import public_source, public_source6

__all__ = ["Predictor", "load_predictor", "probe_fields"]

Predictor = Callable[[Probe], "bool | None"]
_PROTO = {"icmp": 1, "tcp": 6, "udp": 17, "icmp6": IP_PROTO_ICMPV6, "tcp6": 6, "udp6": 17}
_SRC_PORT = 40000
_CT_RPL = 0x08  # conntrack "reply direction" bit (ct_state=+rpl)


def _zone_ambiguous_reply(network: Network, src: EndpointInfo, dst: EndpointInfo) -> bool:
    """Does the reply ``dst -> src`` try several conntrack zones (consumers of ``dst`` in
    other tenants share ``src``'s address)? The simulator takes one state per ``ct()``
    call, not per zone, so such replies are not predicted (reported as such)."""
    if src.tenant == dst.tenant:
        return False
    for svc in network.shared_services:
        if dst in network.shared_providers(svc):
            others = [c for c in network.shared_consumers(svc) if c.ip == src.ip and c.tenant != src.tenant]
            if others:
                return True
    return False


def probe_fields(
    network: Network, src: EndpointInfo, dst: EndpointInfo, probe: Probe, *, reply: bool
) -> dict[str, Any]:
    """The packet fields of ``probe``'s request (``src`` to ``dst``) or of its reply: the
    addresses the hosts use, with ``eth_dst`` from the intent's first-hop rule."""
    a, b = (dst, src) if reply else (src, dst)
    proto = _PROTO[probe.proto]
    fields: dict[str, Any] = {
        "in_port": a.port,
        "eth_src": mac_int(a.mac),
        "eth_dst": mac_int(first_hop_mac(network, a, b)),
        "ip_proto": proto,
        "nw_ttl": 64,
    }
    if probe.proto in IPV6_PROBES:
        fields.update(
            eth_type=0x86DD, ipv6_src=int(IPv6Address(str(a.ipv6))), ipv6_dst=int(IPv6Address(str(b.ipv6)))
        )
    else:
        fields.update(eth_type=0x0800, ip_src=int(IPv4Address(a.ip)), ip_dst=int(IPv4Address(b.ip)))
    if probe.proto == "icmp":
        fields["icmp_type"] = ICMP_REPLY_TYPES[ECHO_REQUEST] if reply else ECHO_REQUEST
    elif probe.proto == "icmp6":
        fields["icmp_type"] = ICMPV6_REPLY_TYPES[ECHO6_REQUEST] if reply else ECHO6_REQUEST
    else:
        sport, dport = _SRC_PORT, probe.port or 0
        fields.update(tp_src=dport if reply else sport, tp_dst=sport if reply else dport)
    return fields


def _outside_fields(
    network: Network, ep: EndpointInfo, ext: ExternalInfo, server: int, public: int, probe: Probe,
    *, inbound: bool,
) -> dict[str, Any]:  # fmt: skip
    """A packet between ``ep`` and the outside server: ``inbound`` from the uplink (the
    router's MAC to the external network's, addressed to ``public``), else from ``ep`` to its
    gateway MAC."""
    proto = _PROTO[probe.proto]
    v6 = probe.proto in IPV6_PROBES
    fields: dict[str, Any] = {"ip_proto": proto, "nw_ttl": 64, "eth_type": 0x86DD if v6 else 0x0800}
    src, dst = ("ipv6_src", "ipv6_dst") if v6 else ("ip_src", "ip_dst")
    if inbound:
        fields.update(in_port=ext.port, eth_src=mac_int(ext.router_mac), eth_dst=mac_int(ext.mac),
                      **{src: server, dst: public})  # fmt: skip
    else:
        gateway = network.tenant(ep.tenant).gateway_mac
        own = int(IPv6Address(str(ep.ipv6))) if v6 else int(IPv4Address(ep.ip))
        fields.update(in_port=ep.port, eth_src=mac_int(ep.mac), eth_dst=mac_int(gateway),
                      **{src: own, dst: server})  # fmt: skip
    # the request goes toward the outside when it is outbound from the endpoint
    request = (not inbound) == (probe.src == ep.key)
    if probe.proto == "icmp":
        fields["icmp_type"] = ECHO_REQUEST if request else ICMP_REPLY_TYPES[ECHO_REQUEST]
    elif probe.proto == "icmp6":
        fields["icmp_type"] = ECHO6_REQUEST if request else ICMPV6_REPLY_TYPES[ECHO6_REQUEST]
    else:
        sport, dport = _SRC_PORT, probe.port or 0
        fields.update(tp_src=sport if request else dport, tp_dst=dport if request else sport)
    return fields


def load_predictor(
    network: Network,
    tables: Mapping[str, Sequence[Flow]],
    *,
    down: Collection[tuple[str, int, str, int]] = (),
) -> tuple[Predictor | None, str]:
    """A predictor over ``tables`` (switch name -> flows), or ``(None, reason)``.

    ``down`` lists fabric links (as in ``network.links``) that are down: not traversed.
    """
    try:
        sim: Any = importlib.import_module("segctl.verifier.simulate")
    except ImportError as exc:
        return None, f"the verifier's packet simulator is not available: {exc}"
    links: dict[tuple[str, int], tuple[str, int]] = {}
    for a, ap, b, bp in network.links:
        if (a, ap, b, bp) in down:
            continue
        links[(a, ap)] = (b, bp)
        links[(b, bp)] = (a, ap)
    edges = {(ep.switch, ep.port): ep.qualified for ep in network.endpoints}
    edges.update({(ext.switch, ext.port): ext.qualified for ext in network.externals})

    def send(ep: EndpointInfo, packet: Any, ct_default: int) -> tuple[bool, bool, str]:
        results = sim.simulate(tables, links, edges, ep.switch, packet, ct_default=ct_default)
        delivered = {r.endpoint for r in results if r.kind == "delivered"}
        committed = any(r.commits for r in results)
        return bool(delivered), committed, ",".join(sorted(e for e in delivered if e))

    def outside(probe: Probe) -> bool:
        outbound = is_outside(probe.dst)
        key, ep_key = (probe.dst, probe.src) if outbound else (probe.src, probe.dst)
        ep = network.endpoint(*ep_key)
        ext = network.external(key[0].partition(":")[2])
        v6 = probe.proto in IPV6_PROBES
        server = int(ip_address(outside_address(network, key, v6)))
        address = public_source6(network, ep, ext.name) if v6 else public_source(network, ep, ext.name)
        if address is None:
            return False
        public = int(address)
        new = sim.CT_TRK | sim.CT_NEW
        est = sim.CT_TRK | sim.CT_EST | _CT_RPL

        def go(inbound: bool, state: int, original: int | None, to: int) -> tuple[list[Any], str]:
            fields = _outside_fields(network, ep, ext, server, to, probe, inbound=inbound)
            start = ext.switch if inbound else ep.switch
            results = sim.simulate(tables, links, edges, start, sim.Packet(**fields), ct_default=state,
                                   nat_original=original)  # fmt: skip
            where = {r.endpoint for r in results if r.kind == "delivered" and r.endpoint}
            return results, ",".join(sorted(where))

        first, where = go(not outbound, new, None, public)
        if where != (ext.qualified if outbound else ep.qualified):
            return False
        committed = any(r.commits for r in first)
        # the reply answers the connection: to the source it left with (as translated), or
        # from the endpoint whose floating IP the outside opened
        sent = next(r.packet for r in first if r.kind == "delivered")
        left = sent.ipv6_src if v6 else sent.ip_src
        # the address a translation replaced (IPv6 is not translated: nothing to find)
        original = None if v6 else (int(IPv4Address(ep.ip)) if outbound else public)
        _, back = go(outbound, est if committed else new, original, left if outbound else public)
        return back == (ep.qualified if outbound else ext.qualified)

    def packet(src: EndpointInfo, dst: EndpointInfo, probe: Probe, *, reply: bool) -> Any:
        return sim.Packet(**probe_fields(network, src, dst, probe, reply=reply))

    def predict(probe: Probe) -> bool | None:
        if is_outside(probe.src) or is_outside(probe.dst):
            return outside(probe)
        src, dst = network.endpoint(*probe.src), network.endpoint(*probe.dst)
        if _zone_ambiguous_reply(network, src, dst):
            return None
        new = sim.CT_TRK | sim.CT_NEW
        est = sim.CT_TRK | sim.CT_EST | _CT_RPL
        ok, committed, where = send(src, packet(src, dst, probe, reply=False), new)
        if not ok or where != dst.qualified:
            return False
        back, _, where_back = send(dst, packet(src, dst, probe, reply=True), est if committed else new)
        return back and where_back == src.qualified

    return predict, ""
