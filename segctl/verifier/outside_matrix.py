"""The outside's row and column of the reachability matrix.

Per external network and endpoint, both ways: what the intent grants (the allowing external
policies of the endpoint's tenant that select it, with their services), whether the tables
deliver some new packet (the endpoint's packets leaving the uplink; the outside's packets
reaching the endpoint), and a status as the endpoint matrix has (``violation`` when a
property found a violation on that pair, else ``allowed`` or ``denied``). From the outside
only endpoints with a floating IP there (IPv4), or their own routed global address (IPv6),
can be granted anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from segctl.topology.network import Network
from segctl.topology.outside import ExternalGrant, external_grants, public_source, public_source6

__all__ = ["OutsideCell", "OutsideWay", "outside_cells"]


@dataclass(frozen=True)
class OutsideWay:
    """One direction between an endpoint and an external network."""

    policies: tuple[str, ...]  # the allowing external policies (``tenant/name``)
    services: str  # their services, as the matrix shows them ("" none)
    observed: bool  # the tables deliver some new packet that way
    status: str  # violation | allowed | denied

    def to_json(self) -> dict[str, Any]:
        return {"policies": list(self.policies), "services": self.services, "observed": self.observed,
                "status": self.status}  # fmt: skip


@dataclass(frozen=True)
class OutsideCell:
    """An endpoint and an external network (``external:NAME``), out and in."""

    external: str
    endpoint: str
    public: str  # the address it has there: floating IP, else its tenant's SNAT ("" none)
    egress: OutsideWay
    ingress: OutsideWay
    public6: str = ""  # its own global IPv6 address, when it has IPv6 there ("" none)

    def to_json(self) -> dict[str, Any]:
        return {"external": self.external, "endpoint": self.endpoint, "public": self.public or None,
                "public6": self.public6 or None, "egress": self.egress.to_json(),
                "ingress": self.ingress.to_json()}  # fmt: skip


def _way(grants: list[ExternalGrant], observed: bool, bad: bool) -> OutsideWay:
    allowing = [g for g in grants if g.allow]
    services = dict.fromkeys(s.describe() for g in allowing for s in g.services)
    status = "violation" if bad else ("allowed" if allowing else "denied")
    names = tuple(g.name.removeprefix("policy ") for g in allowing)
    return OutsideWay(names, " ".join(services), observed, status)


def outside_cells(
    network: Network, observed: Mapping[str, set[str]], bad: Mapping[str, set[str | None]]
) -> list[OutsideCell]:
    """Every (external network, endpoint) cell, in declaration order; ``observed`` and
    ``bad`` map a sender (endpoint or ``external:NAME``) to its receivers."""
    grants = external_grants(network)
    cells = []
    for ext in network.externals:
        mine = [g for g in grants if g.external == ext.name]
        for ep in network.endpoints:
            name, outside = ep.qualified, ext.qualified
            out = [g for g in mine if g.direction == "out" and ep in g.endpoints]
            floating = ep.floating_ip is not None and ep.floating_external == ext.name
            v6 = any(g.family == 6 and ep in g.endpoints for g in mine)
            public6 = public_source6(network, ep, ext.name) if v6 else None
            reachable = {4: floating, 6: public6 is not None}
            into = [g for g in mine if g.direction == "in" and ep in g.endpoints and reachable[g.family]]
            public = public_source(network, ep, ext.name)
            cells.append(
                OutsideCell(
                    outside, name, "" if public is None else str(public),
                    _way(out, outside in observed.get(name, ()), outside in bad.get(name, ())),
                    _way(into, name in observed.get(outside, ()), name in bad.get(outside, ())),
                    "" if public6 is None else str(public6),
                )
            )  # fmt: skip
    return cells
