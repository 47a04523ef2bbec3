"""Link state: which fabric links and uplinks are down, and the topology to route over.

The intent's fabric is the *declared* topology. When a fabric port reports link down,
paths must avoid that link until it comes back; :func:`without_links` gives the
:class:`~segctl.topology.network.Network` to compile and verify against, identical to
the declared one except for the removed links (in ``Network.links`` and in the intent's
``fabric.links``, so any reader of either sees the same topology).

:class:`LinkState` is the port → link state machine. A fabric link is down while either
of its ports was last reported down, and up only when both ends are: OVS reports each end
of a link going down as two port-status messages, first with ``LIVE`` cleared (no
``LINK_DOWN``, so read as up), then ``LINK_DOWN``, and under load the ends arrive up to a
second apart. Tracking the link instead of its ports let the second end's transitional
"up" bring the link back, and the fabric flapped through the full rule set and back for
seconds.

It also keeps the edge ports last reported down, for the external networks' redundant
uplinks (``fabric.externals[].attach``): the active uplink of an external network is its
first declared port that is up (:func:`~segctl.topology.network.with_uplinks_down`), the
others are standby and get no rules. :meth:`LinkState.edge_events` records edge ports and
reports an :class:`UplinkChange` for each external network whose active uplink moved; a
standby port going down or up moves nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from segctl.topology.network import Network, with_uplinks_down

__all__ = [
    "LinkChange",
    "LinkState",
    "LinkTuple",
    "Port",
    "UplinkChange",
    "active_uplinks",
    "fabric_link_of",
    "fabric_ports",
    "uplink_ports",
    "without_links",
]

LinkTuple = tuple[str, int, str, int]
#: A switch port: ``(switch, port)``.
Port = tuple[str, int]


def fabric_link_of(network: Network, switch: str, port: int) -> LinkTuple | None:
    """The declared fabric link with an end at ``switch:port``, or None (an edge port)."""
    for link in network.links:
        a, a_port, b, b_port = link
        if (a, a_port) == (switch, port) or (b, b_port) == (switch, port):
            return link
    return None


def fabric_ports(network: Network, switch: str) -> list[int]:
    """The ports of ``switch`` that are ends of declared fabric links, sorted."""
    return sorted(
        {p for a, a_port, b, b_port in network.links for s, p in ((a, a_port), (b, b_port)) if s == switch}
    )


def uplink_ports(network: Network) -> dict[Port, str]:
    """Every declared uplink port (active and standby) of ``network``'s external networks,
    with the external network it belongs to."""
    return {p: x.name for x in network.externals for p in (x.attach or ((x.switch, x.port),))}


def active_uplinks(network: Network) -> dict[str, Port]:
    """The active uplink port of each external network of ``network``."""
    return {x.name: (x.switch, x.port) for x in network.externals}


def _port_text(port: Port) -> str:
    return f"{port[0]}:{port[1]}"


def without_links(network: Network, down: Iterable[LinkTuple]) -> Network:
    """``network`` with the ``down`` fabric links removed (unknown links are ignored)."""
    gone = set(down)
    if not gone & set(network.links):
        return network
    links = tuple(link for link in network.links if link not in gone)
    fabric = network.intent.fabric
    kept = [
        link for link in fabric.links if (link.a.switch, link.a.port, link.b.switch, link.b.port) not in gone
    ]
    intent = network.intent.model_copy(update={"fabric": fabric.model_copy(update={"links": kept})})
    return dataclasses.replace(network, intent=intent, links=links)


@dataclass(frozen=True)
class LinkChange:
    """A fabric link that went down or came back."""

    action: Literal["link.up", "link.down"]
    link: LinkTuple

    @property
    def name(self) -> str:
        """The audit object: ``link/leaf1:1-spine1:1``."""
        a, a_port, b, b_port = self.link
        return f"link/{a}:{a_port}-{b}:{b_port}"

    @property
    def detail(self) -> dict[str, Any]:
        """Extra fields of its audit entry (none)."""
        return {}


@dataclass(frozen=True)
class UplinkChange:
    """An external network whose active uplink moved from ``previous`` to ``active``.

    ``uplink.failover``: the active uplink went down (``port`` is it); ``active`` is the
    first declared port still up, or, when every declared port is down (``all_down``),
    the first declared one. ``uplink.restored``: a port that came up is active again
    (``port`` is it): one declared before the active one, or any after all were down.
    """

    action: Literal["uplink.failover", "uplink.restored"]
    external: str
    port: Port
    previous: Port
    active: Port
    all_down: bool = False

    @property
    def name(self) -> str:
        """The audit object: ``uplink/internet/edge2:48`` (the port that went down or came up)."""
        return f"uplink/{self.external}/{_port_text(self.port)}"

    @property
    def detail(self) -> dict[str, Any]:
        """Extra fields of its audit entry: the active uplink before and after."""
        detail: dict[str, Any] = {"previous": _port_text(self.previous), "active": _port_text(self.active)}
        if self.all_down:
            detail["all_down"] = True
        return detail


class LinkState:
    """The last reported state of every fabric port, and the links that are down because of it;
    the edge ports last reported down, and the active uplinks that follow from it."""

    def __init__(self) -> None:
        self._down: set[LinkTuple] = set()
        self._down_ports: set[Port] = set()  # fabric ports last reported down
        self._down_edge: set[Port] = set()  # edge ports (uplinks among them) last reported down

    @property
    def down(self) -> frozenset[LinkTuple]:
        return frozenset(self._down)

    @property
    def down_edge_ports(self) -> frozenset[Port]:
        """The edge ports last reported down (a declared uplink among them is not active)."""
        return frozenset(self._down_edge)

    def effective(self, network: Network) -> Network:
        """``network`` without the links that are down, each external network on its first
        declared uplink that is up: what is compiled and verified."""
        return with_uplinks_down(without_links(network, self._down), self._down_edge)

    def edge_events(
        self, network: Network, switch: str, events: Sequence[tuple[int, bool]]
    ) -> tuple[list[UplinkChange], set[int]]:
        """Record that edge ports ``(port, up)`` of ``switch`` are up or down. Returns the
        external networks of ``network`` (the declared one) whose active uplink moved, and
        the ports whose recorded state changed. Several events are taken together: only
        where the active uplinks end up counts."""
        before_down = set(self._down_edge)
        before = active_uplinks(with_uplinks_down(network, before_down))
        for port, up in events:
            if up:
                self._down_edge.discard((switch, port))
            else:
                self._down_edge.add((switch, port))
        flipped = {p for p, _ in events if ((switch, p) in before_down) != ((switch, p) in self._down_edge)}
        after = active_uplinks(with_uplinks_down(network, self._down_edge))
        changes: list[UplinkChange] = []
        for name, active in after.items():
            previous = before[name]
            if active == previous:
                continue
            all_down = active in self._down_edge
            if previous in self._down_edge and previous not in before_down:  # it went down
                changes.append(UplinkChange("uplink.failover", name, previous, previous, active, all_down))
            else:  # the port it moved to came up
                changes.append(UplinkChange("uplink.restored", name, active, previous, active))
        return changes, flipped

    def port_event(self, link: LinkTuple, switch: str, port: int, up: bool) -> LinkChange | None:
        """Record that ``switch:port``, an end of ``link``, is up or down; the change of
        ``link`` this makes, or None (the link did not change: the other end may still be down)."""
        if up:
            self._down_ports.discard((switch, port))
        else:
            self._down_ports.add((switch, port))
        a, a_port, b, b_port = link
        down = (a, a_port) in self._down_ports or (b, b_port) in self._down_ports
        if down == (link in self._down):
            return None
        if down:
            self._down.add(link)
        else:
            self._down.discard(link)
        return LinkChange("link.up" if up else "link.down", link)
