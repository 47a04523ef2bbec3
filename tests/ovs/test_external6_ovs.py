"""External networks over IPv6 with real packets: ``examples/dual-stack.yaml`` compiled onto
netdev bridges, the upstream router's host behind the uplink with its IPv6 address on the
link, an outside server address (2001:db8:5::5) and an on-link route to acme/db's prefix
(the fabric answers its solicitations for the endpoints it routes). db2 opens TCP 443 to the
outside from its own global address, untranslated; no other port or endpoint gets out over
IPv6; the outside may ping db1 and nothing else over IPv6, and its solicitations for other
addresses go unanswered."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from ipaddress import IPv6Address
from pathlib import Path

import pytest
from support.compiled_lab import CompiledLab, compiled_lab

from segctl.testbed import probes
from segctl.testbed.netns import add_address, add_route
from segctl.topology.network import load_network

pytestmark = pytest.mark.ovs

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dual-stack.yaml"
SERVER6 = "2001:db8:5::5"  # an outside server, on the router's host


@pytest.fixture(scope="module")
def fabric(ovs_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CompiledLab]:
    net = load_network(EXAMPLE)
    ext = net.external("internet")
    assert ext.router_ip6 is not None and ext.cidr6 is not None
    with compiled_lab(net, tmp_path_factory.mktemp("internet6")) as lab:
        x1, ifname = lab.outside(), lab.lab.host_ifname
        add_address(x1, ifname, str(ext.router_ip6), ext.cidr6.prefixlen)
        add_address(x1, ifname, SERVER6, 128)
        add_route(x1, str(net.segment("acme", "db").cidr6), ifname)  # acme/db is behind the uplink
        yield lab


def _sources6(frames: list[bytes]) -> set[str]:
    return {
        str(IPv6Address(f[22:38]))
        for f in frames
        if len(f) >= 54 and struct.unpack("!H", f[12:14])[0] == 0x86DD
    }


def test_db2_leaves_over_ipv6_from_its_own_address(fabric: CompiledLab) -> None:
    capture = [(fabric.outside(), fabric.lab.host_ifname, "ip6 and tcp and dst port 443")]
    with probes.sniffing(capture, settle=0.5) as frames:
        ok = probes.tcp_connect(fabric.ns(("acme", "db2")), SERVER6, 443, listen_ns=fabric.outside())
    assert ok, "acme/db2 -> [2001:db8:5::5]:443 over IPv6"
    assert _sources6(frames[0]) == {"fd00:1:2::12"}, "untranslated: its own global address"


@pytest.mark.parametrize(
    ("name", "port"), [("db2", 80), ("db1", 443), ("web1", 443)], ids=["db2-port-80", "db1", "web1"]
)
def test_ipv6_egress_not_granted_stays_in(fabric: CompiledLab, name: str, port: int) -> None:
    assert not probes.tcp_connect(fabric.ns(("acme", name)), SERVER6, port, listen_ns=fabric.outside())


def test_the_outside_may_ping_db1_over_ipv6_and_nothing_else(fabric: CompiledLab) -> None:
    assert probes.ping(fabric.outside(), "fd00:1:2::11", count=2)
    assert not probes.ping(fabric.outside(), "fd00:1:2::12", count=1)  # db2: egress only
    assert not probes.tcp_connect(
        fabric.outside(), "fd00:1:2::11", 5432, listen_ns=fabric.ns(("acme", "db1"))
    )


def test_ipv4_egress_still_leaves_behind_snat(fabric: CompiledLab) -> None:
    from segctl.testbed.netns import add_address as add4

    add4(fabric.outside(), fabric.lab.host_ifname, "203.0.113.5", 32)
    assert probes.tcp_connect(fabric.ns(("acme", "web1")), "203.0.113.5", 443, listen_ns=fabric.outside())
