"""`segctl verify --live` on real bridges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.reports import LEAF_SPINE as EXAMPLE
from support.reports import LEAK
from support.reports import write_leaf_spine as _write

from segctl.cli import main
from segctl.flows.compiler import compile_network
from segctl.openflow.tables import dump_live, load_flow_dir
from segctl.testbed import ovs
from segctl.testbed.lab import Lab, LabSpec, LinkSpec, SwitchSpec
from segctl.topology.network import load_network
from segctl.verifier.verify import verify


@pytest.mark.ovs
def test_live_tables_from_real_bridges(
    tmp_path: Path, lab_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--live dumps the bridges announcing the switches' dpids; the dumped tables verify like the files."""
    network = load_network(EXAMPLE)
    flows = _write(tmp_path / "flows")
    programs = compile_network(network)
    spec = LabSpec(
        lab_prefix,
        [SwitchSpec(s.name, s.dpid) for s in network.switches],
        [LinkSpec(a, ap, b, bp) for a, ap, b, bp in network.links],
    )
    with Lab(spec) as lab:
        for sw in network.switches:
            assert lab.bridge(sw.name) == f"{lab_prefix}{sw.name}"
            for meter in programs[sw.name].meters_text().splitlines():
                ovs.add_meter(lab.bridge(sw.name), meter)
            ovs.add_flows_bundle(lab.bridge(sw.name), flows / f"{sw.name}.flows")
        live = dump_live(network, prefix=lab_prefix)
        assert {k: len(v) for k, v in live.items()} == {
            k: len(v) for k, v in load_flow_dir(network, flows).items()
        }
        assert verify(network, live).ok
        assert main(["verify", str(EXAMPLE), "--live", "--bridge-prefix", lab_prefix]) == 0
        assert "all properties hold" in capsys.readouterr().out
    assert main(["verify", str(EXAMPLE), "--live", "--bridge-prefix", lab_prefix]) == 2
    err = capsys.readouterr().err
    assert f"switch spine1 (datapath id 0x0000000000000101): no bridge named {lab_prefix}* has it" in err


@pytest.mark.ovs
def test_live_finds_bridges_by_datapath_id_not_by_name(
    tmp_path: Path, lab_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bridges named unlike the switches (as in any real deployment) are found by the dpid
    they announce, as the controller finds them; the names are shuffled on purpose."""
    network = load_network(EXAMPLE)
    flows = _write(tmp_path / "flows")
    programs = compile_network(network)
    names = {s.name: f"x{len(network.switches) - i}" for i, s in enumerate(network.switches)}
    spec = LabSpec(
        lab_prefix,
        [SwitchSpec(names[s.name], s.dpid) for s in network.switches],
        [LinkSpec(names[a], ap, names[b], bp) for a, ap, b, bp in network.links],
    )
    with Lab(spec) as lab:
        for sw in network.switches:
            bridge = lab.bridge(names[sw.name])
            for meter in programs[sw.name].meters_text().splitlines():
                ovs.add_meter(bridge, meter)
            ovs.add_flows_bundle(bridge, flows / f"{sw.name}.flows")
        assert main(["verify", str(EXAMPLE), "--live", "--bridge-prefix", lab_prefix]) == 0
        assert "verified 387 flows (live bridges)" in capsys.readouterr().out
        code = main(
            ["trace", str(EXAMPLE), "--live", "--bridge-prefix", lab_prefix,
             "--from", "acme/web1", "--to", "acme/app1", "--dport", "8080"]
        )  # fmt: skip
        assert code == 0 and "=> delivered to acme/app1 (leaf2:11)" in capsys.readouterr().out


@pytest.mark.ovs
def test_diff_live_shows_what_the_switches_deliver_beyond_the_intent(
    tmp_path: Path, lab_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    network = load_network(EXAMPLE)
    flows = _write(tmp_path / "flows")
    programs = compile_network(network)
    spec = LabSpec(
        lab_prefix,
        [SwitchSpec(s.name, s.dpid) for s in network.switches],
        [LinkSpec(a, ap, b, bp) for a, ap, b, bp in network.links],
    )
    args = ["diff", str(EXAMPLE), "--live", "--bridge-prefix", lab_prefix]
    with Lab(spec) as lab:
        for sw in network.switches:
            for meter in programs[sw.name].meters_text().splitlines():
                ovs.add_meter(lab.bridge(sw.name), meter)
            ovs.add_flows_bundle(lab.bridge(sw.name), flows / f"{sw.name}.flows")
        assert main(args) == 0
        assert capsys.readouterr().out.splitlines()[-1] == "the live tables match the intent"
        ovs.add_flows(lab.bridge("leaf1"), [LEAK])  # someone's hand-made rule: gweb1 -> web1's port
        assert main(args) == 1
        out = capsys.readouterr().out
        assert "+ globex/gweb1 -> acme/web1: the tables deliver what the intent denies" in out
        assert "switch leaf1: 1 rule(s) the intent does not compile to, 0 missing" in out
        assert main([*args, "-o", "json"]) == 1
        doc = json.loads(capsys.readouterr().out)
        assert [(e["src"], e["dst"]) for e in doc["extra"]] == [("globex/gweb1", "acme/web1")]
        assert doc["extra"][0]["why"] and doc["match"] is False
        # it takes all of gweb1's IPv4: what the intent grants gweb1 (and its replies) no longer arrives
        missing = {(e["src"], e["dst"]) for e in doc["missing"]}
        assert {("globex/gweb1", "globex/gweb2"), ("globex/gweb1", "infra/dns1")} <= missing
        assert all("globex/gweb1" in pair for pair in missing)
        assert list(doc["rules"]) == ["leaf1"] and "in_port=11" in doc["rules"]["leaf1"]["extra"][0]
