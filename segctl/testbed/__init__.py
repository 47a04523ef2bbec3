"""Host-side test bed without Mininet: OVS bridges, namespaces, probes.

``ovs`` wraps the OVS command-line tools, ``netns`` does namespace/link work with
pyroute2, ``lab`` builds a whole topology from plain data and removes it exactly,
``probes`` sends traffic between namespaces.
"""

from __future__ import annotations

from segctl.testbed.lab import HostSpec, Lab, LabSpec, LinkSpec, SwitchSpec, cleanup, new_prefix
from segctl.testbed.ovs import OvsError

__all__ = [
    "HostSpec",
    "Lab",
    "LabSpec",
    "LinkSpec",
    "OvsError",
    "SwitchSpec",
    "cleanup",
    "new_prefix",
]
