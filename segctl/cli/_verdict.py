"""``segctl trace``'s other column: what the intent says of one packet, and why.

A packet is judged by its grants (under ordered rules, the rule that decides them); IPv6
first by where IPv6 goes at all (docs/intent.md: inside one segment, between endpoints that
both declare ipv6; neighbour discovery always, never a router-only ICMPv6 message).
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
    #: Where an allowed packet must arrive when it is not an endpoint (``external:NAME``).
    receiver: str | None = None


def verdict(network: Network, src: EndpointInfo, dst: EndpointInfo | None, addr: Address,
             svc: Service, *, reply: bool) -> Verdict:  # fmt: skip
    from segctl.topology.analysis import allowed_grants

    if dst is None:
        outside = _outside(network, src, addr, svc) if not reply else None
        return outside or Verdict(False, f"denied: no endpoint has the address {addr}", ())
    family = 6 if svc.ipv6 else 4
    if svc.ipv6:
        sender, receiver = (dst, src) if reply else (src, dst)
        first = _ipv6_rule(network, sender, receiver, svc, reply=reply)
        if first is not None:
            return first
    grants = allowed_grants(
        network,
        src,
        dst,
        svc.proto,
        svc.dport,
        icmp_type=svc.icmp_type,
        icmp_code=svc.icmp_code,
        family=family,
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
    back = allowed_grants(network, dst, src, svc.proto, svc.sport, icmp_type=answer, family=family)
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


def _outside(network: Network, src: EndpointInfo, addr: Address, svc: Service) -> Verdict | None:
    """The verdict of the first policy of ``src``'s tenant toward an external network (in
    the tenant tier's order) whose peer holds ``addr`` and whose services take the packet."""
    from segctl.topology.outside import external_decision, public_source, public_source6

    g = external_decision(network, src, "out", addr, svc.proto, svc.dport,
                          icmp_type=svc.icmp_type, icmp_code=svc.icmp_code)  # fmt: skip
    if g is None:
        return None
    if not g.allow:
        return Verdict(False, f"denied by the intent ({g.name}, deny, toward external {g.external})", ())
    public = (
        public_source6(network, src, g.external)
        if addr.version == 6
        else public_source(network, src, g.external)
    )
    text = f"allowed by {g.name} toward external {g.external}, leaving with source {public}"
    return Verdict(True, text, (), receiver=f"external:{g.external}")


def _ipv6_rule(
    network: Network, sender: EndpointInfo, receiver: EndpointInfo, svc: Service, *, reply: bool
) -> Verdict | None:
    """What decides an IPv6 packet before its grants: the RA guard, neighbour discovery
    (allowed inside a segment), and where IPv6 goes at all; None when the grants decide."""
    from segctl.topology.analysis import NEIGHBOUR_DISCOVERY, ROUTER_ONLY_ICMPV6, ipv6_applies

    icmp_type = svc.reply_icmp_type() if reply else svc.icmp_type
    if svc.proto == "icmp6" and icmp_type is not None and icmp_type in ROUTER_ONLY_ICMPV6:
        what = ROUTER_ONLY_ICMPV6[icmp_type]
        return Verdict(False, f"denied: a {what} (ICMPv6 {icmp_type}) comes only from routers (RA guard)", ())
    if ipv6_applies(sender, receiver):
        if svc.proto == "icmp6" and icmp_type is not None and icmp_type in NEIGHBOUR_DISCOVERY:
            what = NEIGHBOUR_DISCOVERY[icmp_type]
            if (sender.tenant, sender.segment) != (receiver.tenant, receiver.segment):
                why = f"a {what} goes only inside one segment (the gateway answers for gateway6)"
                return Verdict(False, f"denied by the intent ({why})", ())
            where = f"{sender.tenant}/{sender.segment}"
            return Verdict(True, f"allowed: a {what} inside segment {where} (neighbour discovery)", ())
        return None
    if sender.key == receiver.key:
        why = "to itself"
    elif sender.ipv6 is None or receiver.ipv6 is None:
        missing = receiver if sender.ipv6 is not None else sender
        why = f"{missing.qualified} declares no ipv6"
    else:  # two segments (of one tenant or two), one without a gateway6
        lacking = next(ep for ep in (sender, receiver) if ep.ipv6_gateway is None)
        why = (
            f"IPv6 is routed only between segments with a gateway6; segment "
            f"{lacking.tenant}/{lacking.segment} has none"
        )
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
