"""The typed change scope and the port -> link/uplink state machine, on their own."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from segctl.controller.intake import resolve_intent
from segctl.controller.linkstate import LinkChange, LinkState, UplinkChange, active_uplinks, uplink_ports
from segctl.controller.scope import ChangeKind, ChangeScope
from segctl.topology.network import Network, load_network

LINK = ("leaf1", 1, "spine1", 1)


@pytest.mark.parametrize(
    ("scope", "text", "action", "obj"),
    [
        (ChangeScope(ChangeKind.APPLY), "apply", "intent.apply", "intent"),
        (ChangeScope(ChangeKind.ROLLBACK), "rollback", "intent.rollback", "intent"),
        (ChangeScope.of_tenant("acme"), "tenant:acme", "tenant.update", "tenant/acme"),
        (ChangeScope.of_tenant("a:b"), "tenant:a:b", "tenant.update", "tenant/a:b"),
        (ChangeScope(ChangeKind.LINK_DOWN), "link.down", "intent.apply", "intent"),
    ],
)
def test_scope_text_round_trips(scope: ChangeScope, text: str, action: str, obj: str) -> None:
    assert str(scope) == text and ChangeScope.parse(text) == scope
    assert (scope.action, scope.object) == (action, obj)


def test_a_tenant_scope_needs_exactly_a_tenant() -> None:
    with pytest.raises(ValueError, match="needs tenant"):
        ChangeScope(ChangeKind.TENANT)
    with pytest.raises(ValueError, match="has no tenant"):
        ChangeScope(ChangeKind.APPLY, "acme")
    with pytest.raises(ValueError):
        ChangeScope.parse("nonsense")


def test_a_link_is_down_while_either_end_is() -> None:
    state = LinkState()
    assert state.port_event(LINK, "spine1", 1, True) is None  # transitional "up": nothing changes
    assert state.port_event(LINK, "spine1", 1, False) == LinkChange("link.down", LINK)
    assert state.port_event(LINK, "leaf1", 1, False) is None  # already down
    assert state.port_event(LINK, "spine1", 1, True) is None  # leaf1's end is still down
    assert state.down == {LINK}
    change = state.port_event(LINK, "leaf1", 1, True)
    assert change == LinkChange("link.up", LINK) and change.name == "link/leaf1:1-spine1:1"
    assert state.down == frozenset()


# -- redundant uplinks -------------------------------------------------------------------

INTERNET = Path(__file__).resolve().parents[2] / "examples" / "internet.yaml"
E2, E1 = ("edge2", 48), ("edge1", 48)


def three_uplinks() -> Network:
    """examples/internet.yaml with a third uplink, edge1:47, after edge2:48 and edge1:48."""
    doc = yaml.safe_load(INTERNET.read_text())
    doc["fabric"]["externals"][0]["attach"].append("edge1:47")
    return resolve_intent(doc, "three uplinks")


def active(state: LinkState, network: Network) -> tuple[str, int]:
    return active_uplinks(state.effective(network))["internet"]


def test_the_active_uplink_going_down_fails_over_to_the_standby_and_back() -> None:
    net = load_network(INTERNET)
    state = LinkState()
    assert uplink_ports(net) == {E2: "internet", E1: "internet"}
    assert state.effective(net) is net
    moved, flipped = state.edge_events(net, "edge2", [(48, False)])
    assert moved == [UplinkChange("uplink.failover", "internet", E2, E2, E1)] and flipped == {48}
    assert moved[0].name == "uplink/internet/edge2:48"
    assert moved[0].detail == {"previous": "edge2:48", "active": "edge1:48"}
    assert active(state, net) == E1
    assert state.edge_events(net, "edge2", [(48, False)]) == ([], set())  # repeated: nothing
    moved, flipped = state.edge_events(net, "edge2", [(48, True)])
    assert moved == [UplinkChange("uplink.restored", "internet", E2, E1, E2)] and flipped == {48}
    assert state.effective(net) is net  # back on the first declared port


def test_a_standby_going_down_or_up_moves_nothing() -> None:
    net = load_network(INTERNET)
    state = LinkState()
    assert state.edge_events(net, "edge1", [(48, False)]) == ([], {48})
    assert state.down_edge_ports == {E1} and state.effective(net) is net
    assert state.edge_events(net, "edge1", [(48, True)]) == ([], {48})
    assert state.edge_events(net, "edge1", [(10, False)]) == ([], {10})  # an endpoint's port
    assert state.effective(net) is net


def test_every_uplink_down_leaves_the_first_declared_one_active() -> None:
    net = load_network(INTERNET)
    state = LinkState()
    state.edge_events(net, "edge2", [(48, False)])  # failover to edge1:48
    moved, _ = state.edge_events(net, "edge1", [(48, False)])  # the standby goes too
    assert moved == [UplinkChange("uplink.failover", "internet", E1, E1, E2, all_down=True)]
    assert moved[0].detail["all_down"] is True
    assert active(state, net) == E2
    # the standby comes back first: the active moves to it (it came up)
    moved, _ = state.edge_events(net, "edge1", [(48, True)])
    assert moved == [UplinkChange("uplink.restored", "internet", E1, E2, E1)]
    moved, _ = state.edge_events(net, "edge2", [(48, True)])
    assert moved == [UplinkChange("uplink.restored", "internet", E2, E1, E2)]
    assert state.effective(net) is net


def test_the_first_declared_port_coming_back_while_all_were_down_moves_nothing() -> None:
    net = load_network(INTERNET)
    state = LinkState()
    assert state.edge_events(net, "edge1", [(48, False)]) == ([], {48})  # standby
    assert state.edge_events(net, "edge2", [(48, False)]) == ([], {48})  # all down: edge2:48 stays
    assert state.edge_events(net, "edge2", [(48, True)]) == ([], {48})
    assert state.effective(net) is net


def test_with_three_uplinks_the_first_up_in_declared_order_is_active() -> None:
    net = three_uplinks()
    state = LinkState()
    state.edge_events(net, "edge2", [(48, False)])
    assert active(state, net) == E1
    moved, _ = state.edge_events(net, "edge1", [(48, False), (47, True)])  # one batch
    assert moved == [UplinkChange("uplink.failover", "internet", E1, E1, ("edge1", 47))]
    # edge1:47 down and back up in one batch: the active ends where it was, nothing changed
    assert state.edge_events(net, "edge1", [(47, False), (47, True)]) == ([], set())
    moved, _ = state.edge_events(net, "edge1", [(48, True)])  # the second declared is back
    assert moved == [UplinkChange("uplink.restored", "internet", E1, ("edge1", 47), E1)]


def test_links_and_uplinks_combine_in_the_effective_network() -> None:
    net = load_network(INTERNET)
    state = LinkState()
    link = net.links[0]
    state.port_event(link, link[0], link[1], False)
    state.edge_events(net, "edge2", [(48, False)])
    effective = state.effective(net)
    assert effective.links == () and active_uplinks(effective)["internet"] == E1
    assert net.links == (link,) and active_uplinks(net)["internet"] == E2  # declared untouched


@pytest.mark.parametrize("kind", ["uplink.failover", "uplink.restored"])
def test_uplink_kinds_are_change_kinds(kind: str) -> None:
    scope = ChangeScope(ChangeKind(kind))
    assert str(scope) == kind and ChangeScope.parse(kind) == scope
