"""An intent's compiled rules on real netdev bridges, one namespace per endpoint (and per
external network its upstream router, ``x<index>``): what the OVS tests that send real
packets through a whole intent share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from segctl.flows.compiler import compile_network
from segctl.testbed import Lab, ovs
from segctl.testbed import lab as labmod
from segctl.testbed.intent_lab import lab_spec
from segctl.topology.network import EndpointInfo, Network

__all__ = ["CompiledLab", "compiled_lab"]


@dataclass
class CompiledLab:
    """The lab, its network and each endpoint's host name (endpoint names are unique per
    tenant only: hosts are ``h0``, ``h1``, ... in endpoint order)."""

    net: Network
    lab: Lab
    hosts: dict[tuple[str, str], str]

    def ns(self, ep: EndpointInfo | tuple[str, str]) -> str:
        """The namespace of an endpoint (or its ``(tenant, name)``)."""
        return self.lab.namespace(self.hosts[ep if isinstance(ep, tuple) else ep.key])

    def outside(self, index: int = 1) -> str:
        """The namespace of external network ``index``'s upstream router."""
        return self.lab.namespace(f"x{index}")


@contextlib.contextmanager
def compiled_lab(net: Network, out: Path) -> Iterator[CompiledLab]:
    """Build the lab of ``net``, push its compiled flows and meters (written to ``out``),
    yield it; remove it, and fail the test if anything of it is left behind."""
    prefix = labmod.new_prefix()
    hosts = {ep.key: f"h{i}" for i, ep in enumerate(net.endpoints)}
    try:
        with Lab(lab_spec(net, prefix, host_names=hosts)) as lab:
            for name, prog in compile_network(net).items():
                (out / f"{name}.flows").write_text(prog.flows_text())
                (out / f"{name}.meters").write_text(prog.meters_text())
                for line in prog.meters_text().splitlines():
                    ovs.add_meter(lab.bridge(name), line)
                ovs.add_flows_bundle(lab.bridge(name), out / f"{name}.flows")
            yield CompiledLab(net, lab, hosts)
    finally:
        left = labmod.leftovers(prefix)
        if any(left.values()):
            labmod.cleanup(prefix)
            pytest.fail(f"lab {prefix} left behind {left}")
