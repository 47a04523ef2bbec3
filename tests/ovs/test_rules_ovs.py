"""Compiled rules loaded into real OVS bridges dump back to themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from segctl.flows.compiler import compile_network
from segctl.flows.rules import rules_text
from segctl.openflow.ofctl import (
    parse_flow,
    parse_flows,
)
from segctl.testbed import lab as labmod
from segctl.testbed import ovs
from segctl.testbed.lab import Lab, LabSpec, SwitchSpec
from segctl.topology.network import load_network

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.yaml"))


@pytest.mark.ovs
@pytest.mark.parametrize("example", EXAMPLES)
def test_round_trip_through_real_ovs(example: str, lab_prefix: str, tmp_path: Path) -> None:
    """Load every switch's rules with --bundle, dump them, parse both sides, compare."""
    programs = compile_network(load_network(ROOT / "examples" / f"{example}.yaml"))
    spec = LabSpec(lab_prefix, [SwitchSpec(p.switch, p.dpid) for p in programs.values()])
    with Lab(spec) as lab:
        for name, prog in programs.items():
            br = lab.bridge(name)
            for meter in prog.meters:
                ovs.add_meter(br, meter.to_ofctl())
            path = tmp_path / f"{name}.flows"
            path.write_text(rules_text(prog.rules))
            ovs.add_flows_bundle(br, path)
            dumped = parse_flows(ovs.dump_flows(br), source=name)
            compiled = [parse_flow(r.to_ofctl()) for r in prog.rules]
            assert len(dumped) == len(compiled), name
            assert set(dumped) == set(compiled), set(dumped) ^ set(compiled)
            if prog.meters:
                meters = ovs.dump_meters(br)
                for meter in prog.meters:  # the spec's own name: a number, or "controller"
                    name_and_unit = meter.to_ofctl().split(",")[:2]
                    assert f"{name_and_unit[0]} {name_and_unit[1]}" in meters
    assert not any(labmod.leftovers(lab_prefix).values())
