"""Redundant uplinks: the active port of an external network is its first declared port
that is up (``with_uplinks_down``); the others are standby."""

from __future__ import annotations

from pathlib import Path

from segctl.cli._external import uplink_text
from segctl.reports.html import topology_svg
from segctl.topology.network import load_network, with_uplinks_down

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "internet.yaml"


def test_the_first_port_that_is_up_is_active() -> None:
    net = load_network(EXAMPLE)
    ext = net.external("internet")
    assert (ext.switch, ext.port) == ("edge2", 48)
    assert ext.standby == (("edge1", 48),)

    moved = with_uplinks_down(net, [("edge2", 48)])
    now = moved.external("internet")
    assert (now.switch, now.port) == ("edge1", 48)
    assert now.standby == (("edge2", 48),)
    assert now.attach == ext.attach  # the declared order stays
    assert moved.endpoints == net.endpoints and moved.links == net.links
    assert net.external("internet") is ext  # the declared network is untouched


def test_nothing_down_or_unknown_ports_leave_the_network_as_it_is() -> None:
    net = load_network(EXAMPLE)
    assert with_uplinks_down(net, []) is net
    assert with_uplinks_down(net, [("edge1", 48), ("edge1", 10), ("nowhere", 1)]) is net


def test_when_every_uplink_is_down_the_first_stays_active() -> None:
    net = load_network(EXAMPLE)
    assert with_uplinks_down(net, [("edge2", 48), ("edge1", 48)]) is net


def test_show_and_the_picture_name_the_standby_uplink() -> None:
    net = load_network(EXAMPLE)
    assert uplink_text(net.external("internet")) == "edge2:48 (standby edge1:48)"
    picture = topology_svg(net)
    assert picture.count('class="standby"') == 1 and "standby uplink edge1:48" in picture
    moved = with_uplinks_down(net, [("edge2", 48)])
    assert uplink_text(moved.external("internet")) == "edge1:48 (standby edge2:48)"
    assert "standby uplink edge2:48" in topology_svg(moved)
