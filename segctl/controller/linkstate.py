"""Link state: which fabric links are down, and the topology to route over without them.

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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from segctl.topology.network import Network

__all__ = ["LinkChange", "LinkState", "LinkTuple", "fabric_link_of", "fabric_ports", "without_links"]

LinkTuple = tuple[str, int, str, int]


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


class LinkState:
    """The last reported state of every fabric port, and the links that are down because of it."""

    def __init__(self) -> None:
        self._down: set[LinkTuple] = set()
        self._down_ports: set[tuple[str, int]] = set()  # fabric ports last reported down

    @property
    def down(self) -> frozenset[LinkTuple]:
        return frozenset(self._down)

    def effective(self, network: Network) -> Network:
        """``network`` without the links that are down: what is compiled and verified."""
        return without_links(network, self._down)

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
