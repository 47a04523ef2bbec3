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
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from segctl.flows.compiler import compile_network
from segctl.testbed import Lab, ovs, probes
from segctl.testbed import lab as labmod
from segctl.testbed.intent_lab import lab_spec
from segctl.testbed.netns import add_address, add_route
from segctl.topology.network import Network, load_network

pytestmark = pytest.mark.ovs

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dual-stack.yaml"
SERVER6 = "2001:db8:5::5"  # an outside server, on the router's host


@dataclass
class Fabric:
    net: Network
    lab: Lab
    hosts: dict[tuple[str, str], str]

    def ns(self, tenant: str, name: str) -> str:
        return self.lab.namespace(self.hosts[(tenant, name)])

    @property
    def internet(self) -> str:
        return self.lab.namespace("x1")


@pytest.fixture(scope="module")
def fabric(ovs_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fabric]:
    net = load_network(EXAMPLE)
    ext = net.external("internet")
    prefix = labmod.new_prefix()
    hosts = {ep.key: f"h{i}" for i, ep in enumerate(net.endpoints)}
    out = tmp_path_factory.mktemp("internet6")
    try:
        with Lab(lab_spec(net, prefix, host_names=hosts)) as lab:
            for name, prog in compile_network(net).items():
                (out / f"{name}.flows").write_text(prog.flows_text())
                for line in prog.meters_text().splitlines():
                    ovs.add_meter(lab.bridge(name), line)
                ovs.add_flows_bundle(lab.bridge(name), out / f"{name}.flows")
            x1, ifname = lab.namespace("x1"), lab.host_ifname
            assert ext.router_ip6 is not None and ext.cidr6 is not None
            add_address(x1, ifname, str(ext.router_ip6), ext.cidr6.prefixlen)
            add_address(x1, ifname, SERVER6, 128)
            add_route(x1, str(net.segment("acme", "db").cidr6), ifname)  # acme/db is behind the uplink
            yield Fabric(net, lab, hosts)
    finally:
        left = labmod.leftovers(prefix)
        if any(left.values()):
            labmod.cleanup(prefix)
            pytest.fail(f"lab {prefix} left behind {left}")


def _sources6(frames: list[bytes]) -> set[str]:
    return {
        str(IPv6Address(f[22:38]))
        for f in frames
        if len(f) >= 54 and struct.unpack("!H", f[12:14])[0] == 0x86DD
    }


def test_db2_leaves_over_ipv6_from_its_own_address(fabric: Fabric) -> None:
    capture = [(fabric.internet, fabric.lab.host_ifname, "ip6 and tcp and dst port 443")]
    with probes.sniffing(capture, settle=0.5) as frames:
        ok = probes.tcp_connect(fabric.ns("acme", "db2"), SERVER6, 443, listen_ns=fabric.internet)
    assert ok, "acme/db2 -> [2001:db8:5::5]:443 over IPv6"
    assert _sources6(frames[0]) == {"fd00:1:2::12"}, "untranslated: its own global address"


@pytest.mark.parametrize(
    ("name", "port"), [("db2", 80), ("db1", 443), ("web1", 443)], ids=["db2-port-80", "db1", "web1"]
)
def test_ipv6_egress_not_granted_stays_in(fabric: Fabric, name: str, port: int) -> None:
    assert not probes.tcp_connect(fabric.ns("acme", name), SERVER6, port, listen_ns=fabric.internet)


def test_the_outside_may_ping_db1_over_ipv6_and_nothing_else(fabric: Fabric) -> None:
    assert probes.ping(fabric.internet, "fd00:1:2::11", count=2)
    assert not probes.ping(fabric.internet, "fd00:1:2::12", count=1)  # db2: egress only
    assert not probes.tcp_connect(fabric.internet, "fd00:1:2::11", 5432, listen_ns=fabric.ns("acme", "db1"))


def test_ipv4_egress_still_leaves_behind_snat(fabric: Fabric) -> None:
    from segctl.testbed.netns import add_address as add4

    add4(fabric.internet, fabric.lab.host_ifname, "203.0.113.5", 32)
    assert probes.tcp_connect(fabric.ns("acme", "web1"), "203.0.113.5", 443, listen_ns=fabric.internet)
