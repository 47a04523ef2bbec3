"""``segctl trace``'s other column: what the intent says of one packet, and why.

IPv4 packets are judged by their grants (under ordered rules, the rule that decides them);
IPv6 by the IPv6 rule of docs/intent.md (inside a non-strict segment, never a router-only
ICMPv6 message, no conntrack).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from segctl.cli.trace import Address, Service
    from segctl.topology.analysis import Grant
    from segctl.topology.network import EndpointInfo, Network

__all__ = ["Verdict", "verdict"]


@dataclass(frozen=True)
class Verdict:
    """The intent's answer for one packet: does it pass, why, and whom it must reach."""

    allowed: bool
    text: str
    grants: tuple[Grant, ...]


def verdict(network: Network, src: EndpointInfo, dst: EndpointInfo | None, addr: Address,
             svc: Service, *, reply: bool) -> Verdict:  # fmt: skip
    from segctl.topology.analysis import allowed_grants

    if dst is None:
        return Verdict(False, f"denied: no endpoint has the address {addr}", ())
    if svc.ipv6:
        sender, receiver = (dst, src) if reply else (src, dst)
        return _verdict6(network, sender, receiver, svc, reply=reply)
    grants = allowed_grants(
        network, src, dst, svc.proto, svc.dport, icmp_type=svc.icmp_type, icmp_code=svc.icmp_code
    )
    named = "; ".join(f"{g.kind} {g.name}" + _tier(network, g) for g in grants)
    if not reply:
        if grants:
            return Verdict(True, f"allowed by {named}", grants)
        why = _denial(network, src, dst, svc) or (
            f"no grant from {src.qualified} to {dst.qualified} allows {svc.describe()}"
        )
        return Verdict(False, f"denied by the intent ({why})", ())
    stateful = tuple(g for g in grants if g.stateful)
    if stateful:
        names = "; ".join(f"{g.kind} {g.name}" for g in stateful)
        return Verdict(True, f"allowed reply of a connection allowed by {names} (stateful)", stateful)
    # The reply as a new connection of its own (dst -> src, to the request's source port).
    answer = svc.reply_icmp_type()
    back = allowed_grants(network, dst, src, svc.proto, svc.sport, icmp_type=answer)
    if back:
        names = "; ".join(f"{g.kind} {g.name}" for g in back)
        return Verdict(
            True, f"allowed as a new connection {dst.qualified} -> {src.qualified} by {names}", back
        )
    if grants:
        return Verdict(False, f"denied: the connection is allowed by {named}, but stateless: no replies", ())
    return Verdict(
        False, f"denied: the intent allows no such connection from {src.qualified} to {dst.qualified}, "
        "so it has no reply", (),
    )  # fmt: skip


def _verdict6(
    network: Network, sender: EndpointInfo, receiver: EndpointInfo, svc: Service, *, reply: bool
) -> Verdict:
    """The intent on one IPv6 packet: inside a non-strict segment between two endpoints with
    ipv6, never a router-only ICMPv6 message (no conntrack: a reply is judged as a packet)."""
    from segctl.topology.analysis import ROUTER_ONLY_ICMPV6, ipv6_allowed

    icmp_type = svc.reply_icmp_type() if reply else svc.icmp_type
    if svc.proto == "icmp6" and icmp_type is not None and icmp_type in ROUTER_ONLY_ICMPV6:
        what = ROUTER_ONLY_ICMPV6[icmp_type]
        return Verdict(False, f"denied: a {what} (ICMPv6 {icmp_type}) comes only from routers (RA guard)", ())
    segment = network.segment(sender.tenant, sender.segment)
    if ipv6_allowed(network, sender, receiver):
        how = "reply " if reply else ""
        where = f"{sender.tenant}/{segment.name}"
        return Verdict(True, f"allowed {how}IPv6 inside segment {where} (not strict, both declare ipv6)", ())
    if sender.key == receiver.key:
        why = "to itself"
    elif (sender.tenant, sender.segment) != (receiver.tenant, receiver.segment):
        why = "IPv6 goes only inside one segment (it is neither routed nor shared)"
    elif segment.strict:
        why = f"segment {sender.tenant}/{segment.name} is strict, and policies are IPv4 only"
    else:
        missing = receiver if sender.ipv6 is not None else sender
        why = f"{missing.qualified} declares no ipv6"
    return Verdict(False, f"denied by the intent ({why})", ())


def _tier(network: Network, grant: Grant) -> str:
    """`` (guardrail tier)``/`` (tenant tier)`` under ordered rules, else nothing."""
    from segctl.topology.ordered import is_ordered

    if not is_ordered(network):
        return ""
    return " (guardrail tier)" if grant.kind == "guardrail" else " (tenant tier)"


def _denial(network: Network, src: EndpointInfo, dst: EndpointInfo, svc: Service) -> str:
    """Under ordered rules, the rule that denies a new packet (or the default deny); "" otherwise."""
    from segctl.topology.ordered import is_ordered, packet_decision, packet_space

    if not is_ordered(network):
        return ""
    space = packet_space(svc.proto, svc.dport, svc.icmp_type, svc.icmp_code)
    decision = packet_decision(network, src, dst, space)
    return f"{svc.describe()} from {src.qualified} to {dst.qualified}: {decision}"
