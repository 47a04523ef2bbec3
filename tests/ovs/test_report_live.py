"""`segctl verify --live` on real bridges."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.reports import LEAF_SPINE as EXAMPLE
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
    """--live dumps the bridges named prefix + switch; the dumped tables verify like the files."""
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
    assert "dump-flows" in capsys.readouterr().err
