"""What the attacker forges, chosen from the intent alone (pure, no Mininet).

Every forged value differs from the attacker's own binding (MAC, IPv4): tenants may
reuse MACs and addresses, so "another endpoint's MAC" can equal the attacker's own, and
a frame carrying it is not forged at all (the switch rightly delivers it). No forged ARP
pairs a MAC with an address the way a real endpoint does either: with overlapping
addresses, a forged request "MAC of globex/gweb1, address of acme/web1" is byte for byte
the request gweb1 itself sends when its neighbour entry expires, so its capture would
say nothing about the attack. Frames aimed
at another tenant go to an endpoint whose MAC and address the attacker's tenant does not
also use, so nothing in the attacker's own tenant may legitimately receive them. The
control frame, which proves the captures work, is one the intent allows.

>>> from segctl.topology.network import load_network  # doctest: +SKIP
>>> plan = plan_attack(load_network("examples/two-tenants.yaml"))  # doctest: +SKIP
>>> plan.forged_mac != plan.attacker.mac  # doctest: +SKIP
True
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from segctl.topology.analysis import ICMP_REPLY_TYPES, ServiceMatch, pair_grants
from segctl.topology.network import EndpointInfo, Network

__all__ = ["AttackPlan", "Control", "plan_attack"]

#: Source addresses tried for the forged-IP frame, first one not bound to the attacker.
_FORGED_IPS = ("10.250.250.250", "198.51.100.250", "203.0.113.250")


@dataclass(frozen=True)
class Control:
    """An allowed packet from the attacker: if it is not captured, the captures prove nothing."""

    receiver: EndpointInfo
    eth_dst: str
    proto: str  # udp, tcp or icmp
    port: int | None
    icmp_type: int = 8  # icmp: an echo request unless the grant names another query type
    icmp_code: int = 0


@dataclass(frozen=True)
class AttackPlan:
    """The attacker and every value it forges; ``skipped`` says which attacks cannot apply."""

    attacker: EndpointInfo
    target: EndpointInfo  # receives the forged-source frames: a same-segment peer if any
    victim: EndpointInfo  # another tenant's endpoint if any (tagged frames, cross-tenant targets)
    foreign: bool  # the victim is in another tenant
    forged_mac: str
    forged_ip: str
    claimed_ip: str  # the address a forged ARP reply claims
    foreign_sha: str  # the sender MAC a forged ARP request claims
    victim_gateway_mac: str
    control: Control | None
    skipped: tuple[tuple[str, str], ...] = ()


def _control(network: Network, me: EndpointInfo) -> Control | None:
    """The first packet the intent lets ``me`` send (same segment first), on a service it names."""
    others = [ep for ep in network.endpoints if ep.key != me.key]
    others.sort(key=lambda ep: (ep.tenant, ep.segment) != (me.tenant, me.segment))
    for ep in others:
        for grant in pair_grants(network, me, ep):
            for svc in grant.services:
                if svc.proto == "other":
                    continue  # what ordered rules leave of "any": no packet of ours to send
                if svc.icmp_type is not None and svc.icmp_type not in ICMP_REPLY_TYPES:
                    continue  # not a query: conntrack calls it invalid as a first packet
                local = (ep.tenant, ep.segment) == (me.tenant, me.segment)
                eth_dst = ep.mac if local else network.tenant(me.tenant).gateway_mac
                return Control(ep, eth_dst, *_control_service(svc))
    return None


def _control_service(svc: ServiceMatch) -> tuple[str, int | None, int, int]:
    """(proto, port, icmp type, icmp code) of a control packet on ``svc``."""
    if svc.proto == "any":
        return "udp", 9, 8, 0
    if svc.proto == "icmp":
        return "icmp", None, 8 if svc.icmp_type is None else svc.icmp_type, svc.icmp_code or 0
    return svc.proto, svc.ports[0][0] if svc.ports else 9, 8, 0


def _victim(network: Network, me: EndpointInfo) -> tuple[EndpointInfo, bool]:
    """Another tenant's endpoint nobody in ``me``'s tenant shares a MAC or address with, if any."""
    mine = network.tenant_endpoints(me.tenant)
    macs, ips = {ep.mac for ep in mine}, {ep.ip for ep in mine}
    foreign = [ep for ep in network.endpoints if ep.tenant != me.tenant]
    ranked = sorted(foreign, key=lambda ep: (ep.mac in macs, ep.ip in ips))  # stable: document order
    if ranked:
        return ranked[0], True
    return next(ep for ep in network.endpoints if ep.key != me.key), False


def _free_mac(taken: set[str]) -> str:
    for n in range(1, 256):
        mac = f"02:de:ad:00:00:{n:02x}"
        if mac not in taken:
            return mac
    raise ValueError("no free MAC to forge")  # unreachable: an intent binds far fewer than 255


def plan_attack(network: Network) -> AttackPlan:
    """The attack on ``network``: the first endpoint with an allowed control packet attacks."""
    if len(network.endpoints) < 2:
        raise ValueError("the attacker scenario needs at least two endpoints")
    me = next((ep for ep in network.endpoints if _control(network, ep)), network.endpoints[0])
    others = [ep for ep in network.endpoints if ep.key != me.key]
    peer = next((ep for ep in others if (ep.tenant, ep.segment) == (me.tenant, me.segment)), None)
    victim, foreign = _victim(network, me)
    target = peer or victim
    # A MAC another endpoint really has (another tenant's first), never the attacker's own.
    macs = [ep.mac for ep in sorted(others, key=lambda ep: ep.tenant == me.tenant) if ep.mac != me.mac]
    forged_mac = macs[0] if macs else _free_mac({ep.mac for ep in network.endpoints})
    forged_ip = next(ip for ip in _FORGED_IPS if IPv4Address(ip) != me.ip)
    bindings = {(ep.mac, ep.ip) for ep in network.endpoints}
    claims = [str(ep.ip) for ep in (target, *others) if ep.ip != me.ip and (me.mac, ep.ip) not in bindings]
    foreign_macs = [
        ep.mac
        for ep in others
        if ep.tenant != me.tenant and ep.mac != me.mac and (ep.mac, me.ip) not in bindings
    ]
    if not foreign_macs and (forged_mac, me.ip) in bindings:
        forged_mac_for_arp = _free_mac({ep.mac for ep in network.endpoints})
    else:
        forged_mac_for_arp = forged_mac
    skipped: list[tuple[str, str]] = []
    own_gw = network.tenant(me.tenant).gateway_mac
    victim_gw = network.tenant(victim.tenant).gateway_mac
    if not foreign:
        why = f"the intent has no tenant besides {me.tenant}"
        skipped += [("to another tenant's gateway MAC", why), ("to another tenant's endpoint MAC", why)]
    else:
        if victim_gw == own_gw:
            skipped.append(
                ("to another tenant's gateway MAC", f"{victim.tenant} shares {me.tenant}'s gateway MAC")
            )
        mine = network.tenant_endpoints(me.tenant)
        if any(ep.mac == victim.mac for ep in mine) and any(ep.ip == victim.ip for ep in mine):
            skipped.append(
                (
                    "to another tenant's endpoint MAC",
                    f"every endpoint of another tenant shares a MAC and an address with {me.tenant}",
                )
            )
    return AttackPlan(
        attacker=me,
        target=target,
        victim=victim,
        foreign=foreign,
        forged_mac=forged_mac,
        forged_ip=forged_ip,
        claimed_ip=claims[0] if claims else forged_ip,
        foreign_sha=foreign_macs[0] if foreign_macs else forged_mac_for_arp,
        victim_gateway_mac=victim_gw,
        control=_control(network, me),
        skipped=tuple(skipped),
    )
