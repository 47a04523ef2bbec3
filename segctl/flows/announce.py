"""The fabric announcing itself on an uplink: a gratuitous ARP after the active uplink moved.

An upstream L2 switch or router learns the fabric's MAC on an external network (``mac``)
on the port it last heard it from. After a failover, or when the preferred uplink comes
back, it would keep sending inbound traffic (replies, connections the outside opens to a
floating IP) to the old port, now down or standby (no rules: the fabric drops it there),
until the fabric happens to send something out of the new one. The controller sends one
gratuitous ARP from the fabric's MAC out of the new active port right after the new rules
are pushed (as VRRP routers do), so learning moves at once (``docs/controller.md``, "Uplink
failover").

Pure functions: :func:`announce_address` picks the address, :func:`gratuitous_arp` builds
the frame. One IPv4 frame is enough for L2 learning, so an uplink with IPv6 gets no
unsolicited neighbour advertisement: the fabric's MAC, the only thing that moved, is the
same in both families.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from segctl.openflow.ofctl import mac_int
from segctl.topology.network import ExternalInfo, Network

__all__ = ["ARP_FRAME_LEN", "announce_address", "gratuitous_arp"]

#: A gratuitous ARP padded to Ethernet's minimum frame (60 bytes without the FCS).
ARP_FRAME_LEN = 60
_BROADCAST = b"\xff" * 6
_ETH_ARP = b"\x08\x06"
#: ARP header: Ethernet (1), IPv4 (0x0800), 6-byte MACs, 4-byte addresses, request (1).
_ARP_REQUEST = b"\x00\x01\x08\x00\x06\x04\x00\x01"


def announce_address(network: Network, ext: ExternalInfo) -> IPv4Address | None:
    """The public address a gratuitous ARP on ``ext``'s uplink names: one whose ARP the fabric
    answers there (table 46), so the announcement tells the router nothing new but where the
    MAC is. The first tenant's SNAT address on ``ext`` (tenants in document order), else the
    first floating IP on it (endpoints in order); None when the fabric has no public address
    there (nothing can come in, so there is nothing to announce)."""
    for tenant in network.tenants:
        if (snat := tenant.snat_address(ext.name)) is not None:
            return snat
    for ep in network.endpoints:
        if ep.floating_external == ext.name and ep.floating_ip is not None:
            return ep.floating_ip
    return None


def gratuitous_arp(mac: str, ip: IPv4Address) -> bytes:
    """A gratuitous ARP from ``mac`` for ``ip``: an ARP request broadcast from ``mac`` whose
    sender and target address are both ``ip`` (target MAC zero), padded to 60 bytes."""
    sender = mac_int(mac).to_bytes(6, "big")
    address = ip.packed
    arp = _ARP_REQUEST + sender + address + bytes(6) + address
    frame = _BROADCAST + sender + _ETH_ARP + arp
    return frame + bytes(ARP_FRAME_LEN - len(frame))
