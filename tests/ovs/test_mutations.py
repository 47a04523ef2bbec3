"""Mutation tests: open leaks in the compiled leaf-spine flows; the verifier must catch each.

Every mutation must (1) make ``segctl verify --flows`` exit 1 with the expected property
failing and a counterexample, and (2) that counterexample, replayed with
``ovs-appctl ofproto/trace`` on real OVS bridges loaded with the mutated flows (patch
ports joined with the fabric's port numbers, one ``--ct-next`` per ``ct()``), must really
be delivered to the endpoint the verifier named. A trace error fails the test.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from support.mutations import MUTATIONS, Flows

from segctl.cli import main
from segctl.flows.compiler import compile_network
from segctl.openflow.tables import load_flow_dir
from segctl.testbed import ovs
from segctl.testbed.lab import Lab, LabSpec, LinkSpec, SwitchSpec
from segctl.topology.network import Network, load_network
from segctl.verifier.counterexample import Counterexample
from segctl.verifier.verify import verify

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "leaf-spine.yaml"


@pytest.fixture(scope="module")
def compiled() -> tuple[Network, Flows, dict[str, str]]:
    network = load_network(EXAMPLE)
    programs = compile_network(network)
    flows = {name: prog.flows_text().splitlines() for name, prog in programs.items()}
    meters = {name: prog.meters_text() for name, prog in programs.items()}
    return network, flows, meters


def _write(directory: Path, flows: Flows) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, lines in flows.items():
        (directory / f"{name}.flows").write_text("\n".join(lines) + "\n")
    return directory


def _datapath_outputs(trace: str) -> list[int]:
    lines = [line for line in trace.splitlines() if line.startswith("Datapath actions:")]
    assert lines, f"ofproto/trace gave no datapath actions:\n{trace}"
    tokens = lines[-1].split(":", 1)[1].replace(" ", "").split(",")
    return [int(t) for t in tokens if t.isdigit()]


def _dp_ports() -> dict[int, str]:
    out: dict[int, str] = {}
    for line in ovs.run(["ovs-appctl", "dpif/show"]).splitlines():
        m = re.match(r"\s+(\S+) (\d+|\w+)/(\d+):", line)
        if m:
            out[int(m.group(3))] = m.group(1)
    return out


def _replay(
    network: Network, flows_dir: Path, meters: dict[str, str], prefix: str, cx: Counterexample
) -> list[str]:
    """Load the mutated flows into real bridges and return the port names the packet leaves by."""
    spec = LabSpec(
        prefix,
        [SwitchSpec(s.name, s.dpid) for s in network.switches],
        [LinkSpec(a, ap, b, bp) for a, ap, b, bp in network.links],
    )
    with Lab(spec) as lab:
        names: dict[str, str] = {}
        for i, ep in enumerate(network.endpoints):
            port = f"{prefix}e{i}"
            ovs.add_internal_port(lab.bridge(ep.switch), port, ofport=ep.port)
            names[port] = ep.qualified
        for sw in network.switches:
            for meter in meters[sw.name].splitlines():
                ovs.add_meter(lab.bridge(sw.name), meter)
            ovs.add_flows_bundle(lab.bridge(sw.name), flows_dir / f"{sw.name}.flows")
        trace = ovs.ofproto_trace(lab.bridge(cx.ingress[0]), cx.ofproto_flow, ct_next=list(cx.ct_states))
        dp = _dp_ports()
        return [names.get(dp.get(n, ""), dp.get(n, f"dp{n}")) for n in _datapath_outputs(trace)]


@pytest.mark.ovs
@pytest.mark.parametrize(("mutate", "prop"), MUTATIONS, ids=[m.__name__ for m, _ in MUTATIONS])
def test_mutation_is_caught_and_replays_in_ovs(
    compiled: tuple[Network, Flows, dict[str, str]],
    mutate: Callable[[Flows], None],
    prop: str,
    tmp_path: Path,
    lab_prefix: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    network, flows, meters = compiled
    mutated = {k: list(v) for k, v in flows.items()}
    mutate(mutated)
    flows_dir = _write(tmp_path / "flows", mutated)

    assert main(["verify", str(EXAMPLE), "--flows", str(flows_dir)]) == 1
    assert "VIOLATIONS FOUND" in capsys.readouterr().out

    report = verify(network, load_flow_dir(network, flows_dir))
    failing = report.property(prop)
    assert not failing.holds, f"{mutate.__name__}: property {prop} should fail"
    delivered = [cx for cx in failing.counterexamples if cx.disposition_kind == "delivered"]
    assert delivered, f"{mutate.__name__}: no delivered counterexample for {prop}"
    cx = delivered[0]
    assert cx.confirmed, "the concrete simulator must agree with the symbolic counterexample"
    assert cx.hops and cx.packet
    assert _replay(network, flows_dir, meters, lab_prefix, cx) == [cx.delivered_to]
