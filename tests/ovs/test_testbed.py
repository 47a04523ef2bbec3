"""Integration tests of the host-side test bed against real OVS (userspace datapath)."""

from __future__ import annotations

import re

import pytest
from scapy.layers.l2 import ARP, Ether

from segctl.testbed import lab as labmod
from segctl.testbed import ovs, probes
from segctl.testbed.lab import HostSpec, Lab, LabSpec, LinkSpec, SwitchSpec

pytestmark = pytest.mark.ovs

H1_MAC, H2_MAC = "02:00:00:00:01:01", "02:00:00:00:02:02"


def two_switch_spec(prefix: str) -> LabSpec:
    """h1 -- s1:1 | s1:10 <patch> s2:20 | s2:2 -- h2."""
    return LabSpec(
        prefix=prefix,
        switches=[SwitchSpec("s1", 0x51), SwitchSpec("s2", 0x52)],
        links=[LinkSpec("s1", 10, "s2", 20)],
        hosts=[
            HostSpec("h1", H1_MAC, "10.0.0.1/24", "s1", 1, ipv6="fd00::1/64"),
            HostSpec("h2", H2_MAC, "10.0.0.2/24", "s2", 2, ipv6="fd00::2/64"),
        ],
    )


def forward_flows(lab: Lab) -> None:
    """In-port forwarding both ways (covers ARP, IPv4, IPv6), loaded as bundles."""
    ovs.add_flows(lab.bridge("s1"), ["in_port=1,actions=output:10", "in_port=10,actions=output:1"])
    ovs.add_flows(lab.bridge("s2"), ["in_port=20,actions=output:2", "in_port=2,actions=output:20"])


def test_bridge_settings(lab_prefix: str) -> None:
    with Lab(two_switch_spec(lab_prefix)) as lab:
        br = lab.bridge("s1")
        assert ovs.run(["ovs-vsctl", "get", "bridge", br, "datapath_type"]).strip() == "netdev"
        assert ovs.run(["ovs-vsctl", "get", "bridge", br, "fail_mode"]).strip() == "secure"
        assert "0000000000000051" in ovs.run(["ovs-ofctl", "-O", "OpenFlow13", "show", br])
        assert ovs.get_ofport(lab.patch_port("s1", 10)) == 10
        assert ovs.get_ofport(lab.host_port("h2")) == 2
        assert ovs.dump_flows(br).strip() == ""


def test_forwarding_ping_tcp_udp(lab_prefix: str) -> None:
    with Lab(two_switch_spec(lab_prefix)) as lab:
        h1, h2 = lab.namespace("h1"), lab.namespace("h2")
        forward_flows(lab)
        assert "in_port=1 actions=output:10" in ovs.dump_flows(lab.bridge("s1"))
        assert probes.ping(h1, "10.0.0.2", count=2, timeout=2)
        assert probes.ping(h2, "fd00::1", count=2, timeout=2)
        assert probes.tcp_connect(h1, "10.0.0.2", 8080, listen_ns=h2)
        assert probes.udp_exchange(h2, "10.0.0.1", 5353, listen_ns=h1)
        assert probes.tcp_connect(h1, "fd00::2", 8081, listen_ns=h2)


def test_fail_secure_without_flows_drops(lab_prefix: str) -> None:
    with Lab(two_switch_spec(lab_prefix)) as lab:
        h1 = lab.namespace("h1")
        h2 = lab.namespace("h2")
        assert not probes.ping(h1, "10.0.0.2", count=1, timeout=1)
        assert not probes.tcp_connect(h1, "10.0.0.2", 8080, listen_ns=h2, timeout=1)
        assert not probes.udp_exchange(h1, "10.0.0.2", 5353, listen_ns=h2, timeout=1)


def test_lab_cleans_up_on_exception(lab_prefix: str) -> None:
    with pytest.raises(RuntimeError, match="boom"), Lab(two_switch_spec(lab_prefix)):
        assert labmod.leftovers(lab_prefix)["bridges"]
        raise RuntimeError("boom")
    assert labmod.leftovers(lab_prefix) == {"bridges": [], "namespaces": [], "links": []}


def test_cleanup_removes_crashed_run(lab_prefix: str) -> None:
    lab = Lab(two_switch_spec(lab_prefix))
    lab.__enter__()  # simulate a run that died without __exit__
    removed = labmod.cleanup(lab_prefix)
    assert len(removed["bridges"]) == 2 and len(removed["namespaces"]) == 2
    assert not any(labmod.leftovers(lab_prefix).values())


def test_ofproto_trace_crosses_patch_ports(lab_prefix: str) -> None:
    with Lab(two_switch_spec(lab_prefix)) as lab:
        forward_flows(lab)
        flow = f"in_port=1,tcp,dl_src={H1_MAC},dl_dst={H2_MAC},nw_src=10.0.0.1,nw_dst=10.0.0.2,tcp_dst=80"
        out = ovs.ofproto_trace(lab.bridge("s1"), flow)
        assert f'bridge("{lab.bridge("s2")}")' in out
        assert re.search(r"Datapath actions: \d+", out)
        with pytest.raises(ovs.OvsError, match="prerequisites"):
            ovs.ofproto_trace(lab.bridge("s1"), "in_port=1,tp_dst=80")


def test_forged_frame_reaches_sniffer(lab_prefix: str) -> None:
    with Lab(two_switch_spec(lab_prefix)) as lab:
        forward_flows(lab)
        forged = Ether(src="02:de:ad:be:ef:01", dst="ff:ff:ff:ff:ff:ff") / ARP(
            hwsrc="02:de:ad:be:ef:01", psrc="10.0.0.99", pdst="10.0.0.2"
        )
        bpf = "arp and ether src 02:de:ad:be:ef:01"
        with probes.Sniffer(lab.namespace("h2"), "eth0", bpf, timeout=5, count=1) as sniffer:
            probes.send_raw_frame(lab.namespace("h1"), "eth0", bytes(forged))
        assert len(sniffer.frames) == 1
        assert Ether(sniffer.frames[0])[ARP].psrc == "10.0.0.99"


def test_batched_probes_and_captures(lab_prefix: str) -> None:
    """run_probes judges each probe as if alone (answered, unanswered, no server); sniffing
    captures on two hosts at once while send_raw_frames writes several frames."""
    with Lab(two_switch_spec(lab_prefix)) as lab:
        h1, h2 = lab.namespace("h1"), lab.namespace("h2")
        forward_flows(lab)
        batch = [
            probes.Probe(h1, "10.0.0.2", "icmp"),
            probes.Probe(h1, "10.0.0.2", "tcp", 8080, listen_ns=h2),
            probes.Probe(h2, "10.0.0.1", "udp", 5353, listen_ns=h1),
            probes.Probe(h1, "fd00::2", "tcp", 8080, listen_ns=h2),  # other family: a later round
            probes.Probe(h1, "10.0.0.2", "tcp", 8081, timeout=1),  # nobody listens
            probes.Probe(h1, "10.0.0.77", "icmp", timeout=0.5),  # nobody has the address
        ]
        assert probes.run_probes(batch, in_flight=3) == [True, True, True, True, False, False]
        frames = [bytes(Ether(src=H1_MAC, dst=H2_MAC) / ARP(psrc=f"10.0.0.{i}")) for i in (97, 98, 99)]
        with probes.sniffing([(h2, "eth0", "arp"), (h1, "eth0", "arp")], settle=1.0) as got:
            probes.send_raw_frames(h1, "eth0", frames)
        ips = ["10.0.0.97", "10.0.0.98", "10.0.0.99"]
        forged = [[Ether(fr)[ARP].psrc for fr in capture if Ether(fr)[ARP].psrc in ips] for capture in got]
        assert forged == [ips, ips]  # h1 captures what it sends


def test_bundle_file_meters_and_controller(lab_prefix: str, tmp_path: object) -> None:
    spec = LabSpec(lab_prefix, [SwitchSpec("s1", 1)])
    with Lab(spec) as lab:
        br = lab.bridge("s1")
        path = tmp_path / "flows.txt"  # type: ignore[operator]
        path.write_text("table=0,priority=10,arp,actions=drop\ntable=0,priority=0,actions=drop\n")
        ovs.add_flows_bundle(br, path)
        assert "arp actions=drop" in ovs.dump_flows(br)
        path.write_text("table=0,priority=5,ip,actions=drop\n")
        ovs.replace_flows(br, path)
        assert ovs.dump_flows(br).strip() == "priority=5,ip actions=drop"
        ovs.add_meter(br, "meter=1,pktps,band=type=drop,rate=100")
        assert "meter=1" in ovs.dump_meters(br)
        ovs.set_controller(br, ["tcp:127.0.0.1:6653"])
        assert "6653" in ovs.run(["ovs-vsctl", "get-controller", br])
        ovs.del_controller(br)
        with pytest.raises(ovs.OvsError, match="add-flows"):
            ovs.add_flows(br, ["table=0,actions=no_such_action"])


def test_names_fit_ifnamsiz() -> None:
    assert labmod.short_name("sgab12", "leaf-switch-number-one") != labmod.short_name(
        "sgab12", "leaf-switch-number-two"
    )
    assert len(labmod.short_name("sgab12", "leaf-switch-number-one")) == 15
    with pytest.raises(ValueError, match="prefix"):
        Lab(LabSpec("", [SwitchSpec("s1", 1)]))


def test_ofproto_trace_ct_next(lab_prefix: str) -> None:
    with Lab(two_switch_spec(lab_prefix)) as lab:
        s1 = lab.bridge("s1")
        ovs.add_flows(
            s1,
            [
                "table=0,priority=10,in_port=1,ip,actions=ct(zone=7,table=1)",
                "table=1,priority=10,ct_state=+trk+new,ip,actions=ct(commit,zone=7),output:10",
                "table=1,priority=10,ct_state=+trk+est,ip,actions=output:10",
            ],
        )
        ovs.add_flows(lab.bridge("s2"), ["in_port=20,actions=output:2"])
        flow = "in_port=1,tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tcp_dst=22"
        new = ovs.ofproto_trace(s1, flow, ct_next=["trk,new"])
        assert "+new+trk" in new and f'bridge("{lab.bridge("s2")}")' in new
        est = ovs.ofproto_trace(s1, flow, ct_next=["trk,est"])
        assert "+est+trk" in est and "ct(commit" not in est.rsplit("Datapath actions:", 1)[1]


def test_gateway_and_static_neighbour(lab_prefix: str) -> None:
    from pyroute2 import NetNS

    host = HostSpec(
        "h1", H1_MAC, "10.0.0.1/24", "s1", 1, gateway="10.0.0.254",
        neighbours=(("10.0.0.254", "02:00:00:00:00:fe"),),
    )  # fmt: skip
    with Lab(LabSpec(lab_prefix, [SwitchSpec("s1", 1)], [], [host])) as lab, NetNS(lab.namespace("h1")) as ns:
        routes = [r.get_attr("RTA_GATEWAY") for r in ns.get_routes(family=2)]
        assert "10.0.0.254" in routes
        neigh = [n.get_attr("NDA_LLADDR") for n in ns.get_neighbours(dst="10.0.0.254")]
        assert neigh == ["02:00:00:00:00:fe"]


def test_intent_lab_without_hosts_takes_flows_for_absent_ports(lab_prefix: str) -> None:
    from segctl.testbed.intent_lab import lab_spec
    from segctl.topology.network import resolve
    from segctl.topology.synthetic import policy_pair

    network = resolve(policy_pair(2, 2, 1))
    spec = lab_spec(network, lab_prefix, hosts=False)
    assert spec.hosts == [] and len(spec.switches) == 3 and len(spec.links) == 2
    assert len(lab_spec(network, lab_prefix).hosts) == 4
    with Lab(spec) as lab:
        assert not labmod.leftovers(lab_prefix)["namespaces"]
        br = lab.bridge("leafA")
        ovs.add_flows(br, ["in_port=100,actions=output:1"])  # port 100 (an endpoint's) does not exist
        assert "in_port=100" in ovs.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", br])
    assert not any(labmod.leftovers(lab_prefix).values())
