"""Per-endpoint rate limits as OpenFlow 1.3 meters (anti-DDoS).

A meter is written as the argument of ``ovs-ofctl -O OpenFlow13 add-meter BRIDGE SPEC``;
``segctl compile`` puts one SPEC per line in ``DIR/<switch>.meters``. Meters must exist
before flows that reference them are added (OVS rejects the flow with
``OFPMMFC_INVALID_METER``), so load the ``.meters`` file first.

>>> MeterSpec(1, "pktps", 2000, 200).to_ofctl()
'meter=1,pktps,burst,stats,bands=type=drop,rate=2000,burst_size=200'
>>> MeterSpec(0xFFFFFFFE, "pktps", 100).to_ofctl()
'meter=controller,pktps,stats,bands=type=drop,rate=100'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from segctl.flows.pipeline import CONTROLLER_METER
from segctl.topology.network import EndpointInfo

__all__ = ["MeterSpec", "endpoint_meter", "meters_text"]


@dataclass(frozen=True, order=True)
class MeterSpec:
    """A drop-band meter: ``rate`` packets/s (``pktps``) or kbit/s (``kbps``)."""

    id: int
    unit: Literal["pktps", "kbps"]
    rate: int
    burst: int | None = None

    def to_ofctl(self) -> str:
        """The ``add-meter`` argument of this meter."""
        burst_flag = ",burst" if self.burst is not None else ""
        band = f"type=drop,rate={self.rate}" + (f",burst_size={self.burst}" if self.burst is not None else "")
        name = "controller" if self.id == CONTROLLER_METER else str(self.id)  # as ovs-ofctl writes it
        return f"meter={name},{self.unit}{burst_flag},stats,bands={band}"


def endpoint_meter(meter_id: int, ep: EndpointInfo) -> MeterSpec | None:
    """The meter of an endpoint's rate limit, or None when it has none."""
    if ep.rate_pps is not None:
        return MeterSpec(meter_id, "pktps", ep.rate_pps, ep.rate_burst)
    if ep.rate_kbps is not None:
        return MeterSpec(meter_id, "kbps", ep.rate_kbps, ep.rate_burst)
    return None


def meters_text(meters: list[MeterSpec]) -> str:
    """One ``add-meter`` argument per line."""
    return "".join(m.to_ofctl() + "\n" for m in meters)
