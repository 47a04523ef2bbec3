"""The southbound seam: what the controller service needs from the switches.

The service (:mod:`segctl.controller.service`) decides *what* each switch must hold;
a :class:`Southbound` only carries it out. The os-ken implementation talks OpenFlow to
real switches; :mod:`segctl.controller.memory_southbound` keeps switches in memory for
unit tests. Both speak the same currency: parsed :class:`segctl.openflow.ofctl.Flow`
objects (hashable, stats ignored), so what is verified is exactly what is pushed.

Switches are named by their name in the intent's fabric (``leaf1``), never by dpid:
the os-ken side maps dpid -> name with the current :class:`~segctl.topology.network.Network`
(``ControllerService.switch_name(dpid)``) and handles unknown dpids itself (drop-all).

Every method raises :class:`segctl.errors.SwitchError` when the switch is not
connected or refuses a message; no other exception is part of the contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    from segctl.openflow.ofctl import Flow

__all__ = ["MAX_FRAME", "CountedFlow", "Southbound", "SwitchMeter", "check_frame"]

#: The largest frame :meth:`Southbound.packet_out` sends (Ethernet without the FCS, no VLAN).
MAX_FRAME = 1514


def check_frame(frame: bytes) -> None:
    """Raise ``ValueError`` unless ``frame`` is a whole Ethernet frame of at most :data:`MAX_FRAME` bytes."""
    if not 14 <= len(frame) <= MAX_FRAME:
        raise ValueError(f"a frame of {len(frame)} bytes: 14 to {MAX_FRAME} are sent")


class CountedFlow(NamedTuple):
    """A flow of a dump with the switch's counters (packets and bytes it matched)."""

    flow: Flow
    packets: int
    bytes: int


@dataclass(frozen=True, order=True)
class SwitchMeter:
    """One OpenFlow meter with a single drop band.

    ``unit`` is ``"pktps"`` (packets/s) or ``"kbps"``; ``burst`` is ``None`` when no
    burst size is set. Two meters with the same id and different settings differ.
    """

    meter_id: int
    unit: Literal["pktps", "kbps"]
    rate: int
    burst: int | None = None


@runtime_checkable
class Southbound(Protocol):
    """The operations the controller service performs on switches."""

    def connected_switches(self) -> set[str]:
        """Names of the switches that are connected now and known to the intent."""
        ...

    def intent_switches_changed(self) -> None:
        """A new intent is current: take on the connected switches it names now and did not
        before (each is then resynced through ``on_switch_connected``, after this change)."""
        ...

    def push(
        self,
        switch: str,
        *,
        remove: Sequence[Flow],
        add: Sequence[Flow],
        meters: Sequence[SwitchMeter] = (),
        remove_meters: Sequence[int] = (),
    ) -> None:
        """Apply one change to ``switch`` atomically.

        Order: ``meters`` are added or modified first (a flow may reference them), then
        ``remove`` (strict deletes: table, priority, match) and ``add`` go in **one**
        bundle committed atomically, followed by a barrier; ``remove_meters`` (meter ids)
        are deleted last. OVS does not take meter mods inside a bundle, hence the order.
        Raises :class:`~segctl.errors.SwitchError`; after a failure the switch holds
        either the old or the new flow table, never a mix.
        """
        ...

    def resync(self, switch: str, flows: Sequence[Flow], meters: Sequence[SwitchMeter] = ()) -> None:
        """Replace everything on ``switch``: delete all flows and meters, install these.

        The flow part is one atomic bundle (delete-all + adds), then a barrier.
        """
        ...

    def dump(self, switch: str) -> list[Flow]:
        """The flows ``switch`` holds now (all tables), as parsed Flows without stats."""
        ...

    def dump_counted(self, switch: str) -> list[CountedFlow]:
        """Like :meth:`dump`, each flow with its packet and byte counters (one dump)."""
        ...

    def dump_meters(self, switch: str) -> list[SwitchMeter]:
        """The meters ``switch`` holds now."""
        ...

    def packet_out(self, switch: str, port: int, frame: bytes) -> None:
        """Send one Ethernet ``frame`` out of ``port`` of ``switch``, past its flow tables
        (OpenFlow packet-out from the controller, no buffer, ``output:port``), then a barrier.

        Only for frames the controller builds itself (the gratuitous ARP of an uplink
        failover, :mod:`segctl.flows.announce`), never for a caller's bytes; a frame over
        :data:`MAX_FRAME` bytes or under 14 is a ``ValueError``.
        """
        ...
