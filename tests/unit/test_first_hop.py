"""One first-hop rule (``first_hop_mac``) and one MAC parser/formatter (``mac_int``/``mac_text``),
and the three places that build packets from them: the verifier's header spaces, ``segctl
trace`` and the scenarios' predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.intents import EDGE_CASES

from segctl.cli import main
from segctl.mininet_scenarios.predict import probe_fields
from segctl.mininet_scenarios.probes import plan_probes
from segctl.openflow.ofctl import mac_int, mac_text
from segctl.topology.network import MIN_ROUTED_TTL, Network, first_hop_mac, load_network, resolve, routed
from segctl.topology.schema import Intent
from segctl.verifier.headerspace import HeaderSpace
from segctl.verifier.spaces import Spaces

ROOT = Path(__file__).resolve().parents[2]
LEAF_SPINE = ROOT / "examples" / "leaf-spine.yaml"


@pytest.fixture(scope="module")
def net() -> Network:
    return load_network(LEAF_SPINE)


def test_mac_text_and_int_are_inverse() -> None:
    assert mac_int("02:5e:00:00:00:01") == 0x025E00000001
    assert mac_int("2:5E:0:0:0:1") == 0x025E00000001  # ovs-ofctl's short groups, any case
    assert mac_text(0x025E00000001) == "02:5e:00:00:00:01"
    assert mac_text(mac_int("ff:ff:ff:ff:ff:ff")) == "ff:ff:ff:ff:ff:ff"
    for bad in ("02:5e:00:00:00", "02-5e-00-00-00-01", "002:5e:00:00:00:01", "zz:00:00:00:00:00", ""):
        with pytest.raises(ValueError, match="bad MAC address"):
            mac_int(bad)


def test_first_hop_rule(net: Network) -> None:
    web1, web2 = net.endpoint("acme", "web1"), net.endpoint("acme", "web2")
    app1, gweb1 = net.endpoint("acme", "app1"), net.endpoint("globex", "gweb1")
    assert first_hop_mac(net, web1, web2) == web2.mac and not routed(web1, web2)  # one segment
    assert first_hop_mac(net, web1, app1) == net.tenant("acme").gateway_mac and routed(web1, app1)
    # another tenant on the same subnet (10.1.1.0/24): still the source tenant's gateway
    assert web2.ip in net.segment("globex", "web").cidr
    assert first_hop_mac(net, gweb1, web2) == net.tenant("globex").gateway_mac and routed(gweb1, web2)
    assert first_hop_mac(net, gweb1, None) == net.tenant("globex").gateway_mac and routed(gweb1, None)
    assert MIN_ROUTED_TTL == 2


@pytest.mark.parametrize("name", ["leaf-spine", "edge-cases"])
def test_header_space_first_hop_is_unchanged(name: str) -> None:
    """The verifier's first-hop space from the shared rule is the BDD it built on its own."""
    network = load_network(LEAF_SPINE) if name == "leaf-spine" else resolve(Intent.model_validate(EDGE_CASES))
    hs = HeaderSpace()
    spaces = Spaces(hs, network)
    for src in network.endpoints:
        for dst in network.endpoints:
            # spaces of the intent are in origin naming: the first hop is the packet as sent
            if src.tenant == dst.tenant and src.segment == dst.segment:
                before = hs.oeq("eth_dst", mac_int(dst.mac))
            else:
                gw = mac_int(network.tenant(src.tenant).gateway_mac)
                before = hs.oeq("eth_dst", gw) & ~(hs.oeq("nw_ttl", 0) | hs.oeq("nw_ttl", 1))
            assert spaces.first_hop(src, dst) == before, (src.qualified, dst.qualified)


def test_predicted_probes_use_the_first_hop_rule() -> None:
    """Every probe frame (request and reply) of the leaf-spine scenario; the cross-tenant pairs
    on one subnet (globex/gweb1 -> acme/web2) get the gateway, as in the proof and in trace
    (the predictor used the peer's MAC there, a frame no host can send: ARP is answered only
    inside the segment)."""
    network = load_network(ROOT / "segctl" / "mininet_scenarios" / "intents" / "leaf-spine.yaml")
    for probe in plan_probes(network).probes:
        src, dst = network.endpoint(*probe.src), network.endpoint(*probe.dst)
        request = probe_fields(network, src, dst, probe, reply=False)
        reply = probe_fields(network, src, dst, probe, reply=True)
        assert request["eth_dst"] == mac_int(first_hop_mac(network, src, dst))
        assert reply["eth_dst"] == mac_int(first_hop_mac(network, dst, src))
        assert request["eth_src"] == mac_int(src.mac) and reply["eth_src"] == mac_int(dst.mac)
    gweb1, web2 = network.endpoint("globex", "gweb1"), network.endpoint("acme", "web2")
    probe = next(p for p in plan_probes(network).probes if (p.src, p.dst) == (gweb1.key, web2.key))
    assert probe_fields(network, gweb1, web2, probe, reply=False)["eth_dst"] == mac_int(
        network.tenant("globex").gateway_mac
    )


def test_trace_uses_the_first_hop_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from support.reports import write_leaf_spine

    flows = write_leaf_spine(tmp_path / "flows")
    args = ["trace", str(LEAF_SPINE), "--flows", str(flows), "--from", "globex/gweb1", "--proto", "tcp"]
    assert main([*args, "--to", "acme/web2", "--dport", "80", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["packet"]["eth_dst"] == "02:5e:00:00:00:02"
    assert main([*args, "--to", "globex/gweb2", "--dport", "80"]) == 0
    out = capsys.readouterr().out
    gweb2 = load_network(LEAF_SPINE).endpoint("globex", "gweb2")
    assert f"eth_dst {gweb2.mac}\n" in out  # same segment: direct, no "(gateway)"
