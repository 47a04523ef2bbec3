"""The typed change scope and the port -> link state machine, on their own."""

from __future__ import annotations

import pytest

from segctl.controller.linkstate import LinkChange, LinkState
from segctl.controller.scope import ChangeKind, ChangeScope

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
