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

from segctl.cli import main
from segctl.flows.compiler import compile_network
from segctl.openflow.tables import load_flow_dir
from segctl.testbed import ovs
from segctl.testbed.lab import Lab, LabSpec, LinkSpec, SwitchSpec
from segctl.topology.network import Network, load_network
from segctl.verifier.counterexample import Counterexample
from segctl.verifier.verify import verify

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "leaf-spine.yaml"
WEB1_MAC, WEB2_IP, APP1_IP = "02:00:00:01:01:0a", "10.1.1.11", "10.1.2.10"

Flows = dict[str, list[str]]


def _edit(flows: Flows, switch: str, pred: Callable[[str], bool], fn: Callable[[str], str]) -> None:
    lines = flows[switch]
    hits = [i for i, line in enumerate(lines) if pred(line)]
    assert hits, f"mutation found nothing to change on {switch}"
    for i in hits:
        lines[i] = fn(lines[i])


def drop_egress_guard(flows: Flows) -> None:
    """web1's forward and egress delivery keyed by MAC only: the tenant guard is gone."""
    _edit(
        flows,
        "leaf1",
        lambda s: bool(re.match(r"table=(50|80),priority=1000,", s)) and f"ip,dl_dst={WEB1_MAC}," in s,
        lambda s: re.sub(r",metadata=0x[0-9a-f]+/0x[0-9a-f]+|,nw_dst=10\.1\.1\.10", "", s),
    )


def drop_spoof_guard(flows: Flows) -> None:
    """web1's IPv4 spoof-guard rule no longer binds the source address."""
    _edit(
        flows,
        "leaf1",
        lambda s: s.startswith("table=0,") and "in_port=10,ip," in s,
        lambda s: s.replace(",nw_src=10.1.1.10", ""),
    )


def widen_match(flows: Flows) -> None:
    """leaf2's established-pass rules lose their +est: every tracked packet passes."""
    _edit(
        flows,
        "leaf2",
        lambda s: "ct_state=+est+trk" in s,
        lambda s: s.replace("ct_state=+est+trk", "ct_state=+trk"),
    )


def change_metadata(flows: Flows) -> None:
    """gweb1's port (globex) is classified into acme's web segment."""
    _edit(
        flows,
        "leaf1",
        lambda s: s.startswith("table=0,") and "in_port=11," in s,
        lambda s: s.replace("write_metadata:0x1002/", "write_metadata:0x1001/"),
    )


def foreign_output(flows: Flows) -> None:
    """A high-priority rule outputs gweb1's (globex) IPv4 straight to web1's (acme) port."""
    flows["leaf1"].insert(0, "table=0,priority=60000,in_port=11,ip,actions=output:10")


def commit_without_policy(flows: Flows) -> None:
    """leaf2 commits and passes web2 -> app1 tcp/22 in both policy stages without any policy."""
    match = f"tcp,metadata=0x1/0xfff,nw_src={WEB2_IP},nw_dst={APP1_IP},tcp_dst=22"
    flows["leaf2"].insert(0, f"table=30,priority=3600,{match},actions=ct(commit,zone=1),goto_table:40")
    flows["leaf2"].insert(0, f"table=70,priority=3600,{match},actions=ct(commit,zone=1),goto_table:80")


MUTATIONS = [
    (drop_egress_guard, "isolation"),
    (drop_spoof_guard, "spoof-guard"),
    (widen_match, "conformance"),
    (change_metadata, "isolation"),
    (foreign_output, "isolation"),
    (commit_without_policy, "commit-safety"),
]


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


def test_unmutated_leaf_spine_verifies_clean(
    compiled: tuple[Network, Flows, dict[str, str]], tmp_path: Path
) -> None:
    _, flows, _ = compiled
    flows_dir = _write(tmp_path / "flows", flows)
    assert main(["verify", str(EXAMPLE), "--flows", str(flows_dir)]) == 0
