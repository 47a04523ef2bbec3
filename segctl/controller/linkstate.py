"""Link state: the topology the controller routes over, without the links that are down.

The intent's fabric is the *declared* topology. When a fabric port reports link down,
paths must avoid that link until it comes back; :func:`without_links` gives the
:class:`~segctl.topology.network.Network` to compile and verify against, identical to
the declared one except for the removed links (in ``Network.links`` and in the intent's
``fabric.links``, so any reader of either sees the same topology).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from segctl.topology.network import Network

__all__ = ["fabric_link_of", "without_links"]

LinkTuple = tuple[str, int, str, int]


def fabric_link_of(network: Network, switch: str, port: int) -> LinkTuple | None:
    """The declared fabric link with an end at ``switch:port``, or None (an edge port)."""
    for link in network.links:
        a, a_port, b, b_port = link
        if (a, a_port) == (switch, port) or (b, b_port) == (switch, port):
            return link
    return None


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
