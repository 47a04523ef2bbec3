"""External networks with real packets: ``examples/internet.yaml`` compiled onto netdev
bridges, an "internet" host behind the uplink (the router's MAC and IP, plus an outside
server address). Egress leaves through SNAT (the outside sees each tenant's SNAT address,
two tenants with the same private addresses both get out), the floating IP is reachable
from the outside on the granted ports only, and nothing else gets in or out."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from support.compiled_lab import CompiledLab, compiled_lab

from segctl.testbed import probes
from segctl.testbed.netns import add_address
from segctl.topology.network import load_network

pytestmark = pytest.mark.ovs

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "internet.yaml"
SERVER = "203.0.113.5"  # an outside server, on the internet host


@pytest.fixture(scope="module")
def fabric(ovs_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CompiledLab]:
    with compiled_lab(load_network(EXAMPLE), tmp_path_factory.mktemp("internet")) as lab:
        add_address(lab.outside(), lab.lab.host_ifname, SERVER, 32)
        yield lab


def _sources(frames: list[bytes]) -> set[str]:
    return {
        str(IPv4Address(struct.unpack("!I", f[26:30])[0]))
        for f in frames
        if len(f) >= 34 and f[12:14] == b"\x08\x00"
    }


def _tcp_seen(f: CompiledLab, tenant: str, name: str, port: int) -> tuple[bool, set[str]]:
    """Connect from an endpoint to the outside server; (echoed, sources the server saw)."""
    capture = [(f.outside(), f.lab.host_ifname, f"tcp and dst port {port}")]
    with probes.sniffing(capture, settle=0.5) as frames:
        ok = probes.tcp_connect(f.ns((tenant, name)), SERVER, port, listen_ns=f.outside())
    return ok, _sources(frames[0])


@pytest.mark.parametrize(
    ("tenant", "name", "port", "source"),
    [
        ("acme", "app1", 443, "198.51.100.10"),  # through the fabric to the uplink's switch
        ("acme", "app2", 443, "198.51.100.10"),  # on the uplink's switch
        ("globex", "gweb1", 80, "198.51.100.11"),  # 10.0.1.10, like acme/web1: its own SNAT
    ],
)
def test_egress_leaves_with_the_tenant_snat_address(
    fabric: CompiledLab, tenant: str, name: str, port: int, source: str
) -> None:
    ok, seen = _tcp_seen(fabric, tenant, name, port)
    assert ok, f"{tenant}/{name} -> {SERVER}:{port} through SNAT"
    assert seen == {source}, f"the outside saw {seen}"


@pytest.mark.parametrize(
    ("tenant", "name", "port"),
    [("acme", "app1", 80), ("globex", "gweb1", 443), ("acme", "web1", 443)],
)
def test_egress_not_granted_is_dropped(fabric: CompiledLab, tenant: str, name: str, port: int) -> None:
    ok, seen = _tcp_seen(fabric, tenant, name, port)
    assert not ok and not seen, f"{tenant}/{name} -> {SERVER}:{port} must not leave ({seen})"


def test_ping_out_is_granted(fabric: CompiledLab) -> None:
    assert probes.ping(fabric.ns(("acme", "app1")), SERVER, count=2)
    assert not probes.ping(fabric.ns(("globex", "gweb2")), SERVER, count=1)


def test_floating_ip_ingress_on_granted_ports_only(fabric: CompiledLab) -> None:
    web1 = fabric.ns(("acme", "web1"))
    for port in (80, 443):
        assert probes.tcp_connect(fabric.outside(), "198.51.100.20", port, listen_ns=web1), port
    assert not probes.tcp_connect(fabric.outside(), "198.51.100.20", 22, listen_ns=web1)


def test_nothing_else_gets_in(fabric: CompiledLab) -> None:
    app2 = fabric.ns(("acme", "app2"))
    assert not probes.tcp_connect(fabric.outside(), "198.51.100.10", 443, listen_ns=app2)  # an SNAT address
    assert not probes.tcp_connect(fabric.outside(), "10.0.2.11", 443, listen_ns=app2)  # a private one
    assert not probes.ping(fabric.outside(), "198.51.100.20", count=1)  # the floating IP, ICMP not granted
