"""Reading ``ofproto/trace`` output against the datapath's port numbers (OVS tests)."""

from __future__ import annotations

import re

from segctl.testbed import ovs

__all__ = ["datapath_outputs", "datapath_port"]


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
