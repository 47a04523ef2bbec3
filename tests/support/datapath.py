"""Reading ``ofproto/trace`` output against the datapath's port numbers (OVS tests)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from segctl.testbed import ovs
from segctl.testbed.lab import Lab, LabSpec, SwitchSpec

__all__ = ["datapath_outputs", "datapath_port", "one_switch_tracer"]

#: Traces ``flow`` with these conntrack states; returns the OpenFlow ports it leaves by.
Tracer = Callable[[str, list[str]], list[int]]


def datapath_outputs(trace: str) -> list[int]:
    """Datapath ports of the trace's last ``Datapath actions`` line."""
    lines = [line for line in trace.splitlines() if line.startswith("Datapath actions:")]
    assert lines, f"ofproto/trace gave no datapath actions:\n{trace}"
    tokens = lines[-1].split(":", 1)[1].replace(" ", "").split(",")
    return [int(t) for t in tokens if t.isdigit()]


def datapath_port(name: str) -> int:
    """The datapath port number of interface ``name`` (``ovs-appctl dpif/show``)."""
    for line in ovs.run(["ovs-appctl", "dpif/show"]).splitlines():
        m = re.match(r"\s+(\S+) \S+/(\d+):", line)
        if m and m.group(1) == name:
            return int(m.group(2))
    raise AssertionError(f"{name} is not in dpif/show")


@contextmanager
def one_switch_tracer(
    lab_prefix: str, tmp_path: Path, flows: str, ports: Sequence[int] = (10, 12)
) -> Iterator[Tracer]:
    """A one-bridge lab (switch ``s1``) holding ``flows``, with an internal port per OpenFlow
    port number in ``ports``; yields what traces a flow there (a port the lab did not make
    comes back negated)."""
    with Lab(LabSpec(lab_prefix, [SwitchSpec("s1", 1)])) as lab:
        bridge = lab.bridge("s1")
        names = {ofport: f"{lab_prefix}p{ofport}" for ofport in ports}
        for ofport, name in names.items():
            ovs.add_internal_port(bridge, name, ofport=ofport)
        path = tmp_path / "s1.flows"
        path.write_text(flows)
        ovs.add_flows_bundle(bridge, path)
        by_dp = {datapath_port(name): ofport for ofport, name in names.items()}

        def trace(flow: str, ct_next: list[str]) -> list[int]:
            out = datapath_outputs(ovs.ofproto_trace(bridge, flow, ct_next=ct_next))
            return [by_dp.get(p, -p) for p in out]

        yield trace
