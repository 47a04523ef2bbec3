"""An in-memory switch set implementing :class:`~segctl.controller.southbound.Southbound`.

For unit tests of the service and the API (integration tests use real OVS). It keeps
OpenFlow's add semantics: a flow with the same (table, priority, match) as an existing
one replaces it; a strict delete removes the flow with that key. A push either applies
completely or not at all, like a committed bundle. Tests can tamper with a switch
(:meth:`MemorySouthbound.tamper_add` / ``tamper_remove``) to model drift, wipe it to
model a restart, and make the next push fail, and set a flow's counters
(:meth:`MemorySouthbound.count`) as if packets had matched it. Frames sent with
``packet_out`` are recorded per switch (``MemorySwitch.frames``: port and bytes, in order).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from segctl.controller.southbound import CountedFlow, SwitchMeter, check_frame
from segctl.errors import SwitchError
from segctl.openflow.ofctl import FieldMatch, Flow

__all__ = ["MemorySouthbound", "MemorySwitch"]

FlowKey = tuple[int, int, tuple[FieldMatch, ...]]


def flow_key(flow: Flow) -> FlowKey:
    """What identifies a flow in a table: table, priority and match."""
    return (flow.table, flow.priority, flow.match)


@dataclass
class MemorySwitch:
    """One switch: flows by key, meters by id, and the log of pushes it received."""

    name: str
    flows: dict[FlowKey, Flow] = field(default_factory=dict)
    meters: dict[int, SwitchMeter] = field(default_factory=dict)
    pushes: list[tuple[int, int]] = field(default_factory=list)  # (removed, added) per push
    counters: dict[FlowKey, tuple[int, int]] = field(default_factory=dict)  # (packets, bytes)
    resyncs: int = 0
    frames: list[tuple[int, bytes]] = field(default_factory=list)  # (port, frame) per packet-out


class MemorySouthbound:
    """Switches held in memory; ``connect``/``disconnect`` model the OpenFlow channel."""

    def __init__(self, switches: Iterable[str] = ()) -> None:
        self.switches: dict[str, MemorySwitch] = {}
        self._connected: set[str] = set()
        self._fail_next: dict[str, str] = {}
        for name in switches:
            self.connect(name)

    # -- test controls ------------------------------------------------------------------

    def connect(self, name: str, *, wipe: bool = False) -> MemorySwitch:
        """Connect a switch (new ones start empty; ``wipe`` models a restart)."""
        switch = self.switches.setdefault(name, MemorySwitch(name))
        if wipe:
            switch.flows.clear()
            switch.meters.clear()
        self._connected.add(name)
        return switch

    def disconnect(self, name: str) -> None:
        self._connected.discard(name)

    def fail_next_push(self, name: str, reason: str = "bundle commit failed") -> None:
        """Make the next push or resync to ``name`` fail with :class:`SwitchError`."""
        self._fail_next[name] = reason

    def tamper_add(self, name: str, flow: Flow) -> None:
        self.switches[name].flows[flow_key(flow)] = flow

    def tamper_remove(self, name: str, flow: Flow) -> None:
        self.switches[name].flows.pop(flow_key(flow), None)

    def count(self, name: str, flow: Flow, packets: int, nbytes: int) -> None:
        """Add ``packets``/``nbytes`` to the counters of ``flow`` on switch ``name``."""
        counters = self.switches[name].counters
        have = counters.get(flow_key(flow), (0, 0))
        counters[flow_key(flow)] = (have[0] + packets, have[1] + nbytes)

    def flows(self, name: str) -> set[Flow]:
        return set(self.switches[name].flows.values())

    # -- Southbound ---------------------------------------------------------------------

    def connected_switches(self) -> set[str]:
        return set(self._connected)

    def intent_switches_changed(self) -> None:
        """Nothing to do: memory switches are named, never unknown."""

    def push(
        self,
        switch: str,
        *,
        remove: Sequence[Flow],
        add: Sequence[Flow],
        meters: Sequence[SwitchMeter] = (),
        remove_meters: Sequence[int] = (),
    ) -> None:
        target = self._target(switch)
        flows = dict(target.flows)
        for flow in remove:
            flows.pop(flow_key(flow), None)
        for flow in add:
            flows[flow_key(flow)] = flow
            target.counters.pop(flow_key(flow), None)  # an add (re)starts a flow's counters
        target.flows = flows
        for meter in meters:
            target.meters[meter.meter_id] = meter
        for meter_id in remove_meters:
            target.meters.pop(meter_id, None)
        target.pushes.append((len(remove), len(add)))

    def resync(self, switch: str, flows: Sequence[Flow], meters: Sequence[SwitchMeter] = ()) -> None:
        target = self._target(switch)
        target.flows = {flow_key(f): f for f in flows}
        target.counters.clear()
        target.meters = {m.meter_id: m for m in meters}
        target.resyncs += 1

    def dump(self, switch: str) -> list[Flow]:
        if switch not in self._connected:
            raise SwitchError(f"switch {switch} is not connected")
        return list(self.switches[switch].flows.values())

    def dump_counted(self, switch: str) -> list[CountedFlow]:
        counters = self.switches[switch].counters
        return [CountedFlow(f, *counters.get(flow_key(f), (0, 0))) for f in self.dump(switch)]

    def dump_meters(self, switch: str) -> list[SwitchMeter]:
        if switch not in self._connected:
            raise SwitchError(f"switch {switch} is not connected")
        return sorted(self.switches[switch].meters.values())

    def packet_out(self, switch: str, port: int, frame: bytes) -> None:
        check_frame(frame)
        if switch not in self._connected:
            raise SwitchError(f"switch {switch} is not connected")
        self.switches[switch].frames.append((port, bytes(frame)))

    def _target(self, switch: str) -> MemorySwitch:
        if switch not in self._connected:
            raise SwitchError(f"switch {switch} is not connected")
        reason = self._fail_next.pop(switch, None)
        if reason is not None:
            raise SwitchError(f"switch {switch}: {reason}")
        return self.switches[switch]
