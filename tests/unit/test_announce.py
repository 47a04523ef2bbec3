"""The gratuitous ARP an uplink move sends (segctl.flows.announce): its bytes, and the
public address it names."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from segctl.flows.announce import ARP_FRAME_LEN, announce_address, gratuitous_arp
from segctl.topology.network import load_network

ROOT = Path(__file__).resolve().parents[2]
INTERNET = ROOT / "examples" / "internet.yaml"


def test_the_frame_is_a_broadcast_arp_request_for_its_own_address() -> None:
    frame = gratuitous_arp("02:5E:ff:0:0:1", IPv4Address("198.51.100.10"))
    mac, ip = bytes.fromhex("025eff000001"), bytes([198, 51, 100, 10])
    assert len(frame) == ARP_FRAME_LEN == 60
    assert frame[0:6] == b"\xff" * 6 and frame[6:12] == mac and frame[12:14] == b"\x08\x06"
    assert frame[14:22] == bytes.fromhex("0001 0800 06 04 0001")  # Ethernet, IPv4, 6, 4, request
    assert frame[22:28] == mac and frame[28:32] == ip  # sender: the fabric
    assert frame[32:38] == bytes(6) and frame[38:42] == ip  # target: the same address
    assert frame[42:] == bytes(18)  # padding


def test_the_frame_parses_as_a_gratuitous_arp() -> None:
    scapy = pytest.importorskip("scapy.layers.l2")
    packet = scapy.Ether(gratuitous_arp("02:5e:ff:00:00:01", IPv4Address("203.0.113.7")))
    arp = packet[scapy.ARP]
    assert (packet.dst, packet.src) == ("ff:ff:ff:ff:ff:ff", "02:5e:ff:00:00:01")
    assert (arp.op, arp.hwsrc, arp.psrc, arp.pdst) == (1, "02:5e:ff:00:00:01", "203.0.113.7", "203.0.113.7")


def test_a_bad_mac_is_refused() -> None:
    with pytest.raises(ValueError):
        gratuitous_arp("not-a-mac", IPv4Address("198.51.100.10"))


def test_the_address_is_the_first_snat_address_else_the_first_floating_ip() -> None:
    net = load_network(INTERNET)
    ext = net.external("internet")
    assert announce_address(net, ext) == IPv4Address("198.51.100.10")  # acme's SNAT address
    no_snat = dataclasses.replace(net, tenants=tuple(dataclasses.replace(t, snat=()) for t in net.tenants))
    assert announce_address(no_snat, ext) == IPv4Address("198.51.100.20")  # web1's floating IP
    endpoints = tuple(dataclasses.replace(e, floating_ip=None, floating_external=None) for e in net.endpoints)
    assert announce_address(dataclasses.replace(no_snat, endpoints=endpoints), ext) is None
    other = dataclasses.replace(ext, name="elsewhere")  # the addresses of another external network
    assert announce_address(net, other) is None
